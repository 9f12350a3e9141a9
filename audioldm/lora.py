"""LoRA adapters for the U-Net: added for training with peft (the optional ``.[finetune]`` extra), saved in peft's
format, and applied to any compatible base by merging ``W += scale * (alpha / r) * B @ A`` (no peft needed).

Adapter folder (what ``recipes/finetune/run.py`` writes to OUT/lora/): ``adapter_model.safetensors`` (keys
``base_model.model.<module>.lora_A.weight`` / ``.lora_B.weight``, as peft's ``save_pretrained`` writes them) and
``adapter_config.json`` (peft's LoraConfig; ``base_model_name_or_path`` is the base's portable id, NAME@hash). A
diffusers LoRA file (``pytorch_lora_weights.safetensors``: ``unet.<module>.lora_A/B.weight`` or the older
``lora.down/up.weight`` keys, optional ``.alpha``) also loads: the U-Net's module names are diffusers' own.

Targets: ``attention`` (to_q, to_k, to_v, to_out.0 of every attention), ``resnet`` (the ResNet 3x3 convs), ``film``
(the time/condition projection into each ResNet).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

__all__ = ["LoraError", "Adapter", "TARGETS", "add_lora", "save_lora", "read_lora", "merge_lora", "unmerge_lora"]

ADAPTER_WEIGHTS, ADAPTER_CONFIG = "adapter_model.safetensors", "adapter_config.json"
TARGETS = {"attention": r"attn[12]\.(to_q|to_k|to_v|to_out\.0)", "resnet": r"resnets\.\d+\.conv[12]",
           "film": r"resnets\.\d+\.time_emb_proj"}


class LoraError(ValueError):
    """An adapter that cannot be read or does not fit the model; the message names the file or module."""


@dataclass
class Adapter:
    """Low-rank factors per module: ``factors[name] = (A [r, in, (k, k)], B [out, r, (1, 1)], scaling)``."""
    factors: dict = field(default_factory=dict)
    base: str | None = None  # the base model's id recorded in the adapter, if any
    source: str = ""

    def delta(self, name: str) -> torch.Tensor:
        """The weight update of module ``name`` at scale 1: [out, in] or [out, in, k, k]."""
        a, b, s = self.factors[name]
        d = b.flatten(1).float() @ a.flatten(1).float()
        return s * (d.view(b.shape[0], *a.shape[1:]) if a.dim() == 4 else d)


def _pattern(targets) -> str:
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        raise LoraError(f"unknown LoRA target(s) {unknown}; choose from {sorted(TARGETS)}")
    return r".*(" + "|".join(TARGETS[t] for t in targets) + r")$"


def add_lora(unet: nn.Module, rank: int, alpha: float | None = None, targets=("attention",),
             dropout: float = 0.0) -> nn.Module:
    """Inject trainable LoRA layers (peft) into ``unet`` in place; only they stay trainable. Returns ``unet``."""
    if not isinstance(rank, int) or rank <= 0:
        raise LoraError(f"LoRA rank must be a positive integer, got {rank!r}")
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise ImportError("LoRA training needs peft: pip install -e '.[finetune]'") from None
    cfg = LoraConfig(r=rank, lora_alpha=float(alpha if alpha is not None else rank), lora_dropout=dropout,
                     target_modules=_pattern(targets), init_lora_weights=True)
    inject_adapter_in_model(cfg, unet)
    unet._lora_config = cfg
    return unet


def save_lora(folder, unet: nn.Module, base_id: str, overwrite: bool = False) -> Path:
    """Write the adapter of a peft-injected ``unet`` (see :func:`add_lora`) to ``folder`` atomically."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    from .files import atomic_folder

    cfg = getattr(unet, "_lora_config", None)
    if cfg is None:
        raise LoraError("this U-Net has no LoRA layers (add_lora was not called)")
    state = {f"base_model.model.{k}": v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(unet).items()}
    with atomic_folder(folder, overwrite) as tmp:
        save_file(state, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        d = cfg.to_dict()
        d.update(base_model_name_or_path=base_id, target_modules=cfg.target_modules, inference_mode=True)
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(d, indent=2, default=sorted) + "\n")
    return Path(folder)


_PEFT = re.compile(r"^(?:base_model\.model\.|unet\.)?(.+?)\.lora_([AB])(?:\.default)?\.weight$")
_OLD = re.compile(r"^(?:unet\.)?(.+?)\.(?:lora\.|processor\.(\w+)_lora\.)(down|up)\.weight$")


def read_lora(path) -> Adapter:
    """Read an adapter folder (or a .safetensors LoRA file) into low-rank factors; nothing is unpickled."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    folder = path if path.is_dir() else path.parent
    wfile = path / ADAPTER_WEIGHTS if path.is_dir() else path
    if path.is_dir() and not wfile.is_file():
        found = sorted(p.name for p in path.iterdir())
        raise LoraError(f"{path}: no {ADAPTER_WEIGHTS} (found {found[:8]})")
    if not wfile.is_file():
        raise LoraError(f"{path}: adapter not found")
    if wfile.suffix != ".safetensors":
        raise LoraError(f"{wfile}: adapters are read from .safetensors only (pickle files are never loaded)")
    try:
        state = load_file(str(wfile))
    except (SafetensorError, OSError, ValueError) as e:
        raise LoraError(f"{wfile}: not a readable safetensors file ({e})") from None
    cfg = {}
    cfile = folder / ADAPTER_CONFIG
    if cfile.is_file():
        try:
            cfg = json.loads(cfile.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise LoraError(f"{cfile}: invalid JSON ({e})") from None
    parts: dict[str, dict] = {}
    alphas = {}
    for k, v in state.items():
        if k.endswith(".alpha"):
            alphas[re.sub(r"^unet\.", "", k[:-6]).replace(".lora", "")] = float(v)
            continue
        m, old = _PEFT.match(k), _OLD.match(k)
        if m:
            parts.setdefault(m.group(1), {})[m.group(2)] = v
        elif old:  # diffusers' older attention-processor layout: ...attn1.processor.to_q_lora.down.weight
            name = old.group(1) + (f".{old.group(2)}" if old.group(2) else "")
            name = name.replace(".to_out", ".to_out.0") if name.endswith(".to_out") else name
            parts.setdefault(name, {})["A" if old.group(3) == "down" else "B"] = v
        else:
            raise LoraError(f"{wfile}: key {k!r} is not a LoRA weight (expected ...lora_A.weight / lora_B.weight)")
    if not parts:
        raise LoraError(f"{wfile}: no LoRA weights in the file")
    factors = {}
    for name, ab in sorted(parts.items()):
        if set(ab) != {"A", "B"}:
            raise LoraError(f"{wfile}: module {name} has only lora_{''.join(ab)}")
        a, b = ab["A"], ab["B"]
        r = a.shape[0]
        if b.shape[1] != r or not torch.isfinite(a).all() or not torch.isfinite(b).all():
            raise LoraError(f"{wfile}: module {name}: inconsistent or non-finite factors A {tuple(a.shape)}, "
                            f"B {tuple(b.shape)}")
        alpha = alphas.get(name, (cfg.get("alpha_pattern") or {}).get(name, cfg.get("lora_alpha", r)))
        scaling = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
        factors[name] = (a, b, float(scaling))
    return Adapter(factors, cfg.get("base_model_name_or_path"), str(wfile))


def _check(unet: nn.Module, adapter: Adapter) -> dict:
    mods = dict(unet.named_modules())
    missing = [n for n in adapter.factors if n not in mods]
    if missing:
        raise LoraError(f"{adapter.source}: adapter for another model: modules {missing[:3]} are not in this U-Net"
                        + (f" (adapter base: {adapter.base})" if adapter.base else ""))
    for n, (a, b, _) in adapter.factors.items():
        w = getattr(mods[n], "weight", None)
        fits = (w is not None and w.dim() == a.dim() and w.shape[0] == b.shape[0] and w.shape[1] == a.shape[1]
                and tuple(w.shape[2:]) == tuple(a.shape[2:]))
        if not fits:
            raise LoraError(f"{adapter.source}: module {n}: adapter shapes A {tuple(a.shape)}, B {tuple(b.shape)} "
                            f"do not fit its weight {tuple(w.shape) if w is not None else None}"
                            + (f" (adapter base: {adapter.base})" if adapter.base else ""))
    return mods


@torch.no_grad()
def merge_lora(unet: nn.Module, adapter: Adapter, scale: float = 1.0) -> None:
    """``W += scale * delta`` for every module of the adapter (checked first: nothing changes on a mismatch)."""
    if not (isinstance(scale, (int, float)) and math.isfinite(scale)):
        raise LoraError(f"LoRA scale must be a finite number, got {scale!r}")
    mods = _check(unet, adapter)
    for n in adapter.factors:
        w = mods[n].weight
        w += (scale * adapter.delta(n)).to(w.device, w.dtype).view_as(w)


def unmerge_lora(unet: nn.Module, adapter: Adapter, scale: float = 1.0) -> None:
    """Undo :func:`merge_lora` with the same adapter and scale."""
    merge_lora(unet, adapter, -scale)
