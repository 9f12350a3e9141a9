"""File-system helpers shared by every atomic writer: the permission bits a new file or folder gets from the umask
(``tempfile.mkstemp`` / ``mkdtemp`` create 0600 / 0700, which must not survive the rename into place), and a short
content hash used as a portable model id."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["umask_mode", "apply_umask_mode", "folder_content_hash", "portable_model_id"]


def umask_mode(directory: bool = False) -> int:
    """The mode ``open()`` / ``mkdir()`` would give a new file (0666 & ~umask) or folder (0777 & ~umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def apply_umask_mode(path: str | os.PathLike, directory: bool | None = None) -> None:
    """chmod ``path`` to what the umask gives a newly created file or folder."""
    p = Path(path)
    os.chmod(p, umask_mode(p.is_dir() if directory is None else directory))


def folder_content_hash(folder: str | os.PathLike, length: int = 12) -> str:
    """SHA-256 over the relative names and bytes of every file in ``folder`` (sorted), as ``length`` hex digits.
    Independent of where the folder lives and of file times."""
    folder = Path(folder)
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()[:length]


def portable_model_id(folder: str | os.PathLike) -> str:
    """``NAME@HASH``: the folder's name and its content hash (no machine-specific path)."""
    folder = Path(folder)
    return f"{folder.resolve().name}@{folder_content_hash(folder)}"
