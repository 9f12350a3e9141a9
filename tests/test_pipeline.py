"""AudioLDM: model folders, generate, and the three audio-to-audio modes, with a tiny model trained in the tests."""

import json
import shutil

import numpy as np
import pytest
import torch

from audioldm.conditioning import ConditionError, LabelConditioner, LabelConditionerConfig, LabelField
from audioldm.pipeline import AudioLDM, PipelineError


@pytest.fixture(scope="module")
def pipe(tiny_model):
    return AudioLDM.from_pretrained(tiny_model)


def test_generate_shapes_params_and_seeds(pipe):
    r = pipe.generate(["piano c4", "flute g5"], duration=0.5, steps=4, seed=7, num_per_prompt=2, batch_size=3,
                      progress=False)
    assert r.audio.shape == (4, 8000) and r.audio.dtype == np.float32 and np.isfinite(r.audio).all()
    assert r.sample_rate == 16000 and r.mels.shape == (4, 64, 50)
    assert r.latents.shape[0] == 4 and r.latents.shape[2] % pipe.unet.config.downsample == 0
    assert r.prompts == ["piano c4", "piano c4", "flute g5", "flute g5"] and r.seeds == [7, 8, 9, 10]
    assert r.params["steps"] == 4 and r.params["sampler"] == "dpmpp_2m" and r.params["model"] == "tiny-test"
    # sample k of a batch equals generating it alone with its seed (batching and padding do not leak)
    alone = pipe.generate("flute g5", duration=0.5, steps=4, seed=9, progress=False)
    np.testing.assert_allclose(alone.audio[0], r.audio[2], atol=1e-4)
    assert np.abs(r.audio[2] - r.audio[3]).max() > 1e-3  # different seeds differ


def test_durations_that_are_not_a_latent_multiple(pipe):
    for seconds in (0.05, 0.333, 0.77):
        r = pipe.generate("piano", duration=seconds, steps=2, seed=0, progress=False)
        assert r.audio.shape == (1, round(seconds * 16000))


def test_negative_prompt_takes_the_unconditional_place(pipe):
    """Guidance is uncond + g (cond - uncond) with the negative prompt as uncond: at g = 1 only the prompt counts,
    at g = 0 only the negative prompt does, so a swapped cond/uncond fails both."""
    kw = dict(duration=0.3, steps=4, seed=1, progress=False)
    a = pipe.generate("piano c4", guidance=1.0, **kw).latents
    b = pipe.generate("piano c4", guidance=1.0, negative_prompt="flute", **kw).latents
    torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    c = pipe.generate("piano c4", guidance=0.0, negative_prompt="flute", **kw).latents
    torch.testing.assert_close(c, pipe.generate("flute", guidance=1.0, **kw).latents, atol=1e-5, rtol=0)
    assert (c - a).abs().max() > 1e-3
    d = pipe.generate("piano c4", guidance=3.0, negative_prompt="flute", **kw).latents
    assert (d - pipe.generate("piano c4", guidance=3.0, **kw).latents).abs().max() > 1e-3  # it changes the result


def test_bad_requests_are_named(pipe):
    with pytest.raises(ConditionError, match="labels="):
        pipe.generate("x", labels={"pitch": 60}, progress=False)
    with pytest.raises(ConditionError, match="text-conditioned"):
        pipe.generate(labels={"pitch": 60}, progress=False)
    with pytest.raises(PipelineError, match="duration"):
        pipe.generate("x", duration=-1, progress=False)
    with pytest.raises(PipelineError, match="longer than"):
        pipe.generate("x", duration=16000, progress=False)
    with pytest.raises(PipelineError, match="guidance"):
        pipe.generate("x", guidance=float("nan"), progress=False)
    with pytest.raises(PipelineError, match="steps"):
        pipe.generate("x", steps=0, progress=False)
    with pytest.raises(PipelineError, match="sampler"):
        pipe.generate("x", sampler="nope", progress=False)
    with pytest.raises(PipelineError, match="seed"):
        pipe.generate(["a", "b"], seed=[1], progress=False)


def test_save_load_round_trip_and_errors(pipe, tiny_model, tmp_path):
    out = pipe.save_pretrained(tmp_path / "copy")
    with pytest.raises(FileExistsError):
        pipe.save_pretrained(out)
    again = AudioLDM.from_pretrained(out)
    a = pipe.generate("guitar", duration=0.2, steps=3, seed=3, progress=False).audio
    b = again.generate("guitar", duration=0.2, steps=3, seed=3, progress=False).audio
    np.testing.assert_allclose(a, b, atol=1e-5)
    index = json.loads((out / "model_index.json").read_text())
    assert index["format"] == "audioldm" and index["sample_rate"] == 16000 and index["conditioning"] == "text"

    with pytest.raises(PipelineError, match="not found"):
        AudioLDM.from_pretrained(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "unet" / "model.safetensors").unlink()
    with pytest.raises(PipelineError, match="unet.*model.safetensors"):
        AudioLDM.from_pretrained(broken)
    # a config that does not match the weights names the component file and key
    cfg = json.loads((out / "unet" / "config.json").read_text())
    cfg["block_channels"] = [32, 48]
    shutil.copytree(out / "unet", broken / "unet", dirs_exist_ok=True)
    (broken / "unet" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(PipelineError, match="unet"):
        AudioLDM.from_pretrained(broken)
    # components that do not fit together
    mism = tmp_path / "mism"
    shutil.copytree(out, mism)
    cfg = json.loads((out / "conditioner" / "config.json").read_text())
    cfg["pooled_dim"] = 16
    cond = pipe.conditioner.__class__(pipe.conditioner.config.__class__(
        **{k: v for k, v in cfg.items() if k != "kind"}))
    from audioldm.conditioning.io import save_conditioner
    save_conditioner(mism / "conditioner", cond, overwrite=True)
    with pytest.raises(PipelineError, match="cond_dim"):
        AudioLDM.from_pretrained(mism)


def test_label_model_and_bf16_on_cpu(pipe):
    cond = LabelConditioner(LabelConditionerConfig(fields=[LabelField("instrument", values=["flute", "piano"]),
                                                           LabelField("pitch", "numeric", low=40, high=90)],
                                                   dim=16, pooled_dim=32))
    unet = type(pipe.unet)(type(pipe.unet.config)(**{**pipe.unet.config.__dict__, "context_dim": None}))
    lab = AudioLDM(pipe.vae, unet, pipe.schedule, cond, pipe.vocoder, pipe.defaults)
    r = lab.generate(labels=[{"instrument": "piano", "pitch": 60}], duration=0.2, steps=2, seed=0, progress=False,
                     negative_labels={"instrument": "flute"})
    assert r.audio.shape == (1, 3200) and r.labels == [{"instrument": "piano", "pitch": 60}]
    with pytest.raises(ConditionError, match="valid"):
        lab.generate(labels={"instrument": "tuba"}, progress=False)
    with pytest.raises(ConditionError, match="label-conditioned"):
        lab.generate("piano", progress=False)
    # a label model whose conditioner reads prompts: text is parsed into the same labels
    cond.config.fields[1].note_names = True
    cond.config.parse_prompts = True
    a = lab.generate("a piano playing C4", duration=0.2, steps=2, seed=0, progress=False)
    b = lab.generate(labels={"instrument": "piano", "pitch": 60}, duration=0.2, steps=2, seed=0, progress=False)
    assert a.labels == [{"instrument": "piano", "pitch": 60}] and a.prompts == ["a piano playing C4"]
    np.testing.assert_array_equal(a.audio, b.audio)
    with pytest.raises(ConditionError, match="names nothing"):
        lab.generate("a cat", progress=False)
    f32 = pipe.generate("piano", duration=0.2, steps=3, seed=2, progress=False).audio
    pipe.to("cpu", torch.bfloat16)
    try:
        bf = pipe.generate("piano", duration=0.2, steps=3, seed=2, progress=False).audio
    finally:
        pipe.to("cpu", torch.float32)
    assert np.isfinite(bf).all() and bf.shape == f32.shape
    assert np.corrcoef(bf[0], f32[0])[0, 1] > 0.5, "bf16 compute should stay close to float32"
    with pytest.raises(PipelineError, match="float16"):
        pipe.to("cpu", torch.float16)


def _note(seconds=0.96, sr=16000, f0=330.0):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * 3 * f0 * t)).astype(np.float32)


def test_transform_strength(pipe):
    x = _note()
    low = pipe.transform(x, prompt="flute", strength=0.0, steps=6, seed=0, progress=False)
    high = pipe.transform(x, prompt="flute", strength=1.0, steps=6, seed=0, progress=False)
    mid = pipe.transform(x, prompt="flute", strength=0.5, steps=6, seed=0, progress=False)
    assert low.audio.shape == (1, len(x)) and low.params["strength"] == 0.0
    # strength 0 keeps the input's latents exactly (VAE + vocoder reconstruction); more strength moves further away
    with torch.no_grad():
        z0 = pipe.encode(torch.from_numpy(x)[None], low.latents.shape[2] * pipe.vae.config.downsample)
    torch.testing.assert_close(low.latents, z0)
    d = [float((r.latents - z0).pow(2).mean()) for r in (low, mid, high)]
    assert d[0] < d[1] < d[2], d
    # a path works too, and a different sample rate is resampled
    two = pipe.transform(np.stack([x, x]), prompt=["flute", "piano"], strength=0.5, steps=4, seed=0, progress=False)
    assert two.audio.shape == (2, len(x))
    rs = pipe.transform(_note(sr=8000), prompt="flute", sample_rate=8000, strength=0.3, steps=4, progress=False)
    assert rs.audio.shape == (1, len(x))


def test_inpaint_keeps_outside_and_changes_inside(pipe):
    x = _note()
    r = pipe.inpaint(x, 0.32, 0.64, prompt="flute c5", steps=6, seed=0, progress=False)
    out = r.audio[0]
    s0, s1 = int(0.32 * 16000), int(0.64 * 16000)
    np.testing.assert_array_equal(out[:s0], x[:s0])
    np.testing.assert_array_equal(out[s1:], x[s1:])
    inside = slice(s0 + 320, s1 - 320)
    assert np.abs(out[inside] - x[inside]).mean() > 0.05 * np.abs(x[inside]).mean()
    # the kept latent frames end exactly at the input's latents, the masked ones do not
    with torch.no_grad():
        z0 = pipe.encode(torch.from_numpy(x)[None], r.latents.shape[2] * 4)
    torch.testing.assert_close(r.latents[:, :, :8], z0[:, :, :8])
    assert (r.latents[:, :, 8:16] - z0[:, :, 8:16]).abs().mean() > 0.05
    with pytest.raises(ValueError, match="start < end"):
        pipe.inpaint(x, 0.5, 0.4, prompt="x", progress=False)


def test_super_resolution_keeps_low_band(pipe):
    import torchaudio.functional as AF
    x = torch.from_numpy(_note()) + 0.05 * torch.randn(15360, generator=torch.Generator().manual_seed(0))
    lp = AF.lowpass_biquad(AF.lowpass_biquad(x, 16000, 2500.0), 16000, 2500.0)
    r = pipe.super_resolve(lp.numpy(), cutoff_hz=3000.0, prompt="flute", steps=6, seed=0, progress=False)
    out = torch.from_numpy(r.audio[0])
    win = torch.hann_window(1024)
    spec = lambda s: torch.stft(s, 1024, 256, window=win, return_complex=True).abs()  # noqa: E731
    a, b = spec(lp), spec(out)
    low, high = slice(1, 180), slice(220, 513)  # bins below 2.8 kHz / above 3.4 kHz
    rel = float((a[low] - b[low]).norm() / a[low].norm())
    assert rel < 0.05, rel  # the low band is the input's
    assert float(b[high].pow(2).sum()) > 2 * float(a[high].pow(2).sum())  # the high band is regenerated
    # ... by the model, in context: the latent columns below the cutoff are the input's, those above are generated,
    # and the output's high band is the vocoded high band of those latents (not any noise of some energy)
    k = r.params["kept_latent_columns"]
    assert 0 < k < r.latents.shape[-1]
    with torch.no_grad():
        z0 = pipe.encode(lp[None], r.latents.shape[2] * pipe.vae.config.downsample)
        gen = pipe.vocoder(r.mels)[0, :len(out)]
    torch.testing.assert_close(r.latents[..., :k], z0[..., :k], atol=1e-5, rtol=0)
    assert (r.latents[..., k:] - z0[..., k:]).abs().mean() > 0.05
    g = spec(gen)
    err = float((b[high] - g[high]).norm() / g[high].norm())
    other = pipe.super_resolve(lp.numpy(), cutoff_hz=3000.0, prompt="flute", steps=6, seed=1, progress=False)
    err_other = float((spec(torch.from_numpy(other.audio[0]))[high] - g[high]).norm() / g[high].norm())
    assert err < 0.01 and err_other > 0.3, (err, err_other)
