"""The GM judge: a harder, shipped evaluator for General-MIDI note models than a classifier over the model's own few
instruments. One CNN (:class:`JudgeNet`) over 16 kHz log-mels of whole notes (2 s: onset to release tail), with two
heads:

- **family**: the 16 General-MIDI families (piano, chromatic percussion, organ, ... sound effects) plus drums;
- **program**: the 128 GM programs plus the drum kit;

trained jointly (:func:`train_judge`) on renders of all 128 programs from several named soundfonts
(``recipes/gm_notes/train_judge.py``, which writes ``audioldm/pretrained/gm-judge``). Its embedding (the layer both
heads read) serves for Fréchet distances.

:func:`load_gm_judge` reads a judge folder; :meth:`GMJudge.score` gives family and program accuracy of a set of clips
against the labels they were meant to have; :func:`gm_decomposition` scores a GM-note model stage by stage (real ->
vocoder -> VAE + vocoder -> generated) on held-out label combinations, with pitch and FD beside them. Clips shorter
than the judge's clip length are padded with silence (the log floor), longer ones cut, so every set is judged on the
same window.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..pretrained import gm_judge_path
from .classifier import conv_trunk, fit_classifier

__all__ = ["FAMILIES", "PROGRAMS", "JudgeConfig", "JudgeNet", "train_judge", "GMJudge", "load_gm_judge",
           "family_of", "program_class", "gm_decomposition", "decomposition_table"]

FAMILIES = ["piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass", "reed",
            "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive", "sound effects", "drums"]
PROGRAMS = [f"program {i}" for i in range(128)] + ["drum kit"]
DRUMS = 128  # the drum kit's program number here (as audioldm.data.gm_notes.DRUM_PROGRAM)


def family_of(program: int) -> str:
    """GM family name of a program number 0-127, or "drums" for 128."""
    return "drums" if int(program) == DRUMS else FAMILIES[int(program) // 8]


def program_class(program: int) -> str:
    return "drum kit" if int(program) == DRUMS else f"program {int(program)}"


@dataclass
class JudgeConfig:
    families: list[str] = field(default_factory=lambda: list(FAMILIES))
    programs: list[str] = field(default_factory=lambda: list(PROGRAMS))
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    embed_dim: int = 128
    time_pool: int = 2  # frames averaged before the CNN (timbre needs no 10 ms detail)
    n_mels: int = 64

    def __post_init__(self):
        if not self.families or not self.programs:
            raise ValueError("JudgeConfig: families and programs must be non-empty")
        if self.time_pool < 1 or not self.channels:
            raise ValueError("JudgeConfig: time_pool must be >= 1 and channels non-empty")


class JudgeNet(nn.Module):
    """Conv-BN-ReLU-maxpool blocks over (mel, time), mean and max pooled, one shared embedding, two linear heads."""

    def __init__(self, config: JudgeConfig | None = None):
        super().__init__()
        self.config = c = config or JudgeConfig()
        self.features = conv_trunk(c.channels)
        self.embed = nn.Linear(2 * c.channels[-1], c.embed_dim)
        self.family_head = nn.Linear(c.embed_dim, len(c.families))
        self.program_head = nn.Linear(c.embed_dim, len(c.programs))

    def embedding(self, mel: torch.Tensor) -> torch.Tensor:
        """log-mel [B, n_mels, F] -> [B, embed_dim]."""
        if mel.dim() != 3 or mel.shape[1] != self.config.n_mels:
            raise ValueError(f"JudgeNet: expected log-mel [B, {self.config.n_mels}, frames], got {tuple(mel.shape)}")
        x = (mel + 5.0) / 3.0
        if self.config.time_pool > 1:
            x = F.avg_pool1d(x, self.config.time_pool)
        x = self.features(x.unsqueeze(1))
        return torch.relu(self.embed(torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)))

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log-mel [B, n_mels, F] -> (family logits [B, families], program logits [B, programs])."""
        e = self.embedding(mel)
        return self.family_head(e), self.program_head(e)


def train_judge(net: JudgeNet, mels: torch.Tensor, families: torch.Tensor, programs: torch.Tensor, steps: int,
                batch_size: int = 64, lr: float = 3e-3, gain: float = 1.0, log_floor: float = math.log(1e-5),
                seed: int = 0, log=None) -> list[float]:
    """AdamW with a one-cycle schedule on mels [N, n_mels, F] and integer targets [N] for both heads (the loss is
    the sum of the two cross-entropies). Each example's level is shifted by a uniform +-``gain`` nats (clamped at
    the log floor), so the judge does not read loudness. ``log(step, loss)`` is called every 250 steps. Returns the
    loss per step; leaves the net in eval mode."""
    def level_shift(x, g):
        return (x.float() + (torch.rand(len(x), 1, 1, generator=g) * 2 - 1) * gain).clamp(min=log_floor)

    return fit_classifier(net, mels, (families, programs), steps, batch_size, lr, augment=level_shift,
                          schedule="onecycle", seed=seed, log=log)


def _program_number(name: str) -> int:
    """Inverse of program_class: "program 12" -> 12, "drum kit" -> 128."""
    return DRUMS if name == "drum kit" else int(name.split()[-1])


class GMJudge:
    """A :class:`JudgeNet` with the clip length (frames) it was trained on and its log floor (silence)."""

    def __init__(self, net: JudgeNet, frames: int, log_floor: float, info: dict | None = None):
        self.net = net.eval()
        self.frames, self.log_floor, self.info = frames, log_floor, dict(info or {})

    def fit(self, mels: torch.Tensor) -> torch.Tensor:
        """mels [N, n_mels, F] padded with silence or cut to the judge's ``frames``."""
        n = mels.shape[-1]
        if n >= self.frames:
            return mels[..., :self.frames]
        return F.pad(mels, (0, self.frames - n), value=self.log_floor)

    @torch.no_grad()
    def _batched(self, fn, mels, batch_size=128) -> list:
        m = self.fit(mels.float().cpu())
        return [fn(m[s:s + batch_size]) for s in range(0, len(m), batch_size)]

    def predict(self, mels: torch.Tensor) -> tuple[list[str], list[str]]:
        """(family names, program names) of clips mels [N, n_mels, F]. The family is the one with the most program
        probability summed over its programs (on held-out pitches this beats the family head, 98% vs 95%: the
        family head is kept as a training target that shapes the shared embedding)."""
        c = self.net.config
        probs = torch.cat([p for _, p in self._batched(self.net, mels)]).softmax(-1)  # [N, programs]
        owner = torch.tensor([c.families.index(family_of(_program_number(name))) for name in c.programs])
        fam = torch.zeros(len(probs), len(c.families)).index_add_(1, owner, probs).argmax(-1).tolist()
        return [c.families[i] for i in fam], [c.programs[i] for i in probs.argmax(-1).tolist()]

    def embed(self, mels: torch.Tensor) -> np.ndarray:
        """Judge embeddings [N, embed_dim] (float64) of mels [N, n_mels, F]."""
        return torch.cat(self._batched(self.net.embedding, mels)).numpy().astype(np.float64)

    def score(self, mels: torch.Tensor, programs: list[int]) -> dict:
        """Family and program accuracy of clips mels [N, n_mels, F] meant to be GM ``programs`` (0-128)."""
        fam, prog = self.predict(mels)
        return {"family_accuracy": float(np.mean([f == family_of(p) for f, p in zip(fam, programs)])),
                "program_accuracy": float(np.mean([q == program_class(p) for q, p in zip(prog, programs)])),
                "n": len(programs)}

    def save(self, folder, overwrite: bool = False) -> Path:
        from ..files import atomic_folder
        from ..weights import save_component
        with atomic_folder(folder, overwrite=overwrite) as tmp:
            save_component(tmp / "net", self.net, self.net.config, "gm_judge")
            (tmp / "judge.json").write_text(json.dumps({"frames": self.frames, "log_floor": self.log_floor,
                                                        **self.info}, indent=2) + "\n")
        return Path(folder)


def load_gm_judge(folder=None) -> GMJudge:
    """The judge in ``folder`` (default: the one shipped in audioldm/pretrained/gm-judge)."""
    from ..weights import WeightsError, load_component
    folder = Path(folder) if folder else gm_judge_path()
    meta = folder / "judge.json"
    if not meta.is_file():
        raise WeightsError(f"{meta}: missing; a GM judge folder holds judge.json and net/ "
                           f"(recipes/gm_notes/train_judge.py writes one)")
    info = json.loads(meta.read_text(encoding="utf-8"))
    net = load_component(folder / "net", JudgeNet, JudgeConfig, "gm_judge")
    return GMJudge(net, frames=int(info.pop("frames")), log_floor=float(info.pop("log_floor", math.log(1e-5))),
                   info=info)


def _pitch_ok(wavs: np.ndarray, sample_rate: int, pitches: list, programs: list, cents: float = 50.0) -> float:
    """Fraction of pitched clips (drums left out) whose held-part YIN f0 is within ``cents`` of their MIDI pitch."""
    from .metrics import pitch_error_cents
    errs = [abs(pitch_error_cents(w, sample_rate, q)) for w, q, p in zip(wavs, pitches, programs) if p != DRUMS]
    return float(np.mean([e <= cents for e in errs])) if errs else math.nan


def _conditions(clips, fields: list[str], limit: int, rng) -> tuple[list[str], dict]:
    """One clip per distinct label combination (JSON key -> (labels, clip)), at most ``limit`` keys drawn by ``rng``."""
    conds: dict = {}
    for c in clips:
        labels = {k: c.labels[k] for k in fields if k in c.labels}
        conds.setdefault(json.dumps(labels, sort_keys=True), (labels, c))
    keys = sorted(conds)
    if len(keys) > limit:
        keys = sorted(keys[i] for i in rng.choice(len(keys), limit, replace=False))
    return keys, conds


def _generate(pipe, keys, conds, per_condition: int, seconds: float, seed: int, settings: dict | None = None):
    """``per_condition`` generations of each combination: (audio [N, T], programs, pitches, keys), one per clip.
    ``settings``: steps / guidance / sampler for ``generate`` (default: the model's)."""
    gen, gp, gq, gk = [], [], [], []
    for k in keys:
        labels, c = conds[k]
        res = pipe.generate(labels=labels, num_per_prompt=per_condition, seed=seed, duration=seconds, progress=False,
                            **(settings or {}))
        gen.append(res.audio)
        gp += [int(c.labels["program"])] * len(res.audio)
        gq += [int(c.labels["pitch"])] * len(res.audio)
        gk += [k] * len(res.audio)
    return np.concatenate(gen), gp, gq, gk


def gm_decomposition(pipe, heldout_clips, seen: set, judge: GMJudge, seconds: float, fields: list[str],
                     per_condition: int = 2, max_conditions: int = 32, seed: int = 0, seen_clips=None,
                     settings: dict | None = None) -> dict:
    """The stage decomposition of a GM-note label model on held-out clips (labels ``program`` and ``pitch``),
    judged by ``judge``: real -> vocoder -> VAE + vocoder -> generated (all held-out conditions, and those of them
    whose label combination is in ``seen`` / not in it). ``seen_clips`` (the U-Net's training clips) adds the row
    "generated (training combinations)": up to ``max_conditions`` combinations the U-Net was trained on, its FD taken
    to those training clips. Rows: family and program accuracy, pitch within 50 cents, FD of the judge's embeddings
    to the real clips'. ``settings``: generation steps / guidance / sampler (default: the model's)."""
    from ..data import ClipDataset
    from .classifier import frechet_distance
    from .report import vocode

    rng = np.random.default_rng(seed)
    keys, conds = _conditions(heldout_clips, fields, max_conditions, rng)
    clips = [conds[k][1] for k in keys]

    def real(cl):
        ds = ClipDataset(cl, pipe.mel_config, seconds)
        items = [ds[i] for i in range(len(ds))]
        return np.stack([it["wav"].numpy() for it in items]), torch.stack([it["mel"] for it in items])

    real_wav, real_mel = real(clips)
    progs = [int(c.labels["program"]) for c in clips]
    pitches = [int(c.labels["pitch"]) for c in clips]
    sr = pipe.sample_rate
    stage_wavs = {"real (held-out)": (real_wav, progs, pitches)}
    stage_wavs["real -> vocoder"] = (vocode(pipe, real_mel, False).numpy(), progs, pitches)
    stage_wavs["real -> VAE -> vocoder"] = (vocode(pipe, real_mel, True).numpy(), progs, pitches)
    gen, gp, gq, gk = _generate(pipe, keys, conds, per_condition, seconds, seed, settings)
    stage_wavs["generated (all held-out conditions)"] = (gen, gp, gq)
    for flag, name in ((True, "generated (seen combinations)"), (False, "generated (unseen combinations)")):
        idx = [i for i, k in enumerate(gk) if (k in seen) == flag]
        if idx:
            stage_wavs[name] = (gen[idx], [gp[i] for i in idx], [gq[i] for i in idx])
    real_emb = judge.embed(real_mel)
    ref_emb = {}  # row -> the real embeddings its FD is taken to (default: the held-out clips')
    n_train = 0
    if seen_clips:
        tkeys, tconds = _conditions(seen_clips, fields, max_conditions, rng)
        n_train = len(tkeys)
        tw, tp, tq, _ = _generate(pipe, tkeys, tconds, per_condition, seconds, seed, settings)
        stage_wavs["generated (training combinations)"] = (tw, tp, tq)
        ref_emb["generated (training combinations)"] = judge.embed(real([tconds[k][1] for k in tkeys])[1])
    rows = {}
    for name, (w, p_, q_) in stage_wavs.items():
        mels = pipe.frontend(torch.from_numpy(np.ascontiguousarray(w)).to(pipe.device)).cpu()[..., :real_mel.shape[-1]]
        row = judge.score(mels, p_)
        row["pitch_within_50_cents"] = _pitch_ok(w, sr, q_, p_)
        row["frechet_to_real"] = frechet_distance(judge.embed(mels), ref_emb.get(name, real_emb))
        rows[name] = row
    return {"judge": judge.info.get("soundfonts"), "conditions": len(keys), "per_condition": per_condition,
            "unseen_conditions": sum(k not in seen for k in keys), "training_conditions": n_train,
            "seconds": seconds, "settings": pipe.settings(seconds, **{k: (settings or {}).get(k)
                                                                      for k in ("steps", "guidance", "sampler")}),
            "rows": rows}


def decomposition_table(rep: dict) -> str:
    """Markdown table of :func:`gm_decomposition`'s rows."""
    lines = ["| audio | clips | family | program | pitch ±50 cents | FD to real |", "|---|---|---|---|---|---|"]
    for name, r in rep["rows"].items():
        lines.append(f"| {name} | {r['n']} | {100 * r['family_accuracy']:.1f}% | {100 * r['program_accuracy']:.1f}% | "
                     f"{100 * r['pitch_within_50_cents']:.1f}% | {r['frechet_to_real']:.1f} |")
    return "\n".join(lines)
