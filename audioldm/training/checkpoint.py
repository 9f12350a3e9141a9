"""Training checkpoints: one folder per checkpoint under ``run_dir/checkpoints/step_XXXXXXXX``, written to a temporary
folder and renamed when complete, keeping the last K.

Contents: ``models.safetensors`` and ``ema.safetensors`` (``<module>.<param>`` keys), ``optimizers.safetensors``
(tensor state) + ``optimizers.json`` (hyper-parameters and scalar state), and ``trainer_state.json`` (step, epoch,
position in the epoch, NaN counters, the training config), written last. RNG state is not stored: the trainer
reseeds from (seed, step, rank) at every step, which makes resumed runs reproduce uninterrupted ones.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..files import atomic_folder
from ..weights import WeightsError, load_state_dict_checked, read_safetensors

__all__ = ["save_checkpoint", "load_checkpoint", "find_checkpoints", "newest_checkpoint", "REQUIRED_FILES"]

log = logging.getLogger("audioldm.train")
REQUIRED_FILES = ("models.safetensors", "optimizers.safetensors", "optimizers.json", "trainer_state.json")


def _full(v: torch.Tensor) -> torch.Tensor:
    """A full CPU tensor; an FSDP2 shard (DTensor) is gathered first, which every rank must call."""
    v = v.full_tensor() if hasattr(v, "full_tensor") else v
    return v.detach().cpu().contiguous()


def _like(full: torch.Tensor, target):
    """``full`` laid out as ``target``: an FSDP2 DTensor gets this rank's shard (every rank must call)."""
    if hasattr(target, "device_mesh"):
        from torch.distributed.tensor import distribute_tensor
        return distribute_tensor(full.to(target.device, target.dtype), target.device_mesh, target.placements)
    return full


def _flat(modules: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": _full(v) for name, m in modules.items() for k, v in m.state_dict().items()}


def _optimizer_state(optimizers: dict[str, torch.optim.Optimizer]) -> tuple[dict, dict]:
    tensors, meta = {}, {}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        scalars = {}
        for idx, st in sd["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"{name}.{idx}.{k}"] = _full(v)
                else:
                    scalars.setdefault(str(idx), {})[k] = v
        meta[name] = {"param_groups": sd["param_groups"], "scalars": scalars}
    return tensors, meta


def save_checkpoint(run_dir: Path, step: int, modules, ema, optimizers, state: dict, keep_last: int,
                    write: bool = True) -> Path:
    """Write a complete checkpoint atomically and prune older ones (keeping ``keep_last``). Sharded (FSDP2) weights
    and optimizer state are gathered into full tensors: then every rank calls this, and only the one with ``write``
    writes."""
    ckdir = Path(run_dir) / "checkpoints"
    final = ckdir / f"step_{step:08d}"
    if not write:
        _flat(modules)
        _optimizer_state(optimizers)
        return final
    ckdir.mkdir(parents=True, exist_ok=True)
    for stale in [*ckdir.glob(".step_*"), *ckdir.glob(".tmp-*")]:  # temporaries of writes a kill interrupted
        shutil.rmtree(stale, ignore_errors=True)
    with atomic_folder(final, overwrite=True) as tmp:  # files.py: fsynced, renamed into place, never a gap
        save_file(_flat(modules), str(tmp / "models.safetensors"))
        if ema:
            save_file(_flat(ema), str(tmp / "ema.safetensors"))
        tensors, meta = _optimizer_state(optimizers)
        save_file(tensors, str(tmp / "optimizers.safetensors"))
        (tmp / "optimizers.json").write_text(json.dumps(meta))
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2))
    complete = find_checkpoints(run_dir, warn=False)
    for old in complete[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _is_complete(folder: Path) -> str | None:
    """None if complete, else the reason."""
    for f in REQUIRED_FILES:
        if not (folder / f).is_file():
            return f"missing {f}"
    try:
        st = json.loads((folder / "trainer_state.json").read_text())
        int(st["step"])
    except Exception as e:
        return f"unreadable trainer_state.json ({e})"
    return None


def find_checkpoints(run_dir: Path, warn: bool = True) -> list[Path]:
    """Complete checkpoint folders, oldest first; incomplete ones are skipped with a warning."""
    ckdir = Path(run_dir) / "checkpoints"
    if not ckdir.is_dir():
        return []
    out = []
    for p in sorted(ckdir.iterdir()):
        if not p.is_dir():
            continue
        if p.name.startswith("."):  # a write a kill interrupted (atomic_folder's temporary, or an older .tmp-)
            if warn:
                log.warning("ignoring incomplete checkpoint %s (an interrupted write)", p)
            continue
        if not p.name.startswith("step_"):
            continue
        why = _is_complete(p)
        if why:
            if warn:
                log.warning("ignoring incomplete checkpoint %s: %s", p, why)
            continue
        out.append(p)
    return sorted(out, key=lambda p: int(json.loads((p / "trainer_state.json").read_text())["step"]))


def newest_checkpoint(run_dir: Path) -> Path | None:
    found = find_checkpoints(run_dir)
    return found[-1] if found else None


def _unflat(flat: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    pre = name + "."
    return {k[len(pre):]: v for k, v in flat.items() if k.startswith(pre)}


def load_checkpoint(folder: Path, modules, ema, optimizers) -> dict:
    """Load weights, EMA and optimizer state in place (into FSDP2 shards too: every rank calls this); returns
    trainer_state.json's contents."""
    folder = Path(folder)
    flat = read_safetensors(folder / "models.safetensors")
    for name, m in modules.items():
        sd, own = _unflat(flat, name), m.state_dict()
        sd = {k: _like(v, own[k]) if k in own else v for k, v in sd.items()}
        load_state_dict_checked(m, sd, f"{folder / 'models.safetensors'} [{name}]")
    if ema:
        if not (folder / "ema.safetensors").is_file():
            raise WeightsError(f"{folder}: no ema.safetensors, but this run keeps an EMA")
        flat = read_safetensors(folder / "ema.safetensors")
        for name, m in ema.items():
            load_state_dict_checked(m, _unflat(flat, name), f"{folder / 'ema.safetensors'} [{name}]")
    tensors = read_safetensors(folder / "optimizers.safetensors")
    meta = json.loads((folder / "optimizers.json").read_text())
    for name, opt in optimizers.items():
        if name not in meta:
            raise WeightsError(f"{folder / 'optimizers.json'}: no state for optimizer {name!r}")
        state = {}
        params = [p for g in opt.param_groups for p in g["params"]]  # state index -> parameter, in order
        for key, v in tensors.items():
            oname, idx, k = key.split(".", 2)
            if oname == name:
                i = int(idx)
                state.setdefault(i, {})[k] = _like(v, params[i]) if i < len(params) and v.dim() else v
        for idx, sc in meta[name]["scalars"].items():
            state.setdefault(int(idx), {}).update(sc)
        opt.load_state_dict({"state": state, "param_groups": meta[name]["param_groups"]})
    return json.loads((folder / "trainer_state.json").read_text())


# what a resumed run must share with the run that wrote its checkpoints (TrainConfig fields, and the process count)
RESUME_KEYS = ("batch_size", "grad_accum", "lr", "warmup_steps", "min_lr_ratio", "ema_decay", "weights_dtype",
               "parallel", "seed")


def check_resume_settings(folder: Path, state: dict) -> None:
    """Refuse to resume from ``folder`` under other training settings than the ones that wrote it (``state``: the
    resuming trainer's trainer_state, with its config and world size), naming each difference. max_steps may
    change (a run can be extended)."""
    try:
        old = json.loads((Path(folder) / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return  # an unreadable state: load_newest_valid falls back and says so
    was, now = old.get("config", {}), state.get("config", {})
    diff = [f"{k}: {was[k]!r} -> {now.get(k)!r}" for k in RESUME_KEYS if k in was and was[k] != now.get(k)]
    if "world_size" in old and old["world_size"] != state.get("world_size"):
        diff.append(f"processes: {old['world_size']} -> {state.get('world_size')}")
    if diff:
        raise ValueError(f"{Path(folder).parent.parent}: cannot resume with other training settings ("
                         + "; ".join(diff) + "); use the same settings, or start over (--overwrite)")


def load_newest_valid(found: list[Path], modules, ema, optimizers, echo=log.warning) -> tuple[Path, dict]:
    """Load the newest checkpoint of ``found`` (oldest first) that reads back whole; a torn or corrupt one is
    reported (``echo``) and the one before it tried. Returns (folder, trainer_state)."""
    errors = []
    for ck in reversed(found):
        try:
            return ck, load_checkpoint(ck, modules, ema, optimizers)
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint: fall back to the previous one
            errors.append(f"{ck.name}: {type(e).__name__}: {e}")
            echo(f"checkpoint {ck} cannot be read ({type(e).__name__}: {str(e)[:200]}); falling back to the one "
                 f"before it")
    raise WeightsError(f"{found[-1].parent}: no checkpoint reads back whole: " + "; ".join(errors))
