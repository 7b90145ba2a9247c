"""Files that are either whole or absent: written to a temporary file beside their place, then renamed.

A full disk, a kill or a power cut while ``best`` or ``report`` writes must not leave a
half-written YAML or CSV that looks like a result. Each file goes to a temporary file in
the same folder (so the rename never crosses file systems), is flushed to the disk
(``fsync``), and only then takes its name (``os.replace``, atomic on POSIX); the folder is
synced too, so the new name survives a crash. A failure removes the temporary file, and
the file of that name, if one was there, stays as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

#: how a temporary file's name starts: hidden, and recognisably ours should a kill leave one behind
TEMP_PREFIX = ".snn-tmp-"


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` atomically; returns ``path``."""
    return write_all_atomic({Path(path): data})[0]


def write_all_atomic(files: Mapping[Path, str | bytes]) -> list[Path]:
    """Write several files, all or none: every one goes to its temporary file first, and only when all of them
    are written (a full disk fails here, before any name changes) do they take their names. Returns the paths."""
    with contextlib.ExitStack() as stack:
        for path, data in files.items():
            temp = stack.enter_context(atomic_path(path))
            with open(temp, "wb") as f:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
                f.flush()
                os.fsync(f.fileno())  # a full disk may only say so here
    return list(files)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder for a writer that needs a file name (e.g. an image exporter):
    when the block ends without an error, the file written there is synced and renamed to ``path``."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=path.suffix, dir=path.parent)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())  # on the disk before it takes the name: a crash then leaves the old file or this one
        os.chmod(temp, 0o666 & ~_UMASK)  # mkstemp's 0600 is for the temporary file, not the result
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    _sync_folder(path.parent)


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import, before any thread runs
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # a folder that cannot be opened for reading still holds the file; only durability is less sure
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not sync folders
    finally:
        os.close(fd)
