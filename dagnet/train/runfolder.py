"""One writer per run, and files that are whole or absent.

    with RunLock("runs/lenet/checkpoint.npz"):   # RunFolderError naming the holder if taken
        write_json("runs/lenet/history.json", solver.history())
    info = read_json("runs/lenet/data.json", DATA_FIELDS, "data.json of a run")

RunLock takes an exclusive flock on `<path>.lock`: the kernel releases it when the process
exits, however it exits (a crash or SIGKILL leaves the file but no lock). The file holds the
holder's pid, host, start time and command, so a second writer is told who has the run. The
lock is re-entrant within a process (the CLI takes it for the run folder, the Solver again
for its checkpoint).

Every file is written by write_atomically: a temp file created exclusively in the target's
folder (mkstemp: O_CREAT|O_EXCL, so a name planted there - a symlink to a victim - is never
opened), fsynced, renamed over the target with os.replace (which replaces a symlink at the
target rather than following it), then the folder is fsynced. On any failure (a full disk, a
read-only folder) the temp file is removed and the error names the file and the reason.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import json
import math
import os
import socket
import sys
import tempfile
import time
import warnings

from dagnet.errors import RunFolderError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are then not protected against a second writer
    fcntl = None

#: temp files of this age (seconds) are leftovers of a write that was killed, not one under way
STALE_TEMP_AGE = 60.0

#: the locks this process holds: real path of the lock file -> [fd, depth]
_HELD: dict[str, list] = {}


# -- writing ------------------------------------------------------------------------------------

def write_atomically(path, write, error=RunFolderError, what: str = "file",
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


def write_json(path, obj, error=RunFolderError) -> None:
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


# -- reading ------------------------------------------------------------------------------------

def read_json(path, fields: dict, what: str, error=RunFolderError) -> dict:
    """A JSON object file whose fields have the types `fields` gives ({key: (type check, what it
    must be)}); error naming the file and the field otherwise."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise error(f"{path} is missing: is this a run folder of `dagnet train`?") from None
    except OSError as e:
        raise error(f"cannot read {path}: {describe_os_error(e)}") from None
    if len(raw) > MAX_JSON_BYTES:
        raise error(f"{path} is larger than {MAX_JSON_BYTES // 2 ** 20} MB: not a {what} written "
                    f"by dagnet")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise error(f"{path} is not valid JSON ({short(str(e), 80)}); it is damaged: "
                    f"{what}") from None
    if not isinstance(obj, dict):
        raise error(f"{path} holds a JSON {type(obj).__name__}, not an object; it is damaged: "
                    f"{what}")
    for key, (ok, want) in fields.items():
        if key not in obj:
            raise error(f"{path} has no {key!r}; it is damaged: {what}")
        if not ok(obj[key]):
            raise error(f"{path}: {key} = {short(repr(obj[key]), 60)}; it must be {want}: {what}")
    return obj


#: data.json of a run folder: how `dagnet train` loaded and normalised its data
DATA_FIELDS = {
    "data": (lambda v: isinstance(v, str), "a data spec such as fashion-mnist or mnist:DIR"),
    "num_val": (lambda v: is_count(v), "an integer >= 0"),
    "split_seed": (lambda v: is_count(v), "an integer >= 0"),
    "normalization": (lambda v: isinstance(v, dict), "a dict of mean and std lists"),
}

#: history.json of a run folder: what the curves are drawn from (Solver.history())
HISTORY_FIELDS = {
    "loss_history": (lambda v: is_numbers(v), "a list of numbers"),
    "train_acc_history": (lambda v: is_numbers(v), "a list of numbers"),
    "val_acc_history": (lambda v: is_numbers(v), "a list of numbers"),
}


#: no run file dagnet writes comes near this; more is damage (or an attack on memory)
MAX_JSON_BYTES = 64 * 2 ** 20


def short(text: str, limit: int = 200) -> str:
    """text cut to `limit` characters, the middle elided: error messages stay one short line."""
    text = str(text)
    if len(text) <= limit:
        return text
    keep = max(limit - 5, 2)
    return f"{text[:keep - keep // 3]} ... {text[len(text) - keep // 3:]}"


def is_count(v, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def is_number(v) -> bool:
    """An int or float (NaN allowed: a history may hold a diverged value), not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_finite(v) -> bool:
    return is_number(v) and math.isfinite(v)


def is_numbers(v) -> bool:
    return isinstance(v, list) and all(is_number(x) for x in v)


# -- the lock -------------------------------------------------------------------------------------

class RunLock:
    """An exclusive lock on `<path>.lock` while the `with` block runs (re-entrant in a process).

    RunFolderError if another process holds it: the message names its pid, host, start time
    and command."""

    def __init__(self, path, what: str | None = None):
        self.path = os.fspath(path) + ".lock"
        self.what = what or os.fspath(path)
        self.key = None

    def __enter__(self) -> "RunLock":
        if fcntl is None:
            return self
        key = os.path.realpath(self.path)
        if key in _HELD:
            _HELD[key][1] += 1
        else:
            _HELD[key] = [self._acquire(), 1]
        self.key = key
        return self

    def __exit__(self, *exc) -> None:
        if self.key is None:
            return
        held = _HELD[self.key]
        held[1] -= 1
        if held[1] == 0:
            del _HELD[self.key]
            # Unlink before unlocking: a writer waiting on this inode then sees it was removed
            # (its path check fails) and retries on a fresh file.
            with contextlib.suppress(OSError):
                if _same_file(self.path, held[0]):
                    os.unlink(self.path)
            os.close(held[0])
        self.key = None

    def _acquire(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        for _ in range(20):
            try:
                fd = os.open(self.path, flags, 0o644)
            except OSError as e:
                where = os.path.dirname(os.path.abspath(self.path))
                raise RunFolderError(f"cannot lock {self.what}: {self.path}: "
                                     f"{describe_os_error(e)}; {fix_for(e, where)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunFolderError(f"{self.what} is in use by another process ({holder}); wait "
                                     f"for it to finish or stop it, or write to another folder "
                                     f"(two writers would overwrite each other's checkpoints)") from None
            except OSError as e:  # a file system without locks (some network mounts)
                warnings.warn(f"cannot lock {self.path} ({describe_os_error(e)}): nothing stops "
                              f"a second process writing {self.what} at the same time",
                              stacklevel=3)
                return fd
            if _same_file(self.path, fd):
                _write_holder(fd)
                return fd
            os.close(fd)  # the holder removed the file as we locked it: lock the new one
        raise RunFolderError(f"cannot lock {self.what}: {self.path} keeps being replaced; is "
                             f"another program removing it?")


def _same_file(path: str, fd: int) -> bool:
    try:
        a, b = os.stat(path, follow_symlinks=False), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _write_holder(fd: int) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": short(" ".join([os.path.basename(sys.argv[0] or "python")] + sys.argv[1:]), 200)}
    with contextlib.suppress(OSError):  # a full disk: the lock holds, only the note is lost
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return (f"pid {int(info['pid'])} on {short(str(info['host']), 60)}, started "
                f"{short(str(info['started']), 40)}: {short(str(info['command']), 120)}")
    except (OSError, ValueError, KeyError, TypeError):
        return "which has not said who it is yet"
