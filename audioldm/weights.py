"""Component folders: ``config.json`` + ``model.safetensors`` (the one weight format; pickles are never loaded).

``save_component`` writes a folder atomically (temp folder + rename); ``load_component`` rebuilds the module from its
dataclass config and loads the weights strictly, naming the folder and the offending keys or shapes on mismatch.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import config_from_dict, config_to_dict
from .files import atomic_folder

__all__ = ["save_component", "load_component", "load_state_dict_checked", "read_safetensors", "WeightsError",
           "PICKLE_SUFFIXES", "atomic_folder"]

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


class WeightsError(ValueError):
    """Weights that are missing, unsafe, corrupt or do not match their config."""


def read_safetensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a .safetensors file; refuses pickle-based formats outright."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise WeightsError(f"{path}: refusing to load a pickle-based weight file ({path.suffix}); "
                           f"convert it to .safetensors first")
    if not path.is_file():
        raise WeightsError(f"{path}: weight file not found")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a valid safetensors file ({e})") from None


def load_state_dict_checked(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load that lists missing / unexpected keys and shape mismatches, naming ``source``."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state)) if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}")
        if shapes:
            parts.append(f"shape mismatches {shapes[:10]}{' ...' if len(shapes) > 10 else ''}")
        raise WeightsError(f"{source}: weights do not match the config: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


def save_component(folder: str | Path, module: torch.nn.Module, config, kind: str, overwrite: bool = False,
                   dtype: torch.dtype | None = None) -> Path:
    """Write ``folder/config.json`` ({"kind": ..., **config}) and ``folder/model.safetensors`` atomically."""
    with atomic_folder(folder, overwrite) as tmp:
        state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
                 for k, v in module.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(json.dumps({"kind": kind, **config_to_dict(config)}, indent=2) + "\n")
    return Path(folder)


def load_component(folder: str | Path, module_cls, config_cls, kind: str, device=None, dtype=None,
                   older_defaults: dict | None = None):
    """Rebuild ``module_cls(config)`` from ``folder`` and load its weights (strict, with clear errors).
    ``older_defaults``: values for config fields that folders written before the field existed lack (when they
    differ from the field's default for new components)."""
    folder = Path(folder)
    cfg_path, w_path = folder / "config.json", folder / "model.safetensors"
    if not folder.is_dir():
        raise WeightsError(f"{folder}: {kind} folder not found")
    if not cfg_path.is_file():
        pickles = [p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        hint = f" (found pickle file(s) {pickles}, which are never loaded)" if pickles else ""
        raise WeightsError(f"{cfg_path}: missing {kind} config{hint}")
    try:
        d = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise WeightsError(f"{cfg_path}: invalid JSON ({e})") from None
    if not isinstance(d, dict):
        raise WeightsError(f"{cfg_path}: expected a JSON object")
    found = d.pop("kind", None)
    if found != kind:
        raise WeightsError(f"{cfg_path}: \"kind\" is {found!r}, expected {kind!r}")
    d = {**(older_defaults or {}), **d}
    try:
        config = config_from_dict(config_cls, d, str(cfg_path))
    except ValueError as e:
        raise WeightsError(str(e)) from None
    module = module_cls(config)
    if not w_path.is_file():
        pickles = [p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        hint = f" (found pickle file(s) {pickles}, which are never loaded)" if pickles else ""
        raise WeightsError(f"{w_path}: missing {kind} weights{hint}")
    state = read_safetensors(w_path)
    ref = module.state_dict()
    state = {k: (v.to(ref[k].dtype) if k in ref and v.is_floating_point() else v) for k, v in state.items()}
    load_state_dict_checked(module, state, str(w_path))
    if device is not None or dtype is not None:
        module = module.to(device=device, dtype=dtype)
    return module.eval()
