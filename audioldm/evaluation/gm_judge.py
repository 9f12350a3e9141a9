"""The GM judge: a harder, shipped evaluator for General-MIDI note models than a classifier over the model's own few
instruments. Two :class:`~audioldm.evaluation.classifier.NoteClassifier` CNNs over 16 kHz log-mels of whole notes
(2 s: onset to release tail):

- **family**: the 16 General-MIDI families (piano, chromatic percussion, organ, ... sound effects) plus drums;
- **program**: the 128 GM programs plus the drum kit;

trained on renders of all 128 programs from several named soundfonts (``recipes/gm_notes/train_judge.py``, which
writes ``audioldm/pretrained/gm-judge``). Its embeddings (the family model's) serve for Fréchet distances.

:func:`load_gm_judge` reads a judge folder; :meth:`GMJudge.score` gives family and program accuracy of a set of clips
against the labels they were meant to have; :func:`gm_decomposition` scores a GM-note model stage by stage (real ->
vocoder -> VAE + vocoder -> generated) on held-out label combinations, with pitch and FD beside them. Clips shorter than the judge's clip length are padded with silence (the
log floor), longer ones cut, so every set is judged on the same window.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from .classifier import NoteClassifier, NoteClassifierConfig

__all__ = ["FAMILIES", "GMJudge", "load_gm_judge", "default_gm_judge", "family_of", "program_class",
           "gm_decomposition", "decomposition_table"]

FAMILIES = ["piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass", "reed",
            "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive", "sound effects", "drums"]
DRUMS = 128  # the drum kit's program number here (as audioldm.data.gm_notes.DRUM_PROGRAM)


def family_of(program: int) -> str:
    """GM family name of a program number 0-127, or "drums" for 128."""
    return "drums" if int(program) == DRUMS else FAMILIES[int(program) // 8]


def program_class(program: int) -> str:
    return "drum kit" if int(program) == DRUMS else f"program {int(program)}"


def default_gm_judge() -> Path:
    return Path(__file__).resolve().parents[1] / "pretrained" / "gm-judge"


class GMJudge:
    """Family and program classifiers with the clip length (frames) they were trained on."""

    def __init__(self, family: NoteClassifier, program: NoteClassifier, frames: int, log_floor: float,
                 info: dict | None = None):
        self.family, self.program = family.eval(), program.eval()
        self.frames, self.log_floor, self.info = frames, log_floor, dict(info or {})

    def fit(self, mels: torch.Tensor) -> torch.Tensor:
        """mels [N, n_mels, F] padded with silence or cut to the judge's ``frames``."""
        F = mels.shape[-1]
        if F >= self.frames:
            return mels[..., :self.frames]
        return torch.nn.functional.pad(mels, (0, self.frames - F), value=self.log_floor)

    @torch.no_grad()
    def _logits(self, model, mels, batch_size=64) -> torch.Tensor:
        m = self.fit(mels.float())
        return torch.cat([model(m[s:s + batch_size]) for s in range(0, len(m), batch_size)])

    def predict_family(self, mels: torch.Tensor) -> list[str]:
        return [self.family.config.classes[i] for i in self._logits(self.family, mels).argmax(-1).tolist()]

    def predict_program(self, mels: torch.Tensor) -> list[str]:
        return [self.program.config.classes[i] for i in self._logits(self.program, mels).argmax(-1).tolist()]

    @torch.no_grad()
    def embed(self, mels: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        m = self.fit(mels.float())
        return np.concatenate([self.family.embedding(m[s:s + batch_size]).numpy()
                               for s in range(0, len(m), batch_size)]).astype(np.float64)

    def score(self, mels: torch.Tensor, programs: list[int]) -> dict:
        """Family and program accuracy of clips mels [N, n_mels, F] meant to be GM ``programs`` (0-128)."""
        fam = self.predict_family(mels)
        prog = self.predict_program(mels)
        return {"family_accuracy": float(np.mean([f == family_of(p) for f, p in zip(fam, programs)])),
                "program_accuracy": float(np.mean([q == program_class(p) for q, p in zip(prog, programs)])),
                "n": len(programs)}

    def save(self, folder) -> Path:
        from ..weights import atomic_folder, save_component
        with atomic_folder(folder, overwrite=True) as tmp:
            for name in ("family", "program"):
                m = getattr(self, name)
                save_component(tmp / name, m, m.config, "note_classifier")
            (tmp / "judge.json").write_text(json.dumps({"frames": self.frames, "log_floor": self.log_floor,
                                                        **self.info}, indent=2) + "\n")
        return Path(folder)


def load_gm_judge(folder=None) -> GMJudge:
    """The judge in ``folder`` (default: the one shipped in audioldm/pretrained/gm-judge)."""
    from ..weights import WeightsError, load_component
    folder = Path(folder) if folder else default_gm_judge()
    meta = folder / "judge.json"
    if not meta.is_file():
        raise WeightsError(f"{meta}: missing; a GM judge folder holds judge.json, family/ and program/ "
                           f"(recipes/gm_notes/train_judge.py writes one)")
    info = json.loads(meta.read_text(encoding="utf-8"))
    models = [load_component(folder / n, NoteClassifier, NoteClassifierConfig, "note_classifier")
              for n in ("family", "program")]
    return GMJudge(*models, frames=int(info.pop("frames")), log_floor=float(info.pop("log_floor", math.log(1e-5))),
                   info=info)


def _pitch_ok(wavs: np.ndarray, sample_rate: int, pitches: list, programs: list, cents: float = 50.0) -> float:
    """Fraction of pitched clips (drums left out) whose held-part YIN f0 is within ``cents`` of their MIDI pitch."""
    from .metrics import pitch_error_cents
    errs = [abs(pitch_error_cents(w, sample_rate, q)) for w, q, p in zip(wavs, pitches, programs) if p != DRUMS]
    return float(np.mean([e <= cents for e in errs])) if errs else math.nan


def gm_decomposition(pipe, heldout_clips, seen: set, judge: GMJudge, seconds: float, fields: list[str],
                     per_condition: int = 2, max_conditions: int = 32, seed: int = 0) -> dict:
    """The stage decomposition of a GM-note label model on held-out clips (labels ``program`` and ``pitch``),
    judged by ``judge``: real -> vocoder -> VAE + vocoder -> generated (all, seen, unseen label combinations).
    Rows: family and program accuracy, pitch within 50 cents, FD of the judge's embeddings to the real clips'."""
    from ..data import ClipDataset
    from .classifier import frechet_distance
    from .report import vocode

    rng = np.random.default_rng(seed)
    conds: dict = {}
    for c in heldout_clips:
        labels = {k: c.labels[k] for k in fields if k in c.labels}
        conds.setdefault(json.dumps(labels, sort_keys=True), (labels, c))
    keys = sorted(conds)
    if len(keys) > max_conditions:
        keys = sorted(keys[i] for i in rng.choice(len(keys), max_conditions, replace=False))
    clips = [conds[k][1] for k in keys]
    ds = ClipDataset(clips, pipe.mel_config, seconds)
    items = [ds[i] for i in range(len(ds))]
    real_wav = np.stack([it["wav"].numpy() for it in items])
    real_mel = torch.stack([it["mel"] for it in items])
    progs = [int(c.labels["program"]) for c in clips]
    pitches = [int(c.labels["pitch"]) for c in clips]
    sr = pipe.sample_rate
    stage_wavs = {"real (held-out)": (real_wav, progs, pitches, [True] * len(keys))}
    stage_wavs["real -> vocoder"] = (vocode(pipe, real_mel, False).numpy(), progs, pitches, [True] * len(keys))
    stage_wavs["real -> VAE -> vocoder"] = (vocode(pipe, real_mel, True).numpy(), progs, pitches, [True] * len(keys))
    gen, gp, gq, gs = [], [], [], []
    for k, c in zip(keys, clips):
        res = pipe.generate(labels=conds[k][0], num_per_prompt=per_condition, seed=seed, duration=seconds,
                            progress=False)
        gen.append(res.audio)
        gp += [int(c.labels["program"])] * len(res.audio)
        gq += [int(c.labels["pitch"])] * len(res.audio)
        gs += [k in seen] * len(res.audio)
    gen = np.concatenate(gen)
    stage_wavs["generated (all held-out conditions)"] = (gen, gp, gq, gs)
    for flag, name in ((True, "generated (seen combinations)"), (False, "generated (unseen combinations)")):
        idx = [i for i, s in enumerate(gs) if s == flag]
        if idx:
            stage_wavs[name] = (gen[idx], [gp[i] for i in idx], [gq[i] for i in idx], [flag] * len(idx))
    real_emb = judge.embed(real_mel)
    rows = {}
    for name, (w, p_, q_, _) in stage_wavs.items():
        mels = pipe.frontend(torch.from_numpy(np.ascontiguousarray(w)).to(pipe.device)).cpu()[..., :real_mel.shape[-1]]
        row = judge.score(mels, p_)
        row["pitch_within_50_cents"] = _pitch_ok(w, sr, q_, p_)
        row["frechet_to_real"] = frechet_distance(judge.embed(mels), real_emb)
        rows[name] = row
    return {"judge": judge.info.get("soundfonts"), "conditions": len(keys), "per_condition": per_condition,
            "unseen_conditions": sum(k not in seen for k in keys), "seconds": seconds, "rows": rows}


def decomposition_table(rep: dict) -> str:
    """Markdown table of :func:`gm_decomposition`'s rows."""
    lines = ["| audio | clips | family | program | pitch ±50 cents | FD to real |", "|---|---|---|---|---|---|"]
    for name, r in rep["rows"].items():
        lines.append(f"| {name} | {r['n']} | {100 * r['family_accuracy']:.1f}% | {100 * r['program_accuracy']:.1f}% | "
                     f"{100 * r['pitch_within_50_cents']:.1f}% | {r['frechet_to_real']:.1f} |")
    return "\n".join(lines)
