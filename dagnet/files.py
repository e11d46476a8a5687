"""Files that are whole or absent, and what the system said when one could not be written.

    write_atomically(path, lambda f: np.savez(f, **arrays), error=CheckpointError)
    write_json(path, {"loss": 0.1})
    describe_os_error(e)       # 'No space left on device (ENOSPC)'

write_atomically creates a temp file exclusively in the target's folder (mkstemp:
O_CREAT|O_EXCL, so a name planted there - a symlink to a victim - is never opened), fsyncs it,
renames it over the target with os.replace (which replaces a symlink at the target rather
than following it), then fsyncs the folder. On any failure (a full disk, a read-only folder,
an interrupt) the temp file is removed and the error names the file and the reason; the
previous file, if any, is unchanged.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
import time

from dagnet.errors import DagnetError

#: temp files of this age (seconds) are leftovers of a write that was killed, not one under way
STALE_TEMP_AGE = 60.0


# -- writing ------------------------------------------------------------------------------------

def write_atomically(path, write, error=DagnetError, what: str = "file",
                     mode: int = 0o644) -> None:
    """Write a file through write(binary_file) so that it is whole or absent, never half.

    error: the DagnetError class raised when the folder cannot take the file (its message names
    the `what`, the path and the reason, e.g. 'No space left on device')."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        # Same folder as the target: os.replace is only atomic within one file system.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                                   suffix=".tmp")
    except OSError as e:
        raise error(f"cannot write {what} {path}: {describe_os_error(e)}; "
                    f"{fix_for(e, directory)}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; run files are no secret and others may read them.
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise error(f"cannot write {what} {path}: {describe_os_error(e)}; "
                        f"{fix_for(e, directory)}; the previous {what}, if any, is "
                        f"unchanged") from None
        raise
    with contextlib.suppress(OSError):  # the data is on disk; only the rename may be lost
        fsync_directory(directory)
    remove_stale_temps(path)


def write_json(path, obj, error=DagnetError) -> None:
    """JSON written atomically (see write_atomically); numpy scalars become plain numbers."""
    text = json.dumps(obj, default=_json_default, allow_nan=True).encode("utf-8")
    write_atomically(path, lambda f: f.write(text), error=error, what=os.path.basename(path))


def _json_default(obj):
    item = getattr(obj, "item", None)  # numpy scalars (np.float32 losses)
    if callable(item) and getattr(obj, "shape", None) == ():
        return item()
    raise TypeError(f"a {type(obj).__name__} is not JSON-serialisable")


def fsync_directory(directory: str) -> None:
    """Make a rename in `directory` durable (without it a power cut may undo the rename)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temps(path) -> None:
    """Delete the temp files that killed writes of `path` left behind (older than
    STALE_TEMP_AGE, so never one a live writer is filling)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    prefix = "." + os.path.basename(path) + "."
    now = time.time()
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            if name.startswith(prefix) and name.endswith(".tmp"):
                temp = os.path.join(directory, name)
                with contextlib.suppress(OSError):
                    if now - os.lstat(temp).st_mtime > STALE_TEMP_AGE:
                        os.unlink(temp)


def describe_os_error(e: OSError) -> str:
    """'No space left on device (ENOSPC)': the errno's meaning and name, whatever the message."""
    if e.errno is None:
        return str(e)
    name = errno.errorcode.get(e.errno, str(e.errno))
    return f"{e.strerror or os.strerror(e.errno)} ({name})"


#: errno -> what the user can do about it
_FIXES = {
    errno.ENOSPC: "free some space on that disk or choose a folder on another one",
    errno.EDQUOT: "free some space (your disk quota is used up) or choose another folder",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "you may not write there: choose a folder of your own or fix its permissions",
    errno.EPERM: "you may not write there: choose a folder of your own or fix its permissions",
    errno.ENOENT: "create the directory or fix the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: fix the path",
    errno.EISDIR: "the path is a folder: give a file name",
    errno.ELOOP: "the path is (or passes through) a symbolic link dagnet will not follow: remove it",
}


def fix_for(e: OSError, where: str) -> str:
    return _FIXES.get(e.errno, f"check {where}")


def short(text: str, limit: int = 200) -> str:
    """text cut to `limit` characters, the middle elided: error messages stay one short line."""
    text = str(text)
    if len(text) <= limit:
        return text
    keep = max(limit - 5, 2)
    return f"{text[:keep - keep // 3]} ... {text[len(text) - keep // 3:]}"


def check_regular(path: str, error=DagnetError, what: str = "file") -> None:
    """error unless `path`, if it exists, is a regular file: reading a FIFO would wait forever
    and a device could stream without end."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing or unreadable: the open that follows says so
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise error(f"{path} is not a regular file (a FIFO, device or socket); give the {what} "
                    f"itself")


def read_bounded(path, limit: int, error=DagnetError, what: str = "file",
                 missing: str | None = None) -> bytes:
    """The bytes of a file the user names, read at most `limit` of them: error naming the file
    if it is missing (`missing`, else "<path>: <what> not found"), a folder, not a regular
    file, unreadable, or larger than any `what` (an untrusted path must not hang or fill the
    memory)."""
    path = os.fspath(path)
    check_regular(path, error, what)
    try:
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
    except FileNotFoundError:
        raise error(missing or f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{path} is a folder, not a {what}") from None
    except OSError as e:
        raise error(f"cannot read {what} {path}: {describe_os_error(e)}") from None
    if len(raw) > limit:
        raise error(f"{path} is larger than {limit / 2 ** 20:.0f} MB, more than any {what} needs: "
                    f"is it the right file?")
    return raw
