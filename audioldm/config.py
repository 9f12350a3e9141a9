"""Typed dataclass configs <-> JSON with strict checking (unknown, missing or wrongly typed fields name the file and
field), and named presets. Library code builds objects from these; only recipes and the CLI parse files or argv."""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from pathlib import Path

from .files import save_json_atomic  # noqa: F401  (re-exported: the one atomic JSON writer, files.py)

__all__ = ["config_from_dict", "config_to_dict", "load_config", "save_json_atomic", "preset"]


def config_to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def _check(value, tp, where: str):
    """Return ``value`` converted to type ``tp`` or raise ValueError naming ``where``."""
    origin = typing.get_origin(tp)
    if tp is typing.Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check(value, a, where)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if len(errors) == 1 else f"{where}: expected {tp}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return config_from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else typing.Any
        out = [_check(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def config_from_dict(cls, d, source: str = "config"):
    """Build dataclass ``cls`` from a JSON-like dict. Unknown, missing (without default) or mistyped fields raise
    ValueError naming ``source`` and the field. Fields with defaults may be omitted."""
    name = getattr(cls, "__name__", str(cls))
    if isinstance(d, cls):
        return d
    if not isinstance(d, dict):
        raise ValueError(f"{source}: expected a JSON object for {name}, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ValueError(f"{source}: unknown {name} field(s) {unknown}; known fields: {sorted(fields)}")
    missing = [k for k, f in fields.items() if k not in d and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"{source}: missing required {name} field(s) {missing}")
    kw = {k: _check(v, hints[k], f"{source}: {name}.{k}") for k, v in d.items()}
    try:
        return cls(**kw)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{source}: {e}") from None


def preset(cls, **fields):
    """The one shape of a preset: a factory that builds a fresh ``cls`` from ``fields``, any of them overridden by
    its keyword arguments (``UNET_PRESETS["demo"](cond_dim=64)``). Nothing shared is handed out, so nothing a caller
    changes leaks into the next caller's preset."""
    def make(**overrides):
        return cls(**{**copy.deepcopy(fields), **overrides})
    make.__doc__ = f"{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())}), with overrides"
    return make


def load_config(cls, path: str | Path):
    """Read a JSON file into dataclass ``cls`` (errors name the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from None
    return config_from_dict(cls, d, str(path))


