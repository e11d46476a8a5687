"""One writer per run, and the run folder's side files.

    with RunLock("runs/lenet/checkpoint.npz"):   # RunFolderError naming the holder if taken
        write_json("runs/lenet/history.json", solver.history())
    info = read_json("runs/lenet/data.json", DATA_FIELDS, "data.json of a run")

RunLock takes an exclusive flock on `<path>.lock`: the kernel releases it when the process
exits, however it exits (a crash or SIGKILL leaves the file but no lock). The file holds the
holder's pid, host, start time and command, so a second writer is told who has the run. The
lock is re-entrant within a process (the CLI takes it for the run folder, the Solver again
for its checkpoint). Files are written whole or not at all (dagnet.files.write_atomically);
read_json checks the type of every field a command relies on.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import socket
import sys
import warnings

from dagnet import files
from dagnet.errors import RunFolderError
from dagnet.files import describe_os_error, fix_for, short

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are then not protected against a second writer
    fcntl = None

#: the locks this process holds: real path of the lock file -> [fd, depth]
_HELD: dict[str, list] = {}


def write_json(path, obj) -> None:
    """A run file written atomically (dagnet.files.write_json); RunFolderError if it cannot be."""
    files.write_json(path, obj, error=RunFolderError)


# -- reading ------------------------------------------------------------------------------------

def read_json(path, fields: dict, what: str, error=RunFolderError, optional=()) -> dict:
    """A JSON object file whose fields have the types `fields` gives ({key: (type check, what it
    must be)}; the keys in `optional` may be absent); error naming the file and the field
    otherwise."""
    path = os.fspath(path)
    raw = files.read_bounded(path, MAX_JSON_BYTES, error, what,
                             missing=f"{path} is missing: is this a run folder of `dagnet train`?")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise error(f"{path} is not valid JSON ({short(str(e), 80)}); it is damaged: "
                    f"{what}") from None
    if not isinstance(obj, dict):
        raise error(f"{path} holds a JSON {type(obj).__name__}, not an object; it is damaged: "
                    f"{what}")
    return check_fields(path, obj, fields, what, error, optional)


def check_fields(path, obj: dict, fields: dict, what: str, error=RunFolderError,
                 optional=()) -> dict:
    """obj (read from path) when its fields have the types `fields` gives (see read_json)."""
    for key, (ok, want) in fields.items():
        if key not in obj:
            if key in optional:
                continue
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

#: data.json of a run folder as dagnet.load reads it (dagnet.save writes no data spec)
INFO_FIELDS = {
    "normalization": (lambda v: isinstance(v, dict) and set(v) <= {"mean", "std"}
                      and all(is_nested_numbers(x) for x in v.values()),
                      "a dict of mean and std (nested lists of numbers)"),
    "pixel_scale": (lambda v: is_finite(v) and v > 0, "a number > 0"),
    "class_names": (lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v),
                    "a list of names"),
    "preprocessing": (lambda v: isinstance(v, str), "the name of a preprocessing"),
}

#: history.json of a run folder: what the curves are drawn from (Solver.history())
HISTORY_FIELDS = {
    "loss_history": (lambda v: is_numbers(v), "a list of numbers"),
    "train_acc_history": (lambda v: is_numbers(v), "a list of numbers"),
    "val_acc_history": (lambda v: is_numbers(v), "a list of numbers"),
}


#: no run file dagnet writes comes near this; more is damage (or an attack on memory)
MAX_JSON_BYTES = 64 * 2 ** 20


def is_count(v, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def is_number(v) -> bool:
    """An int or float (NaN allowed: a history may hold a diverged value), not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_finite(v) -> bool:
    return is_number(v) and math.isfinite(v)


def is_numbers(v) -> bool:
    return isinstance(v, list) and all(is_number(x) for x in v)


def is_nested_numbers(v, depth: int = 0) -> bool:
    """A number or nested lists of numbers (normalisation stats), at most 8 deep."""
    if isinstance(v, list):
        return depth < 8 and all(is_nested_numbers(x, depth + 1) for x in v)
    return is_number(v)


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
