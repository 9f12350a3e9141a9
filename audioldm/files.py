"""The one atomic writer, for files (:func:`atomic_path`, :func:`write_bytes_atomic`, :func:`write_text_atomic`,
:func:`save_json_atomic`) and folders (:func:`atomic_folder`): write to a unique temporary name in the same folder,
fsync it, give it the mode the umask gives a new file (``mkstemp`` / ``mkdtemp`` make 0600 / 0700), rename it into
place and fsync the folder, so a reader sees the old content or the new one, never a torn one, even after a crash.
Also: a short content hash used as a portable model id."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "write_bytes_atomic", "write_text_atomic", "save_json_atomic", "atomic_folder", "fsync_path",
           "umask_mode", "apply_umask_mode", "folder_content_hash", "portable_model_id"]


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's content to disk (folders: where the OS allows opening them)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True):
    """Yield a unique temporary path beside ``path`` for the caller to write; on success it replaces ``path``
    (fsync, umask mode, rename, fsync of the folder), on any error it is removed and ``path`` is left as it was.
    An existing ``path`` is refused unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        fsync_path(tmp)
        apply_umask_mode(tmp, directory=False)
        os.replace(tmp, path)
        fsync_path(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> Path:
    with atomic_path(path, overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, overwrite: bool = True) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), overwrite)


def save_json_atomic(path: str | os.PathLike, obj, overwrite: bool = True) -> Path:
    """``obj`` as indented JSON (UTF-8, a final newline), written atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=2) + "\n", overwrite)


@contextmanager
def atomic_folder(folder: str | os.PathLike, overwrite: bool = False):
    """Yield a temporary sibling folder to fill; on success it replaces ``folder`` (fsynced, renamed into place), on
    any error it is removed and ``folder`` is left as it was. Refuses an existing ``folder`` unless ``overwrite``."""
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder}: already exists; pass overwrite=True to replace it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        for p in [*tmp.rglob("*"), tmp]:  # mkdtemp makes 0700 and safetensors 0600: a new file's usual mode
            apply_umask_mode(p)
            fsync_path(p)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
        fsync_path(folder.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
    """``NAME@HASH``: the folder's name and its content hash (no machine-specific path); anything that is not a
    local folder (a hub id such as ``cvssp/audioldm-s-full-v2``) is its own id."""
    if not Path(folder).is_dir():
        return str(folder)
    folder = Path(folder)
    return f"{folder.resolve().name}@{folder_content_hash(folder)}"
