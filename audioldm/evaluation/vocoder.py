"""The vocoder stage's decomposition: how much each part of "mel -> waveform" costs, per group of clips.

Rows, each scored against the real audio (MR-STFT distance and log-mel L1, lower is better; with a GM judge and
``program`` labels, its family / program accuracy and the Fréchet distance of its embeddings to the real clips'; with
``pitch`` labels, the fraction within 50 cents):
- ``real audio`` (the ceilings);
- oracle rows, which split the loss between magnitude and phase: the true STFT magnitude with Griffin-Lim's phase,
  the peak-fit or pseudo-inverse magnitude from the mel with the true phase, and for a vocoder that predicts a
  magnitude (``log_magnitude``) its magnitude with the true phase;
- every vocoder on every input (real mels; a VAE's reconstructions: what generation hands the vocoder);
plus each vocoder's speed (x real time on this machine, one clip at a time), its ratio to the first vocoder's, and
(``buzz=True``) its modulation of steady pure tones at half the frame rate and at the frame rate (``mod_half``,
``mod_frame``: :func:`audioldm.evaluation.metrics.steady_tone_modulation`; ~0 is clean).
"""

from __future__ import annotations

import numpy as np
import torch

from ..mel import MelConfig, MelFrontend, mel_to_magnitude, stft_frames
from ..vocoders.griffinlim import phase_from_magnitude
from ..vocoders.phase import istft_frames, synthesis_window
from .classifier import frechet_distance
from .metrics import (
    logmel_l1,
    mrstft_distance,
    pitch_error_cents,
    real_time_factor,
    steady_tone_modulation,
)

__all__ = ["vocoder_decomposition", "decomposition_markdown"]


def _batched(fn, x: torch.Tensor, size: int = 8) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(x[s:s + size]).float() for s in range(0, len(x), size)])


def _score(audio, wav, cfg, groups, pitches, judge, programs, real_emb) -> dict:
    """Per-group and overall scores of ``audio`` [N, T] against ``wav`` [N, T]."""
    audio = audio[:, :wav.shape[-1]]
    mr, lm = mrstft_distance(audio, wav), logmel_l1(audio, wav, cfg)
    out = {}
    names = sorted(set(groups))
    for g in names + ["all"]:
        idx = [i for i, x in enumerate(groups) if g == "all" or x == g]
        row = {"items": len(idx), "mrstft": round(mr[idx].mean().item(), 4), "logmel_l1": round(lm[idx].mean().item(), 4)}
        pitched = [i for i in idx if pitches and pitches[i] is not None]
        if pitched:
            row["pitch_50c"] = float(np.mean([abs(pitch_error_cents(audio[i].numpy(), cfg.sample_rate,
                                                                   pitches[i])) <= 50 for i in pitched]))
        judged = [i for i in idx if programs and programs[i] is not None]
        if judge is not None and judged:
            m = MelFrontend(cfg)(audio[judged])
            sc = judge.score(m, [programs[i] for i in judged])
            row.update(family=sc["family_accuracy"], program=sc["program_accuracy"],
                       fd=frechet_distance(judge.embed(m), real_emb[judged]) if len(judged) > 2 else float("nan"))
        out[g] = row
    return out


def vocoder_decomposition(vocoders: dict, wav: torch.Tensor, mel: torch.Tensor, groups: list[str],
                          inputs: dict | None = None, pitches: list | None = None, programs: list | None = None,
                          judge=None, oracles: bool = True, speed_seconds: float = 2.0, buzz: bool = False) -> list[dict]:
    """Rows of the decomposition (module docstring) for real audio ``wav`` [N, T] and its log-mel ``mel``
    [N, n_mels, T / hop], grouped by ``groups`` (one name per clip, e.g. its source). ``vocoders``: name -> vocoder
    (the slot contract: mel [B, n_mels, F] -> wav [B, F * hop]); ``inputs``: extra name -> mel [N, n_mels, F] to
    vocode (e.g. a VAE's reconstructions); ``pitches`` / ``programs``: per-clip MIDI pitch and GM program (or None).
    Each row: {"audio", "input", "scores": {group: {...}, "all": {...}}} (+ "x_real_time", "speed_vs_first")."""
    cfg: MelConfig = next(iter(vocoders.values())).mel_config
    for name, v in vocoders.items():
        cfg.check_same(v.mel_config, f"vocoder {name!r} and the first vocoder")
    wav = wav.float()
    real_emb = judge.embed(mel) if judge is not None and programs else None
    score = lambda audio: _score(audio, wav, cfg, groups, pitches, judge, programs, real_emb)  # noqa: E731
    rows = [{"audio": "real audio", "input": "-", "scores": score(wav)}]
    if oracles:
        spec = stft_frames(wav.double(), cfg)
        true_mag, true_phase = spec.abs().float(), torch.angle(spec).float()
        win, length = synthesis_window(cfg), wav.shape[-1]
        with_true_phase = lambda mag: istft_frames(torch.polar(mag, true_phase), win, cfg.hop_length, length)  # noqa
        oracle = {"true magnitude + Griffin-Lim phase (60 it.)": lambda: _batched(
                      lambda m: phase_from_magnitude(m, cfg), true_mag),
                  "peak-fit magnitude + true phase": lambda: with_true_phase(mel_to_magnitude(mel, cfg)),
                  "pseudo-inverse magnitude + true phase": lambda: with_true_phase(
                      mel_to_magnitude(mel, cfg, n_iter=0))}
        for name, v in vocoders.items():
            if hasattr(v, "log_magnitude"):
                oracle[f"{name}: its magnitude + true phase"] = (
                    lambda v=v: with_true_phase(_batched(lambda m: torch.exp(v.log_magnitude(m)), mel)))
        for name, make in oracle.items():
            rows.append({"audio": f"oracle: {name}", "input": "real mels", "scores": score(make())})
    first_rtf = None
    for name, v in vocoders.items():
        if hasattr(v, "eval"):
            v.eval()
        probe = mel[:1, :, :max(1, int(speed_seconds * cfg.sample_rate / cfg.hop_length))]
        with torch.no_grad():
            rtf = real_time_factor(lambda: v(probe), probe.shape[-1] * cfg.hop_length / cfg.sample_rate)
            mod = steady_tone_modulation(v) if buzz else {}
        first_rtf = first_rtf or rtf
        for inp_name, inp in {"real mels": mel, **(inputs or {})}.items():
            rows.append({"audio": name, "input": inp_name, "scores": score(_batched(v, inp)),
                         "x_real_time": round(1 / rtf, 1), "speed_vs_first": round(first_rtf / rtf, 2),
                         **({"mod_half": round(mod["half_frame_rate"], 4), "mod_frame": round(mod["frame_rate"], 4)}
                            if mod else {})})
    return rows


def decomposition_markdown(rows: list[dict], group: str = "all") -> str:
    """One markdown table of ``rows`` for one group of clips."""
    def f(r, k, fmt):
        v = r["scores"].get(group, {}).get(k, r.get(k))
        return fmt.format(v) if v is not None and v == v else "–"
    buzz = any("mod_half" in r for r in rows)
    lines = ["| audio | input | MR-STFT ↓ | log-mel L1 ↓ | pitch ±50 c | family | program | FD ↓ | x real time |"
             + (" mod. half frame rate | mod. frame rate |" if buzz else ""),
             "|---" * (11 if buzz else 9) + "|"]
    for r in rows:
        if group not in r["scores"]:
            continue
        lines.append(f"| {r['audio']} | {r['input']} | {f(r, 'mrstft', '{:.3f}')} | {f(r, 'logmel_l1', '{:.3f}')} | "
                     f"{f(r, 'pitch_50c', '{:.1%}')} | {f(r, 'family', '{:.1%}')} | {f(r, 'program', '{:.1%}')} | "
                     f"{f(r, 'fd', '{:.1f}')} | {f(r, 'x_real_time', '{}')} |"
                     + (f" {f(r, 'mod_half', '{:.3f}')} | {f(r, 'mod_frame', '{:.3f}')} |" if buzz else ""))
    return "\n".join(lines)
