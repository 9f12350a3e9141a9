"""Our model folder on disk (docs/generation.md): ``model_index.json`` + ``vae/``, ``unet/``, ``conditioner/``,
``vocoder/``, each a component folder (config.json + model.safetensors). ``model_index.json`` names the components
(a ``"shipped:NAME"`` entry names a folder shipped in the package instead, see ``pretrained/__init__.py``) and holds the
toolkit version, the format version, the sample rate, the MelConfig, the noise schedule and the default
generation settings. Reading gives the pipeline's constructor arguments; writing is atomic. A hub id is fetched
(safetensors and JSON only) through huggingface_hub."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch

from . import __version__
from .conditioning.io import load_conditioner, save_conditioner
from .config import config_from_dict, config_to_dict
from .diffusion import NoiseSchedule, ScheduleConfig
from .errors import PipelineError
from .mel import MelConfig
from .pipeline.settings import DistilledRange, GenerationDefaults
from .pretrained import component_path
from .unet import UNet
from .vae import MelVAE
from .vocoders import load_vocoder
from .files import atomic_folder
from .weights import WeightsError

__all__ = ["MODEL_INDEX", "FORMAT_VERSION", "COMPONENTS", "resolve_folder", "read_model_folder",
           "write_model_folder"]

MODEL_INDEX = "model_index.json"
FORMAT_VERSION = 1  # model_index.json layout; 0 (no field) = folders written before it was recorded
COMPONENTS = ("vae", "unet", "conditioner", "vocoder")


def resolve_folder(path_or_id=None) -> Path:
    """A local model folder; None: the default model (audioldm.pretrained.default_model); the name of a model shipped
    in the package ("gm-notes"); or a hub id ("owner/name") fetched (safetensors and JSON only) through
    huggingface_hub. A relative path whose first folder exists here ("runs/model") is a missing local folder, not a
    hub id."""
    from .pretrained import default_model, shipped_model

    if path_or_id is None:
        path_or_id = default_model()
        if path_or_id is None:
            raise PipelineError("no model given, and this installation ships none (audioldm/pretrained/)")
    p = Path(path_or_id)
    if p.exists():
        if not p.is_dir():
            raise PipelineError(f"{p}: expected a model folder (with {MODEL_INDEX}), got a file")
        return p
    s = str(path_or_id)
    if "/" not in s and shipped_model(s) is not None:
        return shipped_model(s)
    if s.count("/") != 1 or s.startswith((".", "/")) or os.sep in s.replace("/", "") or Path(s.split("/")[0]).is_dir():
        raise PipelineError(f"{p}: model folder not found")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise PipelineError(f"{s}: no such folder, and huggingface_hub is not installed to fetch it as a hub id") \
            from None
    try:
        return Path(snapshot_download(s, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))
    except Exception as e:  # offline, unknown repo, ...
        raise PipelineError(f"{s}: not a local folder and could not be fetched from the hub ({type(e).__name__}: "
                            f"{e})") from None


def read_model_folder(folder: Path) -> dict:
    """{"vae", "unet", "schedule", "conditioner", "vocoder", "defaults", "distilled", "name", "info"} from one of our
    folders; anything missing, malformed or of a newer format version is a PipelineError naming the file."""
    index_path = folder / MODEL_INDEX
    if not index_path.is_file():
        raise PipelineError(f"{index_path}: missing; a model folder needs {MODEL_INDEX} + {', '.join(COMPONENTS)}")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise PipelineError(f"{index_path}: invalid JSON ({e})") from None
    if not isinstance(index, dict) or index.get("format") != "audioldm":
        raise PipelineError(f"{index_path}: not an audioldm model index (\"format\" should be \"audioldm\")")
    version = index.get("format_version", 0)  # 0: folders written before the field existed (same layout)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise PipelineError(f"{index_path}: format_version {version!r}; this audioldm ({__version__}) reads "
                            f"versions 0-{FORMAT_VERSION}: upgrade audioldm to load it")
    comps = index.get("components", {})
    missing = [c for c in COMPONENTS if c not in comps]
    if missing:
        raise PipelineError(f"{index_path}: \"components\" lacks {missing}")
    try:
        where = {c: component_path(folder, comps[c]) for c in COMPONENTS}
    except (ValueError, FileNotFoundError) as e:
        raise PipelineError(f"{index_path}: \"components\": {e}") from None
    try:
        parts = {"vae": MelVAE.from_pretrained(where["vae"]),
                 "unet": UNet.from_pretrained(where["unet"]),
                 "conditioner": load_conditioner(where["conditioner"]),
                 "vocoder": load_vocoder(where["vocoder"]),
                 "schedule": NoiseSchedule(config_from_dict(ScheduleConfig, index.get("schedule", {}),
                                                            f"{index_path} \"schedule\"")),
                 "defaults": config_from_dict(GenerationDefaults, index.get("defaults", {}),
                                              f"{index_path} \"defaults\""),
                 "distilled": (config_from_dict(DistilledRange, index["distilled"], f"{index_path} \"distilled\"")
                               if index.get("distilled") is not None else None)}
        mel = config_from_dict(MelConfig, index.get("mel", {}), f"{index_path} \"mel\"")
    except (WeightsError, ValueError) as e:
        raise PipelineError(str(e)) from None
    try:
        mel.check_same(parts["vae"].mel_config, f"{MODEL_INDEX} and vae")
    except ValueError as e:
        raise PipelineError(f"{index_path}: {e}") from None
    info = index.get("info")
    return {**parts, "name": index.get("name", folder.name), "info": info if isinstance(info, dict) else None}


def write_model_folder(path, model, overwrite: bool = False, dtype: torch.dtype | None = None,
                       vocoder_ref: str | None = None) -> Path:
    """Write ``model`` (an :class:`~audioldm.pipeline.AudioLDM`) as a model folder atomically (a temporary sibling
    folder renamed into place). ``dtype`` (e.g. torch.float16) stores the VAE, U-Net and vocoder weights at that
    precision (they load back as float32). ``vocoder_ref`` ("shipped:NAME"): name that shipped vocoder in
    model_index.json instead of writing a copy; it must hold the same mel settings as the model."""
    comps = {c: c for c in COMPONENTS}
    if vocoder_ref is not None:
        from .vocoders import load_vocoder as _load
        try:
            _load(component_path(Path(path), vocoder_ref)).mel_config.check_same(model.mel_config,
                                                                                  f"{vocoder_ref} and the model")
        except (ValueError, FileNotFoundError) as e:
            raise PipelineError(f"vocoder_ref: {e}") from None
        comps["vocoder"] = vocoder_ref
    with atomic_folder(path, overwrite) as tmp:
        model.vae.save_pretrained(tmp / "vae", dtype=dtype)
        model.unet.save_pretrained(tmp / "unet", dtype=dtype)
        save_conditioner(tmp / "conditioner", model.conditioner, dtype=dtype)
        if vocoder_ref is None:  # (Griffin-Lim has no weights: its folder is its config)
            model.vocoder.save_pretrained(tmp / "vocoder", **({"dtype": dtype} if list(model.vocoder.parameters())
                                                               else {}))
        index = {"format": "audioldm", "format_version": FORMAT_VERSION, "audioldm_version": __version__,
                 "name": model.name, "sample_rate": model.sample_rate, "conditioning": model.conditioning,
                 "components": comps, "mel": model.mel_config.to_dict(),
                 "schedule": config_to_dict(model.schedule.config), "defaults": asdict(model.defaults),
                 **({"distilled": asdict(model.distilled)} if model.distilled else {}),
                 **({"info": model.info} if model.info else {})}
        (tmp / MODEL_INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return Path(path)
