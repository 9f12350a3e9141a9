"""Generation settings: the defaults a model folder stores (:class:`GenerationDefaults`), the validation of a
request's settings and seeds, and what generation returns (:class:`GenerationResult`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DistilledRangeError, PipelineError
from ..sampling import SAMPLERS

__all__ = ["GenerationDefaults", "GenerationResult", "DistilledRange", "MAX_DURATION", "resolve_settings",
           "seeds_for"]

MAX_DURATION = 600.0  # seconds; longer requests are almost certainly a unit mistake (ms, samples)


@dataclass
class GenerationDefaults:
    """Settings ``generate`` uses when the caller leaves them out (stored in model_index.json)."""

    duration: float = 1.28
    steps: int = 25
    guidance: float = 3.0
    sampler: str = "dpmpp_2m"


@dataclass
class DistilledRange:
    """What a distilled student (recipes/distill) was trained for, stored in model_index.json "distilled": the step
    counts it takes, each with its own descending sigmas (ending at 0), and the guidance range it reads as an input
    (it runs no unconditional branch). Steps, guidance or samplers outside this range are refused."""

    sigmas: dict = field(default_factory=dict)  # str(steps) -> [steps + 1] descending sigmas ending at 0
    guidance_min: float = 1.0
    guidance_max: float = 1.0
    teacher: str = ""  # the teacher model's id (name@hash)
    teacher_steps: int = 25
    teacher_sampler: str = "dpmpp_2m"

    # samplers that take exactly one network evaluation per step and no fresh noise: on the student's sigmas they
    # are the same update (y = x0 + (y - x0) sigma_next / sigma, the last step returning x0)
    SAMPLERS = ("ddim", "euler", "dpmpp_2m")

    def __post_init__(self):
        if not self.sigmas:
            raise ValueError("distilled: \"sigmas\" must map step counts to their sigmas")
        for k, v in self.sigmas.items():
            if not (str(k).isdigit() and len(v) == int(k) + 1 and v[-1] == 0
                    and all(a > b for a, b in zip(v, v[1:]))):
                raise ValueError(f"distilled: sigmas[{k!r}] must be {k} + 1 descending numbers ending at 0, got {v}")
        if not 0 < self.guidance_min <= self.guidance_max:
            raise ValueError(f"distilled: need 0 < guidance_min <= guidance_max, got {self.guidance_min}, "
                             f"{self.guidance_max}")

    @property
    def steps(self) -> list[int]:
        return sorted(int(k) for k in self.sigmas)

    def check(self, s: dict) -> None:
        """DistilledRangeError unless settings ``s`` (steps, guidance, sampler) lie in what the student was
        distilled for."""
        if s["steps"] not in self.steps:
            raise DistilledRangeError(f"steps={s['steps']}: this model is distilled for steps in {self.steps} "
                                      f"(its teacher {self.teacher or '(unnamed)'} takes any number)")
        if not self.guidance_min <= s["guidance"] <= self.guidance_max:
            raise DistilledRangeError(f"guidance={s['guidance']:g}: this model is distilled for guidance in "
                                      f"[{self.guidance_min:g}, {self.guidance_max:g}]")
        if s["sampler"] not in self.SAMPLERS:
            raise DistilledRangeError(f"sampler={s['sampler']!r}: a distilled model runs the deterministic "
                                      f"one-evaluation samplers {list(self.SAMPLERS)}")


@dataclass
class GenerationResult:
    """``audio`` float32 [N, T] at ``sample_rate``; ``mels`` [N, n_mels, frames] and ``latents`` [N, C, H, W] (CPU
    float32); per-sample ``prompts``, ``labels`` and ``seeds``; ``params``: every setting used."""

    audio: np.ndarray
    sample_rate: int
    mels: torch.Tensor
    latents: torch.Tensor
    prompts: list
    labels: list
    seeds: list[int]
    params: dict = field(default_factory=dict)
    reads: list[dict] = field(default_factory=list)  # per sample, what the model read (conditioning.prompt_reports)

    def __len__(self) -> int:
        return len(self.audio)


def resolve_settings(defaults: GenerationDefaults, duration, steps, guidance, sampler) -> dict:
    """Validated {"duration", "steps", "guidance", "sampler"}, ``defaults`` filled in for the ones left None."""
    d = defaults
    s = {"duration": d.duration if duration is None else duration, "steps": d.steps if steps is None else steps,
         "guidance": d.guidance if guidance is None else guidance, "sampler": sampler or d.sampler}
    if not (isinstance(s["duration"], (int, float)) and np.isfinite(s["duration"]) and s["duration"] > 0):
        raise PipelineError(f"duration must be a positive number of seconds, got {s['duration']!r}")
    if s["duration"] > MAX_DURATION:
        raise PipelineError(f"duration {s['duration']:g} s is longer than the {MAX_DURATION:g} s this pipeline "
                            f"generates in one piece")
    if not isinstance(s["steps"], int) or s["steps"] < 1:
        raise PipelineError(f"steps must be a positive integer, got {s['steps']!r}")
    if not (isinstance(s["guidance"], (int, float)) and np.isfinite(s["guidance"])):
        raise PipelineError(f"guidance must be a finite number, got {s['guidance']!r}")
    if s["sampler"] not in SAMPLERS:
        raise PipelineError(f"unknown sampler {s['sampler']!r}; known: {sorted(SAMPLERS)}")
    return s


def seeds_for(seed, n: int) -> list[int]:
    """Per-sample seeds: an int gives seed, seed + 1, ...; a list is used as is; None draws one at random."""
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    if isinstance(seed, (list, tuple)):
        if len(seed) != n or not all(isinstance(s, int) for s in seed):
            raise PipelineError(f"seed: expected an int or a list of {n} ints, got {seed!r}")
        return [int(s) for s in seed]
    if not isinstance(seed, (int, np.integer)):
        raise PipelineError(f"seed must be an int or a list of ints, got {seed!r}")
    return [int(seed) + i for i in range(n)]
