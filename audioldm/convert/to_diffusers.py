"""Export: an AudioLDM-shaped model of ours (FiLM U-Net on the pooled CLAP text embedding, raw-log-mel VAE, HiFi-GAN
vocoder, CLAP text encoder) written as a diffusers ``AudioLDMPipeline`` folder, so a model fine-tuned here runs in
diffusers. The inverse of :func:`audioldm.convert.diffusers.diffusers_components`; importing the written folder
gives back the same weights and configs.

Only what a diffusers folder can express is exported; anything else is refused with the reason (a diffusers folder
carries no MelConfig beyond the vocoder's rate and mel count, no VAE input normalisation, and its pipeline feeds the
U-Net the pooled text embedding only)."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from ..mel import MelConfig
from ..files import atomic_folder
from ..weights import WeightsError
from .diffusers import diffusers_unet, diffusers_vae, speecht5_hifigan

__all__ = ["diffusers_compatibility", "save_diffusers_audioldm"]

SCHEDULE_KINDS = {"linear": "linear", "scaled_linear": "scaled_linear", "cosine": "squaredcos_cap_v2"}
PREDICTIONS = {"eps": "epsilon", "v": "v_prediction"}


def diffusers_compatibility(model) -> list[str]:
    """Why ``model`` (an :class:`~audioldm.pipeline.AudioLDM`) cannot be written as a diffusers AudioLDM folder: an
    empty list when it can."""
    from ..vocoders.hifigan import HiFiGAN

    why = []
    cfg = getattr(model.conditioner, "config", None)
    if getattr(cfg, "kind", None) != "clap" or getattr(cfg, "tokens", True):
        why.append(f"its conditioner is {type(model.conditioner).__name__}"
                   f"{' (' + str(cfg.kind) + ')' if hasattr(cfg, 'kind') else ''}; AudioLDMPipeline conditions on the "
                   f"pooled CLAP text embedding alone")
    u, v = model.unet.config, model.vae.config
    if u.context_dim is not None:
        why.append(f"its U-Net cross-attends to tokens (context_dim={u.context_dim}); AudioLDMPipeline passes none")
    if u.transformer_depth != 1:
        why.append(f"U-Net transformer_depth={u.transformer_depth}; AudioLDM's is 1")
    if not u.cond_dim:
        why.append("its U-Net has no FiLM condition (cond_dim=0)")
    if (v.input_shift, v.input_scale) != (0.0, 1.0) or not v.mid_attention or v.in_channels != 1:
        why.append(f"its VAE normalises its input (shift {v.input_shift}, scale {v.input_scale}) or lacks the mid "
                   f"attention; diffusers' AutoencoderKL reads the raw log-mel")
    if not isinstance(model.vocoder, HiFiGAN):
        why.append(f"its vocoder is {type(model.vocoder).__name__}; AudioLDMPipeline needs a HiFi-GAN "
                   f"(SpeechT5HifiGan)")
    mel = model.mel_config
    if mel != MelConfig(sample_rate=mel.sample_rate, n_mels=mel.n_mels):
        why.append(f"its MelConfig {mel.to_dict()} is not the AudioLDM convention at {mel.sample_rate} Hz / "
                   f"{mel.n_mels} mels, which is all a diffusers folder records")
    return why


def _scheduler_config(schedule) -> dict:
    c = schedule.config
    return {"_class_name": "DDIMScheduler", "num_train_timesteps": c.num_train_timesteps,
            "beta_start": c.beta_start, "beta_end": c.beta_end, "beta_schedule": SCHEDULE_KINDS[c.kind],
            "prediction_type": PREDICTIONS[c.prediction], "clip_sample": False, "thresholding": False,
            "set_alpha_to_one": c.set_alpha_to_one, "steps_offset": c.steps_offset,
            "timestep_spacing": c.spacing, "rescale_betas_zero_snr": c.zero_terminal_snr}


def save_diffusers_audioldm(model, dst, overwrite: bool = False, dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` (an :class:`~audioldm.pipeline.AudioLDM`) at ``dst`` as a diffusers AudioLDM folder
    (model_index.json, unet/, vae/, vocoder/, text_encoder/, tokenizer/, scheduler/; safetensors weights, stored as
    ``dtype`` when given), atomically; an existing ``dst`` is replaced only with ``overwrite``. Raises WeightsError
    listing what diffusers cannot express. Needs diffusers."""
    why = diffusers_compatibility(model)
    if why:
        raise WeightsError(f"{model.name}: cannot be written as a diffusers AudioLDM folder: " + "; ".join(why))
    try:
        import diffusers
    except ImportError:
        raise ImportError("writing a diffusers folder needs diffusers: pip install diffusers") from None

    unet = diffusers_unet(model.unet.config)
    vae = diffusers_vae(model.vae.config)
    vocoder = speecht5_hifigan(model.vocoder.config)
    unet.load_state_dict({k: v.float() for k, v in model.unet.state_dict().items()}, strict=True)  # same names
    vae.load_state_dict({k: v.float() for k, v in model.vae.state_dict().items()}, strict=True)
    voc = {k: v.float() for k, v in model.vocoder.state_dict().items()}
    voc.update(mean=torch.zeros(model.mel_config.n_mels), scale=torch.ones(model.mel_config.n_mels))  # unused
    vocoder.load_state_dict(voc, strict=True)
    frames = round(model.defaults.duration * model.mel_config.sample_rate / model.mel_config.hop_length)
    unet.register_to_config(sample_size=max(1, round(frames / model.vae.config.downsample)))  # the default length
    vae.register_to_config(scaling_factor=float(model.vae.config.scale_factor))
    cfg = _scheduler_config(model.schedule)
    scheduler = diffusers.DDIMScheduler.from_config({k: v for k, v in cfg.items() if k != "_class_name"})
    text = model.conditioner.model if dtype is None else copy.deepcopy(model.conditioner.model)  # caller's stays
    pipe = diffusers.AudioLDMPipeline(vae=vae, text_encoder=text, tokenizer=model.conditioner.tokenizer, unet=unet,
                                      scheduler=scheduler, vocoder=vocoder)
    if dtype is not None:
        pipe.to(dtype=dtype)
    with atomic_folder(dst, overwrite) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
    return Path(dst)
