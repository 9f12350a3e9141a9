"""recipes/distill/run.py on the tiny text model: the student (one evaluation per step, guidance as an input) lands
near its teacher's sample for the same seed; the folder it writes loads as a normal model whose defaults use it, and
refuses steps, guidance, samplers and negative prompts it was not distilled for."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from audioldm import AudioLDM
from audioldm.errors import PipelineError

ROOT = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(ROOT / "recipes" / "distill" / "run.py")]


def _run(model, data, out, *extra, check=True):
    cmd = RUN + ["--model", str(model), "--data", str(data), "--out", str(out), "--preset", "tiny", "--no-progress",
                 *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"recipe failed ({p.returncode}):\n{p.stderr[-4000:]}")
    return p


@pytest.fixture(scope="module")
def distilled(tiny_model, tiny_notes, tmp_path_factory):
    out = tmp_path_factory.mktemp("distill") / "run"
    _run(tiny_model, tiny_notes[0] / "manifest.jsonl", out, "--steps", "120", "--pairs", "96")
    return out


def test_student_lands_near_its_teacher(tiny_model, distilled):
    teacher, student = AudioLDM.from_pretrained(tiny_model), AudioLDM.from_pretrained(distilled / "model")
    assert student.defaults.steps == 2 and student.unet.config.guidance_embed
    assert student.distilled.teacher.startswith("tiny@") and student.distilled.steps == [1, 2]
    prompts = ["a loud piano note", "a soft violin note"]
    kw = dict(duration=0.64, guidance=3.0, progress=False)
    t0 = teacher.generate(prompts, seed=0, **kw).latents
    t1 = teacher.generate(prompts, seed=100, **kw).latents
    s0 = student.generate(prompts, seed=0, **kw).latents
    between_seeds = (t0 - t1).pow(2).mean()
    assert (s0 - t0).pow(2).mean() < 0.5 * between_seeds
    # the recipe's own report says the same on held-out conditions, and 2 student steps beat 2 plain DPM++ steps
    rows = json.loads((distilled / "report.json").read_text())["rows"]
    assert rows["student (2 steps)"]["mse_to_teacher"] < rows["teacher, another seed"]["mse_to_teacher"]
    assert rows["student (2 steps)"]["mse_to_teacher"] < rows["dpmpp_2m, 2 steps (CFG)"]["mse_to_teacher"]
    assert rows["student (2 steps)"]["evals"] == 2


def test_student_counts_one_evaluation_per_step(distilled):
    student = AudioLDM.from_pretrained(distilled / "model")
    calls = []
    student.unet.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    student.generate("a loud piano note", seed=0, progress=False, steps=1)
    student.generate("a loud piano note", seed=0, progress=False)
    assert calls == [1, 1, 1]  # one clip: batch 1 (no unconditional half); 1 step, then the default 2 steps


def test_student_refuses_what_it_was_not_distilled_for(distilled):
    student = AudioLDM.from_pretrained(distilled / "model")
    lo, hi = student.distilled.guidance_min, student.distilled.guidance_max
    with pytest.raises(PipelineError, match=r"steps=4: this model is distilled for steps in \[1, 2\]"):
        student.generate("a piano note", steps=4, progress=False)
    with pytest.raises(PipelineError, match=rf"guidance=9: .*\[{lo:g}, {hi:g}\]"):
        student.generate("a piano note", guidance=9.0, progress=False)
    with pytest.raises(PipelineError, match="sampler='heun'"):
        student.generate("a piano note", sampler="heun", progress=False)
    with pytest.raises(PipelineError, match="no unconditional branch"):
        student.generate("a piano note", negative_prompt="violin", progress=False)
    p = subprocess.run([sys.executable, "-m", "audioldm.cli", "generate", "a piano note", "--model",
                        str(distilled / "model"), "--steps", "25", "--out", str(distilled / "x.wav")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "distilled for steps in [1, 2]" in p.stderr and "Traceback" not in p.stderr


def test_distilled_folder_consistency_is_checked(distilled, tmp_path):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(distilled / "model", bad)
    idx = json.loads((bad / "model_index.json").read_text())
    idx["distilled"]["sigmas"]["2"] = [1.0, 2.0, 0.0]
    (bad / "model_index.json").write_text(json.dumps(idx))
    with pytest.raises(PipelineError, match=r"sigmas\['2'\] must be 2 \+ 1 descending"):
        AudioLDM.from_pretrained(bad)
    del idx["distilled"]
    (bad / "model_index.json").write_text(json.dumps(idx))
    with pytest.raises(PipelineError, match="guidance_embed"):
        AudioLDM.from_pretrained(bad)


def test_recipe_flag_errors(tiny_model, tiny_notes, distilled, tmp_path):
    data = tiny_notes[0] / "manifest.jsonl"
    p = _run(tiny_model, data, tmp_path / "a", "--mid-sigma", "1000", check=False)
    assert p.returncode != 0 and "--mid-sigma must lie in" in p.stderr
    p = _run(distilled / "model", data, tmp_path / "b", check=False)
    assert p.returncode != 0 and "already a distilled student" in p.stderr
    p = _run(tiny_model, data, tmp_path / "c", "--guidance-range", "3", "1", check=False)
    assert p.returncode != 0 and "--guidance-range" in p.stderr
    p = _run(tiny_model, data, tmp_path / "d", "--init", str(tiny_model), check=False)
    assert p.returncode != 0 and "not a distilled student of --model" in p.stderr


def test_guidance_embedding_starts_at_zero():
    from audioldm.training.distill_stage import make_student
    from audioldm.unet import UNET_PRESETS, UNet
    torch.manual_seed(0)
    teacher = UNet(UNET_PRESETS["tiny"](cond_dim=8)).eval()
    student = make_student(teacher).eval()
    x, t, c = torch.randn(2, 4, 8, 8), torch.tensor([10.0, 500.0]), {"pooled": torch.randn(2, 8)}
    with torch.no_grad():
        torch.testing.assert_close(student(x, t, {**c, "guidance": torch.tensor([1.0, 7.0])}), teacher(x, t, c))
    with pytest.raises(ValueError, match=r"needs cond\['guidance'\]"):
        student(x, t, c)


def _student_path(diff, batch, s_max: float, s_mid: float):
    """The student's two x0 estimates along its own path (sigma_max -> x0 estimate -> DDIM jump to s_mid -> x0),
    computed with the public denoiser, one evaluation at a time."""
    c = {"pooled": torch.stack(batch["inputs"]), "guidance": batch["w"]}
    b = len(batch["w"])
    with torch.no_grad():
        x1 = diff.denoise(batch["y"], torch.full((b,), s_max), c).float()
        y_mid = x1 + (batch["y"] - x1) * (s_mid / s_max)
        x2 = diff.denoise(y_mid, torch.full((b,), s_mid), c).float()
    return x1, x2


def test_mel_loss_is_the_decoded_l1_and_trains_only_the_student():
    """--mel-weight: the stage adds weight * (L1 of the decoded log-mels, per evaluation) to the latent MSE, and its
    gradient reaches the student through a frozen decoder."""
    from audioldm.diffusion import LatentDiffusion, NoiseSchedule, ScheduleConfig
    from audioldm.training.distill_stage import DistillStage, make_student
    from audioldm.training.trainer import StepContext
    from audioldm.unet import UNET_PRESETS, UNet
    torch.manual_seed(0)
    student = make_student(UNet(UNET_PRESETS["tiny"](cond_dim=8)))
    diff = LatentDiffusion(student, NoiseSchedule(ScheduleConfig(prediction="v")))
    conv = torch.nn.Conv2d(4, 3, 1).requires_grad_(False)
    decoder = lambda z: conv(z).flatten(1, 2)  # noqa: E731  [B, 4, 8, 8] -> [B, 24, 8] "log-mel"

    class Cond(torch.nn.Module):
        def forward(self, inputs):
            return {"pooled": torch.stack(inputs)}

    cond = Cond()
    batch = {"y": 20 * torch.randn(2, 4, 8, 8), "x0": torch.randn(2, 4, 8, 8), "w": torch.tensor([2.0, 3.0]),
             "inputs": [torch.randn(8), torch.randn(8)]}
    ctx = StepContext(step=0, epoch=0, seed=0, device=torch.device("cpu"), info=None, ema={})
    with pytest.raises(ValueError, match="needs a decoder"):
        DistillStage(diff, cond, [20.0, 1.0, 0.0], mel_weight=0.5)
    plain = next(DistillStage(diff, cond, [20.0, 1.0, 0.0]).train_step(batch, ctx))[1]
    _, loss, logs = next(DistillStage(diff, cond, [20.0, 1.0, 0.0], decoder=decoder, mel_weight=0.5)
                         .train_step(batch, ctx))
    # the expected terms, computed here from the student's two evaluations (not from the stage's own logs)
    x1, x2 = _student_path(diff, batch, 20.0, 1.0)
    with torch.no_grad():
        mel = [(decoder(x) - decoder(batch["x0"])).abs().mean() for x in (x1, x2)]
    assert mel[0] > 0 and mel[1] > 0
    torch.testing.assert_close(loss, plain + 0.5 * (mel[0] + mel[1]), rtol=1e-4, atol=1e-5)
    loss.backward()
    assert student.conv_out.weight.grad.abs().sum() > 0 and conv.weight.grad is None


def test_adversarial_term_trains_student_and_critic_apart():
    """--adv-weight: the student's loss gains weight * LSGAN generator loss from the critic; the critic's own loss
    (teacher samples real, both student evaluations fake) reaches the critic only."""
    from audioldm.diffusion import LatentDiffusion, NoiseSchedule, ScheduleConfig
    from audioldm.training.distill_stage import DistillStage, LatentCritic, make_student
    from audioldm.training.trainer import StepContext
    from audioldm.unet import UNET_PRESETS, UNet
    torch.manual_seed(0)
    student = make_student(UNet(UNET_PRESETS["tiny"](cond_dim=8)))
    diff = LatentDiffusion(student, NoiseSchedule(ScheduleConfig(prediction="v")))

    class Cond(torch.nn.Module):
        def forward(self, inputs):
            return {"pooled": torch.stack(inputs)}

    critic = LatentCritic(4, 8, width=8)
    batch = {"y": 20 * torch.randn(2, 4, 8, 8), "x0": torch.randn(2, 4, 8, 8), "w": torch.tensor([2.0, 3.0]),
             "inputs": [torch.randn(8), torch.randn(8)]}
    ctx = StepContext(step=0, epoch=0, seed=0, device=torch.device("cpu"), info=None, ema={})
    with pytest.raises(ValueError, match="needs a critic"):
        DistillStage(diff, Cond(), [20.0, 1.0, 0.0], adv_weight=0.1)
    stage = DistillStage(diff, Cond(), [20.0, 1.0, 0.0], critic=critic, adv_weight=0.1)
    assert set(stage.modules()) == {"unet", "critic"} and stage.ema_modules() == ["unet"]
    plain = next(DistillStage(diff, Cond(), [20.0, 1.0, 0.0]).train_step(batch, ctx))[1]
    steps = list(stage.train_step(batch, ctx))
    assert [s[0] for s in steps] == ["unet", "critic"]
    (_, g_loss, g_logs), (_, d_loss, _) = steps
    x1, x2 = _student_path(diff, batch, 20.0, 1.0)
    c = torch.stack(batch["inputs"])
    with torch.no_grad():  # LSGAN's generator loss on both evaluations, computed here
        g = sum(((critic(x, c) - 1) ** 2).mean() for x in (x1, x2)) / 2
    torch.testing.assert_close(g_loss, plain + 0.1 * g, rtol=1e-4, atol=1e-5)
    assert critic(batch["x0"], c).shape == (2, 1, 4, 4)
    d_loss.backward()
    assert critic.head.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in student.parameters())  # the student's samples were detached
