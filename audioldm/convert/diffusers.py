"""Build diffusers / transformers modules configured like ours. Our U-Net, VAE and HiFi-GAN use the same parameter
names, so ``reference.load_state_dict(ours.state_dict(), strict=True)`` works and both compute the same function
(parity tests and bench/ scripts rely on this)."""

from __future__ import annotations

import json
from pathlib import Path

from ..unet import UNetConfig
from ..vae import VAEConfig
from ..vocoders.hifigan import HiFiGANConfig

__all__ = ["diffusers_unet", "diffusers_vae", "speecht5_hifigan", "diffusers_components", "is_diffusers_folder", "load_mapped", "unet_config_from_diffusers", "vae_config_from_diffusers",
           "hifigan_config_from_transformers", "schedule_from_diffusers"]


def diffusers_unet(c: UNetConfig):
    """A random ``diffusers.UNet2DConditionModel`` with our U-Net's structure (AudioLDM's settings:
    class_embed_type="simple_projection", class_embeddings_concat for cond_mode "concat")."""
    from diffusers import UNet2DConditionModel

    levels = range(len(c.block_channels))
    down = ["CrossAttnDownBlock2D" if i in c.attention_levels else "DownBlock2D" for i in levels]
    up = ["CrossAttnUpBlock2D" if i in c.attention_levels else "UpBlock2D" for i in reversed(levels)]
    return UNet2DConditionModel(
        in_channels=c.in_channels, out_channels=c.out_channels, down_block_types=down, up_block_types=up,
        block_out_channels=c.block_channels, layers_per_block=c.num_res_blocks, norm_num_groups=c.norm_groups,
        attention_head_dim=[c.heads_at(ch) for ch in c.block_channels],  # diffusers reads this as the head count
        cross_attention_dim=c.block_channels if c.context_dim is None else c.context_dim,
        class_embed_type="simple_projection", projection_class_embeddings_input_dim=c.cond_dim,
        class_embeddings_concat=c.cond_mode == "concat", flip_sin_to_cos=True, freq_shift=0)


def diffusers_vae(c: VAEConfig):
    """A random ``diffusers.AutoencoderKL`` with our VAE's structure (1 input channel: the mel image)."""
    from diffusers import AutoencoderKL

    n = len(c.ch_mult)
    return AutoencoderKL(in_channels=1, out_channels=1, latent_channels=c.z_channels,
                         block_out_channels=[c.ch * m for m in c.ch_mult], layers_per_block=c.num_res_blocks,
                         down_block_types=["DownEncoderBlock2D"] * n, up_block_types=["UpDecoderBlock2D"] * n,
                         norm_num_groups=c.norm_groups)


def speecht5_hifigan(c: HiFiGANConfig):
    """A random ``transformers.SpeechT5HifiGan`` (the vocoder class diffusers' AudioLDM pipeline uses)."""
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    return SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=c.mel.n_mels, sampling_rate=c.mel.sample_rate, upsample_initial_channel=c.upsample_initial_channel,
        upsample_rates=c.upsample_rates, upsample_kernel_sizes=c.upsample_kernel_sizes,
        resblock_kernel_sizes=c.resblock_kernel_sizes, resblock_dilation_sizes=c.resblock_dilation_sizes,
        leaky_relu_slope=c.leaky_relu_slope, normalize_before=False)).eval()


# ---- import: a diffusers-format AudioLDM folder -> our components ------------------------------------------------

DIFFUSERS_COMPONENTS = ("unet", "vae", "vocoder", "text_encoder", "tokenizer", "scheduler")


def _json(path: Path) -> dict:
    from ..weights import WeightsError
    if not path.is_file():
        raise WeightsError(f"{path}: missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise WeightsError(f"{path}: invalid JSON ({e})") from None


def _weights_file(folder: Path) -> Path:
    """The one safetensors file of a diffusers/transformers component folder (pickles are refused)."""
    from ..weights import PICKLE_SUFFIXES, WeightsError
    for name in ("diffusion_pytorch_model.safetensors", "model.safetensors"):
        if (folder / name).is_file():
            return folder / name
    found = sorted(p.name for p in folder.glob("*.safetensors"))
    if len(found) == 1:
        return folder / found[0]
    pickles = [p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES] if folder.is_dir() else []
    hint = f" (found {pickles}: pickled weights are never loaded; convert them to safetensors)" if pickles else ""
    raise WeightsError(f"{folder}: expected one *.safetensors weights file, found {found or 'none'}{hint}")


def load_mapped(module, state: dict, mapping: dict[str, str], source: str) -> None:
    """Load ``state`` into ``module`` through ``mapping`` (our key -> their key); unknown or missing keys and shape
    mismatches raise WeightsError listing them."""
    from ..weights import WeightsError
    ours = module.state_dict()
    theirs_used = set(mapping.values())
    unknown = sorted(set(state) - theirs_used)
    missing = sorted(k for k, v in mapping.items() if v not in state)
    shapes = [f"{k}: {tuple(state[v].shape)} vs ours {tuple(ours[k].shape)}" for k, v in mapping.items()
              if v in state and tuple(state[v].shape) != tuple(ours[k].shape)]
    if unknown or missing or shapes:
        parts = ([f"unknown keys {unknown[:20]}{' ...' if len(unknown) > 20 else ''}"] if unknown else []) + \
                ([f"missing keys {missing[:20]}{' ...' if len(missing) > 20 else ''}"] if missing else []) + \
                ([f"shape mismatches {shapes[:10]}"] if shapes else [])
        raise WeightsError(f"{source}: weights do not fit: " + "; ".join(parts))
    module.load_state_dict({k: state[v].to(ours[k].dtype) for k, v in mapping.items()}, strict=True)


def unet_config_from_diffusers(d: dict, source: str) -> UNetConfig:
    """UNet2DConditionModel config (AudioLDM: simple_projection FiLM, self-attention blocks) -> UNetConfig."""
    from ..weights import WeightsError
    if d.get("class_embed_type") != "simple_projection":
        raise WeightsError(f"{source}: class_embed_type {d.get('class_embed_type')!r}; AudioLDM's U-Net uses "
                           f"'simple_projection' (FiLM from the CLAP embedding)")
    down, up = d["down_block_types"], d["up_block_types"]
    levels = [i for i, t in enumerate(down) if t == "CrossAttnDownBlock2D"]
    bad = [t for t in down if t not in ("CrossAttnDownBlock2D", "DownBlock2D")] + \
          [t for t in up if t not in ("CrossAttnUpBlock2D", "UpBlock2D")]
    if bad or [i for i, t in enumerate(reversed(up)) if t == "CrossAttnUpBlock2D"] != levels:
        raise WeightsError(f"{source}: unsupported block layout down={down} up={up}")
    for key, want in (("mid_block_type", "UNetMidBlock2DCrossAttn"), ("transformer_layers_per_block", 1),
                      ("use_linear_projection", False), ("only_cross_attention", False), ("upcast_attention", False),
                      ("resnet_time_scale_shift", "default"), ("time_embedding_type", "positional")):
        if d.get(key, want) not in (want, [want] * len(down)):
            raise WeightsError(f"{source}: {key}={d[key]!r} is not supported (expected {want!r})")
    ch = list(d["block_out_channels"])
    heads = d.get("num_attention_heads") or d.get("attention_head_dim", 8)  # diffusers' legacy name = head count
    heads = heads if isinstance(heads, list) else [heads] * len(ch)
    att_heads = {heads[i] for i in levels} | {heads[-1]}  # the mid block uses the last level's count
    widths = {ch[i] // heads[i] for i in levels} | {ch[-1] // heads[-1]}
    if len(att_heads) == 1:
        num_heads, head_dim = att_heads.pop(), 32
    elif len(widths) == 1:
        num_heads, head_dim = 0, widths.pop()
    else:
        raise WeightsError(f"{source}: attention heads {heads} vary per level with varying widths; not supported")
    ctx = d.get("cross_attention_dim")
    context_dim = None if (ctx is None or isinstance(ctx, list) or ctx == ch) else int(ctx)
    return UNetConfig(in_channels=d["in_channels"], out_channels=d["out_channels"], block_channels=ch,
                      num_res_blocks=d["layers_per_block"], attention_levels=levels, head_dim=head_dim,
                      num_heads=num_heads, cond_dim=d["projection_class_embeddings_input_dim"],
                      cond_mode="concat" if d.get("class_embeddings_concat") else "add", context_dim=context_dim,
                      norm_groups=d.get("norm_num_groups", 32))


def vae_config_from_diffusers(d: dict, source: str) -> VAEConfig:
    """AutoencoderKL config -> VAEConfig (raw log-mel input, the learnt scaling factor)."""
    from ..weights import WeightsError
    ch = list(d["block_out_channels"])
    if d.get("in_channels") != 1 or d.get("out_channels") != 1 or ch[0] == 0 or any(c % ch[0] for c in ch):
        raise WeightsError(f"{source}: expected a 1-channel mel AutoencoderKL with channel multiples of "
                           f"block_out_channels[0], got {d.get('in_channels')}/{d.get('out_channels')}, {ch}")
    return VAEConfig(ch=ch[0], ch_mult=[c // ch[0] for c in ch], num_res_blocks=d["layers_per_block"],
                     z_channels=d["latent_channels"], norm_groups=d.get("norm_num_groups", 32),
                     input_shift=0.0, input_scale=1.0, scale_factor=float(d.get("scaling_factor", 0.18215)))


def hifigan_config_from_transformers(d: dict, source: str) -> HiFiGANConfig:
    """SpeechT5HifiGanConfig -> HiFiGANConfig (16 kHz / 64 mels / hop 160: the default MelConfig)."""
    from ..mel import MelConfig
    from ..weights import WeightsError
    if d.get("normalize_before", False):
        raise WeightsError(f"{source}: normalize_before=true (mean/scale input normalisation) is not supported")
    mel = MelConfig(sample_rate=d.get("sampling_rate", 16000), n_mels=d["model_in_dim"])
    hop = 1
    for r in d["upsample_rates"]:
        hop *= r
    if hop != mel.hop_length:
        raise WeightsError(f"{source}: upsample_rates {d['upsample_rates']} give hop {hop}, expected "
                           f"{mel.hop_length}")
    return HiFiGANConfig(upsample_initial_channel=d["upsample_initial_channel"], upsample_rates=d["upsample_rates"],
                         upsample_kernel_sizes=d["upsample_kernel_sizes"],
                         resblock_kernel_sizes=d["resblock_kernel_sizes"],
                         resblock_dilation_sizes=d["resblock_dilation_sizes"],
                         leaky_relu_slope=d.get("leaky_relu_slope", 0.1), mel=mel)


def schedule_from_diffusers(d: dict, source: str):
    """DDIM/DDPM/DPM-Solver scheduler config -> ScheduleConfig."""
    from ..diffusion import ScheduleConfig
    from ..weights import WeightsError
    kinds = {"linear": "linear", "scaled_linear": "scaled_linear", "squaredcos_cap_v2": "cosine"}
    preds = {"epsilon": "eps", "v_prediction": "v"}
    kind, pred = d.get("beta_schedule", "linear"), d.get("prediction_type", "epsilon")
    if d.get("clip_sample", True) or d.get("thresholding", False):
        raise WeightsError(f"{source}: clip_sample/thresholding are not supported (AudioLDM's configs set both false)")
    if kind not in kinds or pred not in preds:
        raise WeightsError(f"{source}: beta_schedule {kind!r} / prediction_type {pred!r} not supported "
                           f"(known: {sorted(kinds)} / {sorted(preds)})")
    return ScheduleConfig(kind=kinds[kind], num_train_timesteps=d.get("num_train_timesteps", 1000),
                          beta_start=d.get("beta_start", 0.0001), beta_end=d.get("beta_end", 0.02),
                          zero_terminal_snr=bool(d.get("rescale_betas_zero_snr", False)), prediction=preds[pred],
                          spacing=d.get("timestep_spacing", "leading"), steps_offset=d.get("steps_offset", 0),
                          set_alpha_to_one=bool(d.get("set_alpha_to_one", True)))


def is_diffusers_folder(folder) -> bool:
    p = Path(folder) / "model_index.json"
    try:
        return p.is_file() and json.loads(p.read_text()).get("_class_name") == "AudioLDMPipeline"
    except (json.JSONDecodeError, AttributeError):
        return False


def diffusers_components(folder) -> dict:
    """Our components from a diffusers-format AudioLDM folder (AudioLDM-S/M/L, full or v2): {"vae", "unet",
    "schedule", "conditioner" (the CLAP text encoder + tokenizer), "vocoder" (SpeechT5HifiGan as our HiFiGAN),
    "defaults"}, the keyword arguments of :class:`~audioldm.pipeline.AudioLDM` (which builds the model from them:
    this module does not import the pipeline)."""
    from ..conditioning.pretrained import (
        PretrainedTextConditioner,
        PretrainedTextConfig,
    )
    from ..diffusion import NoiseSchedule
    from ..pipeline.settings import GenerationDefaults
    from ..unet import UNet
    from ..vae import MelVAE
    from ..vocoders.hifigan import HiFiGAN
    from ..weights import WeightsError, read_safetensors

    folder = Path(folder)
    _json(folder / "model_index.json")
    missing = [c for c in DIFFUSERS_COMPONENTS if not (folder / c).is_dir()]
    if missing:
        raise WeightsError(f"{folder}: diffusers AudioLDM folder lacks {missing}")
    unet = UNet(unet_config_from_diffusers(_json(folder / "unet" / "config.json"), f"{folder}/unet/config.json"))
    w = _weights_file(folder / "unet")
    load_mapped(unet, read_safetensors(w), {k: k for k in unet.state_dict()}, str(w))  # our names = diffusers' names
    vae = MelVAE(vae_config_from_diffusers(_json(folder / "vae" / "config.json"), f"{folder}/vae/config.json"))
    w = _weights_file(folder / "vae")
    load_mapped(vae, read_safetensors(w), {k: k for k in vae.state_dict()}, str(w))
    vcfg = hifigan_config_from_transformers(_json(folder / "vocoder" / "config.json"), f"{folder}/vocoder/config.json")
    vae.config.mel = vcfg.mel
    vocoder = HiFiGAN(vcfg)
    w = _weights_file(folder / "vocoder")
    state = {k: v for k, v in read_safetensors(w).items() if k not in ("mean", "scale")}  # unused: no normalize
    load_mapped(vocoder, state, {k: k for k in vocoder.state_dict()}, str(w))
    sched_dir = folder / "scheduler"
    schedule = NoiseSchedule(schedule_from_diffusers(_json(sched_dir / "scheduler_config.json"),
                                                     f"{sched_dir}/scheduler_config.json"))
    import transformers
    _weights_file(folder / "text_encoder")  # refuse pickles before transformers looks
    text = transformers.ClapTextModelWithProjection.from_pretrained(str(folder / "text_encoder"),
                                                                    use_safetensors=True)
    tok = transformers.AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
    cond = PretrainedTextConditioner(PretrainedTextConfig(source=str(folder / "text_encoder"), kind="clap",
                                                          max_tokens=min(int(tok.model_max_length), 512)),
                                     model=text, tokenizer=tok)
    # diffusers' default length: unet sample_size latent frames (AudioLDM: 128 -> 512 mel frames = 5.12 s)
    size = _json(folder / "unet" / "config.json").get("sample_size") or 128
    frames = (size[0] if isinstance(size, list) else size) * vae.config.downsample
    defaults = GenerationDefaults(duration=frames * vcfg.mel.hop_length / vcfg.mel.sample_rate, steps=50,
                                  guidance=2.5, sampler="ddim")
    return {"vae": vae, "unet": unet, "schedule": schedule, "conditioner": cond, "vocoder": vocoder,
            "defaults": defaults}
