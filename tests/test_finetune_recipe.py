"""recipes/finetune/run.py on a tiny random diffusers AudioLDM folder (CLAP text encoder, FiLM U-Net) and a tiny
captioned folder: LoRA fine-tuning (loss falls, SRC untouched, adapter small, base + adapter = merged model, output
changed), adapters applied to a base and refused on another, full fine-tuning resumed after kill -9, and the LoRA
file readers' errors."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("peft")
pytest.importorskip("diffusers")
from test_convert_diffusers import build_diffusers_folder  # noqa: E402

from audioldm.lora import LoraError, add_lora, merge_lora, read_lora, save_lora, unmerge_lora  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(ROOT / "recipes" / "finetune" / "run.py")]


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    d = tmp_path_factory.mktemp("ft") / "audioldm-tiny"
    build_diffusers_folder(d, {"num_heads": 2})
    return d


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Barks (noise bursts) and piano (tones) at 22.05 kHz: the recipe resamples them to SRC's 16 kHz."""
    d = tmp_path_factory.mktemp("ftdata") / "sounds"
    sr = 22050
    rng = np.random.default_rng(0)
    for kind, folder in (("noise", "a dog barking"), ("tone", "loud piano")):
        (d / folder).mkdir(parents=True)
        for k in range(8):
            t = np.arange(int(0.5 * sr)) / sr
            x = rng.standard_normal(len(t)) if kind == "noise" else np.sin(2 * np.pi * (200 + 20 * k) * t)
            sf.write(d / folder / f"{k}.wav", (0.4 * np.exp(-4 * t) * x).astype(np.float32), sr)
    return d


def _run(src, data, out, *extra, check=True, popen=False):
    cmd = RUN + ["--model", str(src), "--data", str(data), "--out", str(out), "--preset", "tiny", "--no-progress",
                 "--valid-fraction", "0.2", "--judge-steps", "20", *extra]
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"recipe failed ({p.returncode}):\n{p.stderr[-4000:]}")
    return p


@pytest.fixture(scope="module")
def lora_run(src, data, tmp_path_factory):
    before = _digest(src)
    out = tmp_path_factory.mktemp("lora") / "out"
    p = _run(src, data, out, "--lora-rank", "4", "--steps", "40", "--lr", "5e-3")
    return out, before, p


def test_lora_finetune(src, lora_run):
    from audioldm import AudioLDM

    out, before, p = lora_run
    assert _digest(src) == before  # nothing written into SRC
    assert "resampled to" in p.stderr and p.stderr.count("resampled to") == 1
    losses = [json.loads(ln)["loss_unet"] for ln in (out / "finetune" / "metrics.jsonl").read_text().splitlines()
              if "loss_unet" in ln]
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses
    cfg = json.loads((out / "lora" / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 4 and cfg["base_model_name_or_path"].startswith("audioldm-tiny@")
    assert "/" not in cfg["base_model_name_or_path"]
    unet_bytes = sum(f.stat().st_size for f in (out / "model" / "unet").glob("*.safetensors"))
    assert (out / "lora" / "adapter_model.safetensors").stat().st_size < 0.05 * unet_bytes
    rep = json.loads((out / "report.json").read_text())  # one judge, the source and the fine-tuned model
    assert set(rep) == {"source", "fine-tuned"} and rep["source"]["judge"] == rep["fine-tuned"]["judge"]
    assert "generated (all held-out conditions)" in rep["fine-tuned"]["rows"]
    rec = json.loads((out / "stages" / "finetune.json").read_text())
    assert rec["cached_conditions"] == 2 and rec["trainable_params"] < 0.1 * rec["unet_params"]

    base, merged = AudioLDM.from_pretrained(src), AudioLDM.from_pretrained(out / "model")
    kw = dict(duration=0.32, steps=3, seed=0, progress=False)
    b, m = base.generate("a dog barking", **kw).latents, merged.generate("a dog barking", **kw).latents
    assert (b - m).abs().max() > 1e-3 * b.abs().max()  # fine-tuning changed the output (random vocoder: ~0 audio)
    base.load_lora(out / "lora")  # base + adapter = the merged model
    x = torch.randn(2, base.unet.config.in_channels, 8, 4)
    t, c = torch.tensor([10.0, 500.0]), merged.conditioner(["a dog barking"] * 2)
    with torch.no_grad():
        torch.testing.assert_close(base.unet(x, t, c), merged.unet(x, t, c), atol=1e-5, rtol=0)
    base.unload_loras()
    # the fine-tuned model goes back to diffusers (the round trip's parity: test_convert_diffusers.py)
    from audioldm.cli import main
    import diffusers
    assert main(["convert", str(out / "model"), str(out / "diffusers"), "--to", "diffusers"]) == 0
    theirs = diffusers.AudioLDMPipeline.from_pretrained(out / "diffusers")
    for k, v in merged.unet.state_dict().items():
        assert torch.equal(v, theirs.unet.state_dict()[k]), k
    fresh = AudioLDM.from_pretrained(src)
    for (k, v), w in zip(base.unet.state_dict().items(), fresh.unet.state_dict().values()):
        torch.testing.assert_close(v, w, atol=1e-6, rtol=0, msg=k)  # unmerged exactly


def test_peft_unmerged_forward_equals_the_merge(src):
    """An injected (unmerged) peft model and the merge of its saved adapter compute the same U-Net."""
    from audioldm import AudioLDM

    pipe = AudioLDM.from_pretrained(src)
    ref = AudioLDM.from_pretrained(src).unet
    unet = add_lora(pipe.unet, 4, 8.0, ("attention", "resnet", "film"))
    with torch.no_grad():
        for n, q in unet.named_parameters():
            if "lora_B" in n:
                q.normal_(0, 0.02)
    x, t = torch.randn(1, ref.config.in_channels, 8, 4), torch.tensor([300.0])
    c = pipe.conditioner(["rain on the roof"])
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        save_lora(Path(d) / "a", unet, "base@0")
        ad = read_lora(Path(d) / "a")
    assert any(".conv1" in n for n in ad.factors) and any("time_emb_proj" in n for n in ad.factors)
    merge_lora(ref, ad)
    with torch.no_grad():
        torch.testing.assert_close(unet(x, t, c), ref(x, t, c), atol=1e-5, rtol=0)


def test_adapters_that_do_not_fit_are_refused(tmp_path, lora_run):
    from audioldm import AudioLDM
    from audioldm.pretrained import default_model

    out = lora_run[0]
    other = AudioLDM.from_pretrained(default_model())  # the shipped GM-notes model: another U-Net
    before = {k: v.clone() for k, v in other.unet.state_dict().items()}
    with pytest.raises(LoraError, match="an adapter for audioldm-tiny@.*this model is gm-notes-fast@"):
        other.load_lora(out / "lora")
    with pytest.raises(LoraError, match="adapter for another model|do not fit"):  # forced: the shapes still decide
        other.load_lora(out / "lora", force=True)
    assert all(torch.equal(v, other.unet.state_dict()[k]) for k, v in before.items())  # nothing changed
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(LoraError, match="not a readable safetensors"):
        read_lora(bad)
    (tmp_path / "x.bin").write_bytes(b"0")
    with pytest.raises(LoraError, match="pickle"):
        read_lora(tmp_path / "x.bin")
    with pytest.raises(LoraError, match="rank must be a positive"):
        add_lora(other.unet, 0)
    p = subprocess.run(RUN + ["--model", str(lora_run[0] / "model"), "--data", "x", "--out", str(tmp_path / "o"),
                              "--lora-rank", "0"], capture_output=True, text=True)
    assert p.returncode != 0 and "--lora-rank must be a positive integer" in p.stderr


def test_cli_generate_with_lora(tmp_path):
    """audioldm generate --lora PATH[:SCALE] on the shipped teacher (any step count): scale 1 is the merged model,
    0.5 lies elsewhere."""
    import audioldm
    from audioldm import AudioLDM
    from audioldm.files import portable_model_id

    teacher = Path(audioldm.__file__).parent / "pretrained" / "gm-notes"
    pipe = AudioLDM.from_pretrained(teacher)
    torch.manual_seed(0)
    unet = add_lora(AudioLDM.from_pretrained(teacher).unet, 2)
    with torch.no_grad():
        for n, q in unet.named_parameters():
            if "lora_B" in n:
                q.normal_(0, 0.3)
    save_lora(tmp_path / "lora", unet, portable_model_id(teacher))
    wavs = {}
    for name, spec in (("half", f"{tmp_path / 'lora'}:0.5"), ("full", str(tmp_path / "lora"))):
        wavs[name] = tmp_path / f"{name}.wav"
        p = subprocess.run(["audioldm", "generate", "a violin playing C5", "--model", str(teacher), "--steps", "4",
                            "--seed", "0", "--duration", "0.4", "-o", str(wavs[name]), "--quiet", "--lora", spec],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    half, full = sf.read(wavs["half"])[0], sf.read(wavs["full"])[0]
    pipe.load_lora(tmp_path / "lora")
    merged = pipe.generate("a violin playing C5", duration=0.4, steps=4, seed=0, progress=False).audio[0]
    np.testing.assert_allclose(full, merged, atol=2e-3)  # (the WAV is 16-bit)
    assert np.abs(half - full).max() > 1e-2


def test_full_finetune_resumes_after_kill(src, data, tmp_path):
    out = tmp_path / "full"
    proc = _run(src, data, out, "--steps", "40", popen=True)
    ck = out / "finetune" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not (ck.is_dir() and any(ck.glob("step_*"))) and proc.poll() is None:
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    p = _run(src, data, out, "--steps", "40", "--resume")
    assert "resumed from" in p.stderr
    rec = json.loads((out / "stages" / "finetune.json").read_text())
    assert rec["steps"] == 40 and rec["mode"] == "full"
    assert not (out / "lora").exists() and (out / "model" / "model_index.json").is_file()
    index = json.loads((out / "model" / "model_index.json").read_text())
    assert index["info"]["base_model"].startswith("audioldm-tiny@") and index["info"]["finetune"] == "full"


def test_lora_finetune_under_torchrun_matches_one_process(src, data, lora_run, tmp_path):
    """torchrun --nproc_per_node 2 (gloo, CPU): the same losses as the one-process run, one adapter written."""
    out = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] + RUN[1:] + [
        "--model", str(src), "--data", str(data), "--out", str(out), "--preset", "tiny", "--no-progress",
        "--valid-fraction", "0.2", "--judge-steps", "20", "--lora-rank", "4", "--steps", "40", "--lr", "5e-3"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1"))
    assert p.returncode == 0, p.stderr[-3000:]

    def losses(run):
        return [(r["step"], r["loss_unet"]) for r in map(json.loads, (run / "finetune" / "metrics.jsonl")
                                                         .read_text().splitlines()) if "loss_unet" in r]
    one, two = losses(lora_run[0]), losses(out)
    assert [s for s, _ in one] == [s for s, _ in two] and len(one) >= 3
    for (s, a), (_, b) in zip(one, two):
        assert abs(a - b) <= 1e-3 * abs(a), (s, a, b)
    assert (out / "lora" / "adapter_model.safetensors").is_file() and (out / "model" / "model_index.json").is_file()


def test_diffusers_lora_layouts_read_to_the_same_update(tmp_path):
    """peft-in-diffusers keys (unet.X.lora_A/B.weight) and the older attention-processor keys
    (unet.X.processor.to_q_lora.down/up.weight) name the same modules as ours, with alpha / r scaling."""
    from safetensors.torch import save_file

    from audioldm.unet import UNET_PRESETS, UNet

    unet = UNet(UNET_PRESETS["tiny"](cond_dim=32, context_dim=32))
    attn = next(n for n, _ in unet.named_modules() if n.endswith("attn1"))
    w = dict(unet.named_modules())[f"{attn}.to_q"].weight
    torch.manual_seed(0)
    a, b = torch.randn(2, w.shape[1]), torch.randn(w.shape[0], 2)
    save_file({f"unet.{attn}.to_q.lora_A.weight": a, f"unet.{attn}.to_q.lora_B.weight": b,
               f"unet.{attn}.to_q.alpha": torch.tensor(4.0)}, str(tmp_path / "new.safetensors"))
    save_file({f"unet.{attn}.processor.to_q_lora.down.weight": a, f"unet.{attn}.processor.to_q_lora.up.weight": b,
               f"unet.{attn}.processor.to_out_lora.down.weight": torch.randn(2, w.shape[0]),
               f"unet.{attn}.processor.to_out_lora.up.weight": torch.randn(w.shape[0], 2)},
              str(tmp_path / "old.safetensors"))
    new, old = read_lora(tmp_path / "new.safetensors"), read_lora(tmp_path / "old.safetensors")
    assert list(new.factors) == [f"{attn}.to_q"] and set(old.factors) == {f"{attn}.to_q", f"{attn}.to_out.0"}
    torch.testing.assert_close(new.delta(f"{attn}.to_q"), 2.0 * (b @ a))  # alpha 4 / rank 2
    torch.testing.assert_close(old.delta(f"{attn}.to_q"), b @ a)  # no alpha: scale 1
    before = w.clone()
    merge_lora(unet, old, 0.5)
    torch.testing.assert_close(w, before + 0.5 * (b @ a))
    unmerge_lora(unet, old, 0.5)
    torch.testing.assert_close(w, before, atol=1e-6, rtol=0)


def test_an_adapter_for_another_base_is_refused_unless_forced(tmp_path):
    """An adapter records its base as NAME@HASH: merged into another model whose shapes fit (the teacher's adapter on
    its student), it is refused before anything changes, naming both ids, unless force=True / --force."""
    import audioldm
    from audioldm import AudioLDM
    from audioldm.files import portable_model_id

    shipped = Path(audioldm.__file__).parent / "pretrained"
    teacher, student = shipped / "gm-notes", shipped / "gm-notes-fast"
    torch.manual_seed(0)
    save_lora(tmp_path / "lora", add_lora(AudioLDM.from_pretrained(teacher).unet, 2), portable_model_id(teacher))
    pipe = AudioLDM.from_pretrained(student)
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    with pytest.raises(LoraError, match=f"an adapter for {portable_model_id(teacher)}.*this model is gm-notes-fast@"):
        pipe.load_lora(tmp_path / "lora")
    assert all(torch.equal(v, pipe.unet.state_dict()[k]) for k, v in before.items())
    pipe.load_lora(tmp_path / "lora", force=True)
    assert len(pipe.loras) == 1
    args = ["audioldm", "generate", "violin C5", "--model", str(student), "-o", str(tmp_path / "x.wav"), "--quiet",
            "--lora", str(tmp_path / "lora")]
    p = subprocess.run(args, capture_output=True, text=True)
    assert p.returncode == 2 and "--force" in p.stderr
    assert subprocess.run(args + ["--force"], capture_output=True, text=True).returncode == 0
