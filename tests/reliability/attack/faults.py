"""Fault injection for run folders: a small tmpfs (full or read-only) where this process may
mount one (root on Linux), else a fake: writes that fail with ENOSPC / EROFS as the kernel's
would, injected where dagnet's files are opened and written.

    with full_folder() as folder:       # a folder whose disk is full
    with read_only_folder() as folder:  # a folder on a read-only file system
"""
from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import shutil
import subprocess
import tempfile
from unittest import mock


def can_mount() -> bool:
    """True where this process may mount a tmpfs (root on Linux, with mount(8))."""
    return (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None
            and os.environ.get("DAGNET_TEST_NO_MOUNT") != "1")


@contextlib.contextmanager
def tmpfs(size_kib: int, read_only: bool = False, fill_from=None):
    """A fresh tmpfs of size_kib (after copying fill_from's files in, remounted read-only if
    asked), unmounted afterwards; None where it cannot be mounted."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="dagnet-tmpfs-"))
    mounted = False
    try:
        if can_mount():
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs",
                                str(folder)], capture_output=True)
            mounted = r.returncode == 0
        if not mounted:
            yield None
            return
        if fill_from is not None:
            for p in pathlib.Path(fill_from).iterdir():
                if p.is_file():
                    shutil.copy2(p, folder / p.name)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def fill(folder) -> None:
    """Fill the file system of `folder` to the last byte."""
    fd = os.open(os.path.join(folder, "filler"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (65536, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)


@contextlib.contextmanager
def fake_disk_error(folder, code=errno.ENOSPC):
    """Every file dagnet opens for writing under `folder` fails as a full (ENOSPC) or
    read-only (EROFS) disk would: at creation for EROFS, at the first write for ENOSPC."""
    folder = os.path.abspath(folder)
    real_open, real_mkstemp = os.open, __import__("tempfile").mkstemp
    real_write = os.write

    def inside(path) -> bool:
        return os.path.abspath(os.fsdecode(path)).startswith(folder + os.sep)

    def fake_open(path, flags, *args, **kw):
        writing = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if writing and inside(path) and code == errno.EROFS:
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        return real_open(path, flags, *args, **kw)

    def fake_mkstemp(*args, dir=None, **kw):
        if dir is not None and (inside(os.path.join(dir, "x"))) and code == errno.EROFS:
            raise OSError(code, os.strerror(code), dir)
        return real_mkstemp(*args, dir=dir, **kw)

    class FullFile:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    real_fdopen = os.fdopen

    def fake_fdopen(fd, *args, **kw):
        f = real_fdopen(fd, *args, **kw)
        name = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else ""
        return FullFile(f) if code == errno.ENOSPC and inside(name) else f

    real_builtin_open = open

    def fake_builtin_open(path, mode="r", *args, **kw):
        if isinstance(path, (str, bytes, os.PathLike)) and inside(path) and any(c in mode for c in "wax+"):
            if code == errno.EROFS:
                raise OSError(code, os.strerror(code), os.fsdecode(path))
            return FullFile(real_builtin_open(path, mode, *args, **kw))
        return real_builtin_open(path, mode, *args, **kw)

    with mock.patch("os.open", fake_open), mock.patch("tempfile.mkstemp", fake_mkstemp), \
            mock.patch("os.fdopen", fake_fdopen), mock.patch("builtins.open", fake_builtin_open):
        del real_write
        yield folder
