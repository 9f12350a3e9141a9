"""GPU fast paths for generation, both optional and guarded: ``torch.compile`` of the U-Net, and the whole
deterministic sampling loop captured once as a CUDA graph and replayed (:class:`GraphedLoop`).

Why a graph of the whole loop: at AudioLDM-S size a denoise step on an H100 is a few milliseconds of GPU work spread
over hundreds of small kernels, so the CPU's launch overhead, not the GPU, sets the pace. A graph replays every
kernel of every step with one launch. Capture needs a loop that never waits for the GPU (no ``.item()``, no
host-device copies): sampling.py's deterministic samplers are written that way, and tests/test_sampling.py counts the
copies. A graph has fixed addresses, so inputs (initial noise, condition tensors) are copied into static buffers
before each replay and the output is cloned out of its static buffer.

On a device without CUDA graphs (CPU, MPS) :class:`GraphedLoop` runs the same static-buffer code eagerly, which is
what the CPU tests check (same result as the plain loop; new inputs really reach the loop).
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["GraphedLoop", "graphs_available", "compile_unet", "DETERMINISTIC"]

DETERMINISTIC = ("ddim", "euler", "heun", "dpmpp_2m")  # no fresh noise per step: capturable (DDIM with eta 0)


def graphs_available(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_available()


def compile_unet(unet: torch.nn.Module, mode: str = "max-autotune-no-cudagraphs") -> bool:
    """Compile ``unet``'s forward with torch.compile (inductor) in place; False (and unchanged) where torch.compile
    is unavailable. The default mode leaves graph capture to :class:`GraphedLoop`."""
    if not hasattr(torch, "compile"):
        return False
    try:
        unet.forward = torch.compile(unet.forward, mode=mode, dynamic=False)
    except RuntimeError:  # e.g. no working compiler toolchain
        return False
    return True


class GraphedLoop:
    """``run(x, cond) -> latents``: ``loop(x, cond)`` (a whole deterministic sampling loop over fixed sigmas and a
    fixed guidance) with x [B, C, H, W] and cond a dict of tensors of fixed shapes, captured as a CUDA graph on its
    first call on a CUDA device (after ``warmup`` eager runs on a side stream, as torch.cuda.graphs asks) and
    replayed afterwards. ``capture=False`` (or no CUDA): the same static-buffer code, eagerly."""

    def __init__(self, loop: Callable[[torch.Tensor, dict], torch.Tensor], capture: bool | None = None,
                 warmup: int = 2):
        self.loop, self.capture, self.warmup = loop, capture, warmup
        self.static_x: torch.Tensor | None = None
        self.static_cond: dict | None = None
        self.static_out: torch.Tensor | None = None
        self.graph = None
        self.replays = 0
        self._signature_of_static: tuple | None = None

    def _signature(self, x, cond) -> tuple:
        return (tuple(x.shape), x.dtype, x.device, tuple((k, tuple(v.shape), v.dtype) for k, v in sorted(cond.items())))

    def __call__(self, x: torch.Tensor, cond: dict) -> torch.Tensor:
        if self.static_x is None:
            self.static_x = x.clone()
            self.static_cond = {k: v.clone() for k, v in cond.items()}
            self._signature_of_static = self._signature(x, cond)
        elif self._signature(x, cond) != self._signature_of_static:
            raise ValueError("GraphedLoop: inputs of another shape than the captured ones; build a new GraphedLoop")
        self.static_x.copy_(x)
        for k, v in cond.items():
            self.static_cond[k].copy_(v)
        capture = graphs_available(x.device) if self.capture is None else self.capture
        if not capture:
            self.static_out = self.loop(self.static_x, self.static_cond)
            return self.static_out.clone()
        if self.graph is None:
            self._capture()
        self.graph.replay()
        self.replays += 1
        return self.static_out.clone()

    def _capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):  # lazy inits (cuBLAS handles, autotuning) must happen outside capture
                self.loop(self.static_x, self.static_cond)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = self.loop(self.static_x, self.static_cond)
