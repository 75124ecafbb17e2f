"""Atomic writes: a file or folder appears complete under its name, or not at all.

Every stage that writes something a user keeps (models, checkpoints, caches, predictions) goes through
here: the content is written to a hidden temporary sibling in the same folder (same file system), then
renamed over the target with ``os.replace``, so a crash or a full disk never leaves a half-written file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` on a temporary sibling of ``path``, then rename it to ``path``.

    Args:
        path: the file to create or replace (its folder is created).
        write: writes the whole content to the path it is given (e.g. ``lambda p: torch.save(state, p)``).

    Returns:
        ``path``. On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_dir(path: str | Path, fill: Callable[[Path], object]) -> Path:
    """Call ``fill(tmp_dir)`` on a temporary sibling folder, then put it in place of ``path``.

    An existing ``path`` is moved aside first and deleted only once the new folder is in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        fill(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


class OutputExistsError(ValueError):
    """An output path holds something the command did not write (or the command's own input)."""


def check_output(path: str | Path, *, overwrite: bool = False, is_dir: bool = False,
                 ours: Callable[[Path], bool] | None = None, inputs: tuple[str | Path, ...] = ()) -> None:
    """Refuse to write ``path`` where that would destroy something the user owns; nothing is changed.

    Args:
        path: the file (or, with ``is_dir``, folder) a command is about to write.
        overwrite: the user's ``--overwrite``; even then only an output ``ours`` recognises is replaced.
        is_dir: ``path`` is a folder output (an empty folder counts as absent).
        ours: whether an existing ``path`` is what this command writes (e.g. a model directory); ``None``:
            any existing file of the same kind.
        inputs: the command's inputs; ``path`` may never be one of them or hold one.

    Raises:
        OutputExistsError: naming the path and why.
    """
    path = Path(path)
    target = path.resolve()
    for source in inputs:
        resolved = Path(source).resolve()
        if resolved == target or target in resolved.parents:
            raise OutputExistsError(f"{path}: is or holds the input {source}; writing there could destroy it")
    if not path.exists() and not path.is_symlink():
        return
    if is_dir and not path.is_dir():
        raise OutputExistsError(f"{path}: is a file, not a folder; choose another output")
    if not is_dir and path.is_dir():
        raise OutputExistsError(f"{path}: is a folder, not a file; choose another output")
    if is_dir and not any(path.iterdir()):
        return
    if not overwrite:
        raise OutputExistsError(f"{path}: already exists; pass --overwrite to replace it, or choose another output")
    if ours is not None and not ours(path):
        raise OutputExistsError(f"{path}: holds files this command did not write; it is never replaced, even with "
                                "--overwrite (choose another output)")
