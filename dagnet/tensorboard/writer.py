"""SummaryWriter: TensorBoard event files with no dependency (no TensorFlow, tensorboardX or
protobuf package): the TFRecord framing and CRC-32C here, the messages in proto.py.

    w = SummaryWriter("runs/lenet")            # runs/lenet/events.out.tfevents.<time>.<host>.<pid>.<n>
    w.add_scalars({"step/loss": 0.7, "step/lr": 0.04}, step=12)
    w.add_histogram("weights/conv1.w", params["conv1.w"], step=1)
    w.flush(); w.close()                        # view with: tensorboard --logdir runs

Records are buffered in memory and written (appended, then flushed) by flush(): a process
killed between flushes loses only what it had not flushed. A resumed run gives purge_step =
the first step it will log again: TensorBoard then drops the earlier file's events from that
step on (a killed run may have flushed some it will now repeat).
"""
from __future__ import annotations

import os
import socket
import struct
import time

from dagnet.tensorboard import proto

FILE_VERSION = "brain.Event:2"


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1  # Castagnoli, reflected
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord frames use; crc32c(b"123456789") == 0xE3069283."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """One TFRecord: length (u64), masked CRC of the length, data, masked CRC of the data."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


_counter = 0


class SummaryWriter:
    """Appends events to one new event file in logdir (made if missing)."""

    def __init__(self, logdir, purge_step: int | None = None):
        global _counter
        self.logdir = os.fspath(logdir)
        os.makedirs(self.logdir, exist_ok=True)
        _counter += 1
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{_counter}"
        self.path = os.path.join(self.logdir, name)
        self._pending: list[bytes] = []
        self._file = open(self.path, "ab")
        self._add(proto.event(purge_step or 0, time.time(), file_version=FILE_VERSION))
        if purge_step is not None:
            # a restart at purge_step: TensorBoard drops the older files' events from there on
            self._add(proto.event(purge_step, time.time(), session_start=True))
        self.flush()

    def _add(self, event: bytes) -> None:
        if self._file is None:
            raise ValueError(f"the SummaryWriter of {self.path} is closed")
        self._pending.append(record(event))

    def add_scalars(self, values: dict, step: int, wall_time: float | None = None) -> None:
        """Several scalars of one step in one event: {tag: number}."""
        summary = proto.summary([proto.scalar_value(tag, float(v)) for tag, v in values.items()])
        self._add(proto.event(step, wall_time or time.time(), summary=summary))

    def add_scalar(self, tag: str, value: float, step: int, wall_time: float | None = None) -> None:
        self.add_scalars({tag: value}, step, wall_time)

    def add_histogram(self, tag: str, values, step: int, bins: int = 30) -> None:
        self._add(proto.event(step, time.time(),
                              summary=proto.summary([proto.histogram_value(tag, values, bins)])))

    def add_histograms(self, arrays: dict, step: int, bins: int = 30) -> None:
        """One histogram per {tag: array}, in one event."""
        values = [proto.histogram_value(tag, a, bins) for tag, a in arrays.items()]
        self._add(proto.event(step, time.time(), summary=proto.summary(values)))

    def add_plugin_data(self, tag: str, plugin: str, content: bytes, step: int = 0) -> None:
        self._add(proto.event(step, time.time(),
                              summary=proto.summary([proto.plugin_value(tag, plugin, content)])))

    def flush(self) -> None:
        if self._file is None or not self._pending:
            return
        self._file.write(b"".join(self._pending))
        self._file.flush()
        self._pending.clear()

    def close(self) -> None:
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
