"""The few protocol-buffer messages of TensorBoard's event files, encoded by hand.

Field numbers are those of tensorflow/core/util/event.proto, tensorflow/core/framework/
summary.proto, google/protobuf/struct.proto and tensorboard/plugins/hparams/{api,plugin_data}
.proto; tests decode the result with TensorBoard's own generated classes. A message is built
as bytes from (field number, value) pairs; every field given is written, defaults included,
so a oneof member of 0.0 (a scalar of zero) is still present.

    event(step=3, wall_time=t, summary=summary([scalar_value("loss", 0.5)]))
"""
from __future__ import annotations

import struct

import numpy as np

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def varint(n: int) -> bytes:
    """Base-128 varint; negative int64 as its 10-byte two's complement."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def int_field(field: int, value: int) -> bytes:
    return _key(field, _VARINT) + varint(int(value))


def double_field(field: int, value: float) -> bytes:
    return _key(field, _I64) + struct.pack("<d", float(value))


def float_field(field: int, value: float) -> bytes:
    return _key(field, _I32) + struct.pack("<f", float(value))


def bytes_field(field: int, value: bytes) -> bytes:
    return _key(field, _LEN) + varint(len(value)) + value


def str_field(field: int, value: str) -> bytes:
    return bytes_field(field, value.encode("utf-8"))


def packed_doubles(field: int, values) -> bytes:
    return bytes_field(field, np.asarray(values, dtype="<f8").tobytes())


# -- event.proto / summary.proto -------------------------------------------------------------

def event(step: int, wall_time: float, summary: bytes | None = None,
          file_version: str | None = None, session_start: bool = False) -> bytes:
    """Event {wall_time = 1; step = 2; file_version = 3 | summary = 5 | session_log
    (SessionLog {status = 1: START = 1}) = 7}; 6 is the deprecated log_message."""
    body = double_field(1, wall_time) + int_field(2, step)
    if file_version is not None:
        body += str_field(3, file_version)
    if summary is not None:
        body += bytes_field(5, summary)
    if session_start:
        body += bytes_field(7, int_field(1, 1))
    return body


def summary(values: list[bytes]) -> bytes:
    """Summary {repeated Value value = 1}."""
    return b"".join(bytes_field(1, v) for v in values)


def scalar_value(tag: str, value: float) -> bytes:
    """Summary.Value {tag = 1; simple_value = 2}."""
    return str_field(1, tag) + float_field(2, value)


def histogram_value(tag: str, values: np.ndarray, bins: int = 30) -> bytes:
    """Summary.Value {tag = 1; histo = 5}: HistogramProto {min 1, max 2, num 3, sum 4,
    sum_squares 5, bucket_limit 6, bucket 7}; bucket i counts values in (limit[i-1],
    limit[i]], the first from min. Non-finite values are left out of the buckets."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        v = np.zeros(1)
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:  # one value: a single narrow bucket around it
        lo, hi = lo - 0.5 * (abs(lo) or 1e-12), hi + 0.5 * (abs(hi) or 1e-12)
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    histo = (double_field(1, v.min()) + double_field(2, v.max()) + double_field(3, v.size)
             + double_field(4, v.sum()) + double_field(5, float(v @ v))
             + packed_doubles(6, edges[1:]) + packed_doubles(7, counts))
    return str_field(1, tag) + bytes_field(5, histo)


def plugin_value(tag: str, plugin: str, content: bytes) -> bytes:
    """Summary.Value {tag = 1; metadata = 9: SummaryMetadata {plugin_data = 1: PluginData
    {plugin_name = 1; content = 2}}}: data only a plugin reads (the hparams plugin's)."""
    plugin_data = str_field(1, plugin) + bytes_field(2, content)
    return str_field(1, tag) + bytes_field(9, bytes_field(1, plugin_data))


# -- struct.proto: google.protobuf.Value -----------------------------------------------------

def proto_value(v) -> bytes:
    """Value {number_value = 2 | string_value = 3 | bool_value = 4 | list_value = 6}."""
    if isinstance(v, (bool, np.bool_)):
        return int_field(4, int(v))
    if isinstance(v, (int, float, np.integer, np.floating)):
        return double_field(2, float(v))
    if isinstance(v, (list, tuple)):
        return bytes_field(6, b"".join(bytes_field(1, proto_value(x)) for x in v))
    return str_field(3, "" if v is None else str(v))


# -- tensorboard/plugins/hparams -------------------------------------------------------------

HPARAMS_PLUGIN = "hparams"
EXPERIMENT_TAG = "_hparams_/experiment"
SESSION_START_TAG = "_hparams_/session_start_info"
SESSION_END_TAG = "_hparams_/session_end_info"
#: api.proto DataType and Status
DATA_TYPE = {"string": 1, "bool": 2, "float64": 3}
STATUS = {"success": 1, "failure": 2, "running": 3}


def _plugin_data(field: int, message: bytes) -> bytes:
    """HParamsPluginData {version = 1 (0); experiment = 2 | session_start_info = 3 |
    session_end_info = 4}."""
    return int_field(1, 0) + bytes_field(field, message)


def hparams_experiment(hparams: list[dict], metrics: list[str], name: str = "") -> bytes:
    """The experiment summary: what the hparams dashboard lists as columns.

    hparams: [{"name", "type": "float64" | "string" | "bool", and "low"/"high" (an interval)
    or "values" (a discrete domain)}]; metrics: scalar tags (e.g. "epoch/val_acc").
    Experiment {description 1, hparam_infos 4, metric_infos 5, name 6}; HParamInfo {name 1,
    type 4, domain_discrete 5 (ListValue) | domain_interval 6 (Interval {min 1, max 2})};
    MetricInfo {name 1: MetricName {group 1, tag 2}}."""
    body = b""
    for h in hparams:
        info = str_field(1, h["name"]) + int_field(4, DATA_TYPE[h["type"]])
        if "values" in h:
            info += bytes_field(5, b"".join(bytes_field(1, proto_value(x)) for x in h["values"]))
        elif "low" in h:
            info += bytes_field(6, double_field(1, h["low"]) + double_field(2, h["high"]))
        body += bytes_field(4, info)
    for tag in metrics:
        body += bytes_field(5, bytes_field(1, str_field(1, "") + str_field(2, tag)))
    if name:
        body += str_field(6, name)
    return _plugin_data(2, body)


def hparams_session_start(hparams: dict, start_time: float, group: str = "") -> bytes:
    """SessionStartInfo {hparams = 1 (map<string, Value>: entries {key 1, value 2}),
    group_name = 4, start_time_secs = 5}."""
    body = b"".join(bytes_field(1, str_field(1, k) + bytes_field(2, proto_value(v)))
                    for k, v in hparams.items())
    if group:
        body += str_field(4, group)
    body += double_field(5, start_time)
    return _plugin_data(3, body)


def hparams_session_end(status: str, end_time: float) -> bytes:
    """SessionEndInfo {status = 1, end_time_secs = 2}."""
    return _plugin_data(4, int_field(1, STATUS[status]) + double_field(2, end_time))
