"""Loading AudioLDM's diffusers-format weights: a tiny random diffusers AudioLDM folder (UNet2DConditionModel with
simple_projection FiLM, 1-channel AutoencoderKL, SpeechT5HifiGan, tiny CLAP text model + a local tokenizer, DDIM
scheduler as AudioLDM's) is converted and compared component by component and end to end with AudioLDMPipeline."""

import json

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

from audioldm.convert.diffusers import diffusers_unet, diffusers_vae, speecht5_hifigan  # noqa: E402
from audioldm.pipeline import AudioLDM, PipelineError  # noqa: E402
from audioldm.unet import UNET_PRESETS  # noqa: E402
from audioldm.vae import VAE_PRESETS  # noqa: E402
from audioldm.vocoders import HIFIGAN_PRESETS  # noqa: E402
from audioldm.weights import WeightsError  # noqa: E402

WORDS = ["<s>", "<pad>", "</s>", "<unk>", "a", "dog", "barking", "piano", "loud", "rain", "on", "the", "roof"]


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                                pad_token="<pad>", unk_token="<unk>", model_max_length=16)


def tiny_clap_text_config(projection_dim: int):
    return transformers.ClapTextConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=37, projection_dim=projection_dim, max_position_embeddings=40,
                                       pad_token_id=1)


def build_diffusers_folder(path, unet_kw, text=None):
    """A tiny random diffusers AudioLDM folder at ``path`` (``text``: its CLAP text encoder, default a random one)."""
    torch.manual_seed(0)
    ucfg = UNET_PRESETS["tiny"](**unet_kw)
    unet = diffusers_unet(ucfg)
    vcfg = VAE_PRESETS["tiny"]()
    vae = diffusers_vae(vcfg)
    vae.register_to_config(scaling_factor=0.7)
    vocoder = speecht5_hifigan(HIFIGAN_PRESETS["tiny"]())
    text = text or transformers.ClapTextModelWithProjection(tiny_clap_text_config(ucfg.cond_dim))
    sched = diffusers.DDIMScheduler(beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear",
                                    clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    with torch.no_grad():  # no zero-initialised layers: make every component's output depend on its weights
        for m in (unet, vae):
            for q in m.parameters():
                if not q.any():
                    q.normal_(0, 0.05)
    pipe = diffusers.AudioLDMPipeline(vae=vae, text_encoder=text.eval(), tokenizer=tiny_tokenizer(), unet=unet,
                                      scheduler=sched, vocoder=vocoder)
    pipe.save_pretrained(path, safe_serialization=True)
    return pipe


@pytest.fixture(scope="module", params=[{"num_heads": 2}, {"head_dim": 8, "num_res_blocks": 2}],
                ids=["8-heads-style", "per-level-heads"])
def folders(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("audioldm_diffusers")
    ref = build_diffusers_folder(d / "diffusers", request.param)
    return ref, d


def test_components_match(folders):
    ref, d = folders
    ours = AudioLDM.from_pretrained(d / "diffusers")
    torch.manual_seed(1)
    x, t = torch.randn(2, 4, 8, 16), torch.tensor([10.0, 700.0])
    pooled = torch.randn(2, ours.unet.config.cond_dim)
    with torch.no_grad():
        a = ours.unet(x, t, {"pooled": pooled})
        b = ref.unet(x, t, encoder_hidden_states=None, class_labels=pooled).sample
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
        mel = torch.randn(2, 64, 32) - 5
        torch.testing.assert_close(ours.vae.encode(mel).mean,
                                   ref.vae.encode(mel.transpose(1, 2)[:, None]).latent_dist.mean, atol=1e-4, rtol=0)
        z = torch.randn(2, 4, 8, 16)
        torch.testing.assert_close(ours.vae.decode(z), ref.vae.decode(z).sample[:, 0].transpose(1, 2), atol=1e-4,
                                   rtol=0)
        w_ours, w_ref = ours.vocoder(mel), ref.vocoder(mel.transpose(1, 2))
        n = min(w_ours.shape[-1], w_ref.shape[-1])
        torch.testing.assert_close(w_ours[:, :n], w_ref[:, :n], atol=1e-4, rtol=0)
        c = ours.conditioner(["a dog barking", "piano"])["pooled"]
        ids = ref.tokenizer(["a dog barking", "piano"], padding="max_length", return_tensors="pt")
        e = torch.nn.functional.normalize(ref.text_encoder(**ids).text_embeds, dim=-1)
        torch.testing.assert_close(c, e, atol=1e-5, rtol=0)
    assert ours.vae.config.scale_factor == pytest.approx(0.7) and ours.schedule.config.steps_offset == 1


def test_whole_generation_matches_audioldm_pipeline(folders, tmp_path):
    ref, d = folders
    ours = AudioLDM.from_pretrained(d / "diffusers")
    seconds, steps, g = 0.64, 6, 2.5
    shape = ours.latent_shape(64)
    lat = torch.randn(2, *shape, generator=torch.Generator().manual_seed(3))
    out = ref(["a dog barking", "rain on the roof"], num_inference_steps=steps, guidance_scale=g,
              audio_length_in_s=seconds, latents=lat.clone(), output_type="np").audios
    # our sampler runs in y = x / sqrt(a): start from the same x_T
    sig = ours.sampling_sigmas(steps)
    cond, uncond = ours.conditions(["a dog barking", "rain on the roof"], [None, None])
    z = ours.denoise_latents(lat * (1 + sig[0] ** 2) ** 0.5, sig, cond, uncond, g, "ddim", [0, 1])
    _, wav = ours.decode(z, 64, int(seconds * 16000))
    assert out.shape == tuple(wav.shape)
    np.testing.assert_allclose(wav.numpy(), out, atol=2e-4)
    # the converted folder (our format) gives the same audio
    from audioldm.cli import main
    assert main(["convert", str(d / "diffusers"), str(tmp_path / "ours")]) == 0
    conv = AudioLDM.from_pretrained(tmp_path / "ours")
    z2 = conv.denoise_latents(lat * (1 + sig[0] ** 2) ** 0.5, sig, *conv.conditions(
        ["a dog barking", "rain on the roof"], [None, None]), g, "ddim", [0, 1])
    torch.testing.assert_close(z2, z, atol=1e-5, rtol=0)


def test_bad_diffusers_folders(folders, tmp_path):
    import shutil
    _, d = folders
    bad = tmp_path / "bad"
    shutil.copytree(d / "diffusers", bad)
    (bad / "unet" / "diffusion_pytorch_model.safetensors").rename(bad / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(PipelineError, match="pickled weights are never loaded"):
        AudioLDM.from_pretrained(bad)
    shutil.rmtree(bad)
    shutil.copytree(d / "diffusers", bad)
    from safetensors.torch import load_file, save_file
    w = bad / "vae" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(w))
    state["encoder.extra.weight"] = torch.zeros(1)
    del state["decoder.conv_out.bias"]
    save_file(state, str(w))
    with pytest.raises(PipelineError, match=r"unknown keys \['encoder.extra.weight'\].*missing keys "
                                            r"\['decoder.conv_out.bias'\]"):
        AudioLDM.from_pretrained(bad)
    cfg = json.loads((bad / "scheduler" / "scheduler_config.json").read_text())
    cfg["clip_sample"] = True
    (bad / "scheduler" / "scheduler_config.json").write_text(json.dumps(cfg))
    with pytest.raises((PipelineError, WeightsError)):
        AudioLDM.from_pretrained(bad)


def test_round_trip_to_diffusers(folders, tmp_path):
    """A model changed here (a stand-in for fine-tuning) written back with `audioldm convert --to diffusers` runs in
    diffusers' AudioLDMPipeline with our output, and imports back to the same weights and settings."""
    from audioldm.cli import main

    ref, d = folders
    ours = AudioLDM.from_pretrained(d / "diffusers")
    with torch.no_grad():
        g = torch.Generator().manual_seed(7)
        for q in ours.unet.parameters():
            q.add_(0.02 * torch.randn(q.shape, generator=g))
    ours.save_pretrained(tmp_path / "tuned")
    assert main(["convert", str(tmp_path / "tuned"), str(tmp_path / "back"), "--to", "diffusers"]) == 0
    assert main(["convert", str(tmp_path / "tuned"), str(tmp_path / "back"), "--to", "diffusers"]) == 2  # exists
    theirs = diffusers.AudioLDMPipeline.from_pretrained(tmp_path / "back")
    prompts, seconds, steps, g = ["a dog barking", "rain on the roof"], 0.64, 6, 2.5
    lat = torch.randn(2, *ours.latent_shape(64), generator=torch.Generator().manual_seed(3))
    out = theirs(prompts, num_inference_steps=steps, guidance_scale=g, audio_length_in_s=seconds,
                 latents=lat.clone(), output_type="np").audios
    sig = ours.sampling_sigmas(steps)
    z = ours.denoise_latents(lat * (1 + sig[0] ** 2) ** 0.5, sig, *ours.conditions(prompts, [None, None]), g, "ddim",
                             [0, 1])
    _, wav = ours.decode(z, 64, int(seconds * 16000))
    np.testing.assert_allclose(wav.numpy(), out, atol=2e-4)
    orig = ref(prompts, num_inference_steps=steps, guidance_scale=g, audio_length_in_s=seconds, latents=lat.clone(),
               output_type="np").audios
    assert np.abs(orig - out).max() > 1e-4 * np.abs(orig).max()  # the changed weights went out, not SRC's files
    again = AudioLDM.from_pretrained(tmp_path / "back")
    for name in ("unet", "vae", "vocoder", "conditioner"):
        a, b = getattr(ours, name).state_dict(), getattr(again, name).state_dict()
        assert a.keys() == b.keys(), name
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}.{k}"
    assert again.schedule.config == ours.schedule.config and again.vae.config == ours.vae.config
    assert again.defaults.duration == pytest.approx(ours.defaults.duration)
    assert again.unet.config == ours.unet.config and again.mel_config == ours.mel_config


def test_what_diffusers_cannot_express_is_refused(tmp_path, capsys):
    from audioldm.cli import main
    from audioldm.pretrained import default_model
    from audioldm.convert.to_diffusers import save_diffusers_audioldm

    shipped = AudioLDM.from_pretrained(default_model())  # label-conditioned, normalised VAE input
    with pytest.raises(WeightsError, match="cannot be written as a diffusers AudioLDM folder.*pooled CLAP text"):
        save_diffusers_audioldm(shipped, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert main(["convert", default_model(), str(tmp_path / "y")]) == 2
    assert "--to diffusers" in capsys.readouterr().err
