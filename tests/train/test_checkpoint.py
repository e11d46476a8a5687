"""Checkpoints: bitwise round trip, atomic writes, and every kind of bad file gives CheckpointError."""
import io
import json
import os
import zipfile

import numpy as np
import pytest

from dagnet.errors import CheckpointError
from dagnet.train import checkpoint as ckpt_module
from dagnet.train.checkpoint import Checkpoint, check_compatible, load_checkpoint, save_checkpoint
from dagnet.train.optim import state_to_arrays
from tests.payloads import Payload


def content(seed=0):
    """Keyword arguments of save_checkpoint covering every kind of section and leaf."""
    rng = np.random.default_rng(seed)
    params = {
        "conv1.W": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
        "conv1.b": np.zeros(4, dtype=np.float32),
        "fc/W": np.asfortranarray(rng.standard_normal((5, 3))),  # a "/" in a name, Fortran order
        "fc/b": rng.standard_normal(6)[::2],  # not contiguous
    }
    state = {"bn1": {"running_mean": rng.standard_normal(4), "running_var": rng.random(4)}, "empty": {}}
    optimizer = state_to_arrays({"conv1.W": {"learning_rate": 1e-3, "t": 3, "m": np.ones((4, 1, 3, 3))}})
    solver = {"epoch": 2, "iteration": 40, "loss_history": [2.3, 1.9, float("inf")],
              "rng": {"state": 2**127 + 5}, "update_rule": "adam", "lr": np.float32(0.5)}
    spec = {"name": "tiny", "nodes": [{"name": "x", "op": "input", "shape": [1, 8, 8]}]}
    extra = {"best_params": {"conv1.W": params["conv1.W"] * 2}}
    return dict(params=params, state=state, optimizer=optimizer, solver=solver, spec=spec, extra=extra)


def assert_same_tree(a, b):
    assert isinstance(a, dict) and isinstance(b, dict) and list(a) == list(b)
    for key in a:
        if isinstance(a[key], dict):
            assert_same_tree(a[key], b[key])
        else:
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape
            assert np.ascontiguousarray(a[key]).tobytes() == np.ascontiguousarray(b[key]).tobytes()


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, **content())
    return path


def test_round_trip_is_bitwise(saved):
    c = content()
    got = load_checkpoint(saved)
    assert isinstance(got, Checkpoint)
    for section in ("params", "state", "optimizer", "extra"):
        assert_same_tree(c[section], getattr(got, section))
    solver = dict(c["solver"], lr=0.5)  # numpy scalars come back as Python numbers
    assert got.solver == solver and got.spec == c["spec"]
    assert got.params["conv1.W"].flags.writeable  # optimizer state is updated in place later
    assert sorted(os.listdir(saved.parent)) == ["checkpoint.npz"]  # no temp file left


def test_extra_is_optional(tmp_path):
    c = content()
    del c["extra"]
    save_checkpoint(tmp_path / "c.npz", **c)
    assert load_checkpoint(tmp_path / "c.npz").extra == {}


def test_overwrite_replaces_and_syncs(saved, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    save_checkpoint(saved, **content(seed=1))
    assert len(synced) == 2  # the file, then the directory (so the rename is durable too)
    assert_same_tree(load_checkpoint(saved).params, content(seed=1)["params"])


def test_crash_before_rename_keeps_old_checkpoint(saved, monkeypatch):
    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(CheckpointError, match="previous checkpoint, if any, is unchanged"):
        save_checkpoint(saved, **content(seed=1))
    monkeypatch.undo()
    assert_same_tree(load_checkpoint(saved).params, content()["params"])
    assert sorted(os.listdir(saved.parent)) == ["checkpoint.npz"]


def test_interrupt_during_write_keeps_old_checkpoint(saved, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(saved, **content(seed=1))
    monkeypatch.undo()
    assert_same_tree(load_checkpoint(saved).params, content()["params"])
    assert sorted(os.listdir(saved.parent)) == ["checkpoint.npz"]


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*does not exist"):
        load_checkpoint(tmp_path / "nope.npz")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="cannot write checkpoint.*create the directory"):
        save_checkpoint(tmp_path / "no" / "such" / "dir.npz", **content())


@pytest.mark.parametrize("keep", [0, 10, 100, 0.5, -1])
def test_truncated_file(saved, keep):
    data = saved.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    saved.write_bytes(data[:n])
    with pytest.raises(CheckpointError, match="empty|truncated or corrupt"):
        load_checkpoint(saved)


def test_flipped_byte_in_array_data(saved):
    data = bytearray(saved.read_bytes())
    data[200] ^= 0xFF  # inside the first array's data
    saved.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(saved)


def test_every_single_byte_flip_is_detected_or_harmless(tmp_path):
    """Flip each byte of a small checkpoint: loading raises CheckpointError or gives the same content."""
    path = tmp_path / "small.npz"
    c = {"params": {"W": np.arange(6.0).reshape(2, 3)}, "state": {"bn": {"mean": np.ones(2)}},
         "optimizer": state_to_arrays({"W": {"learning_rate": 0.1, "t": 2}}),
         "solver": {"epoch": 1}, "spec": {"nodes": []}}
    save_checkpoint(path, **c)
    original = path.read_bytes()
    harmless = 0
    for i in range(len(original)):
        data = bytearray(original)
        data[i] ^= 0x55
        path.write_bytes(bytes(data))
        try:
            got = load_checkpoint(path)
        except CheckpointError:
            continue
        harmless += 1  # e.g. a zip timestamp: then the content must be exactly the same
        assert_same_tree(got.params, c["params"])
        assert_same_tree(got.state, c["state"])
        assert got.solver == c["solver"]
    assert harmless < len(original) // 4


def rewrite_entry(path, name, array, allow_pickle=False):
    """Replace one entry of an npz with `array`, keeping the zip itself valid (CRCs recomputed)."""
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=allow_pickle)
    members[name + ".npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)


def test_checksum_mismatch(saved):
    tampered = load_checkpoint(saved).params["conv1.b"] + 1
    rewrite_entry(saved, "params/1", tampered)
    with pytest.raises(CheckpointError, match="SHA-256 checksum does not match"):
        load_checkpoint(saved)


def test_not_a_dagnet_checkpoint(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a dagnet checkpoint"):
        load_checkpoint(tmp_path / "other.npz")
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(CheckpointError, match="not an .npz archive"):
        load_checkpoint(tmp_path / "array.npy")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(CheckpointError, match="not an .npz archive"):
        load_checkpoint(tmp_path / "text.npz")


def test_newer_format_version(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt_module, "FORMAT_VERSION", 2)
    save_checkpoint(tmp_path / "c.npz", **content())
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="format version 2.*reads version 1"):
        load_checkpoint(tmp_path / "c.npz")


def test_pickled_object_array_in_checkpoint_is_refused(saved, tmp_path):
    marker = tmp_path / "pwned"
    rewrite_entry(saved, "params/0", np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="pickled Python objects.*execute arbitrary code"):
        load_checkpoint(saved)
    assert not marker.exists()


def test_pickled_object_array_in_foreign_npz_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    np.savez(tmp_path / "evil.npz", __dagnet__=np.array([Payload(marker)], dtype=object))
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        load_checkpoint(tmp_path / "evil.npz")
    assert not marker.exists()


def test_save_refuses_what_cannot_load_safely(tmp_path):
    c = content()
    c["params"]["bad"] = np.array([object()], dtype=object)
    with pytest.raises(CheckpointError, match="params.bad is an object array"):
        save_checkpoint(tmp_path / "c.npz", **c)
    c = content()
    c["state"]["bn1"]["momentum"] = 0.9
    with pytest.raises(CheckpointError, match="state.bn1.momentum is a float.*numpy arrays"):
        save_checkpoint(tmp_path / "c.npz", **c)
    c = content()
    c["solver"]["weights"] = np.zeros(3)
    with pytest.raises(CheckpointError, match="solver must be JSON-serialisable"):
        save_checkpoint(tmp_path / "c.npz", **c)
    assert not os.listdir(tmp_path)


def test_metadata_is_readable_json(saved):
    with np.load(saved, allow_pickle=False) as npz:
        meta = json.loads(npz["__dagnet__"].tobytes())
    assert meta["format"] == "dagnet-checkpoint" and meta["version"] == 1
    assert len(meta["sha256"]) == 64
    assert meta["tree"]["params"]["fc/W"] in meta["arrays"]


def test_check_compatible(saved):
    c = load_checkpoint(saved)
    shapes = {name: p.shape for name, p in c.params.items()}
    check_compatible(c, shapes)
    shapes["conv1.W"] = (4, 3, 3, 3)
    shapes["fc2.W"] = (3, 10)
    del shapes["fc/b"]
    with pytest.raises(CheckpointError) as err:
        check_compatible(c, shapes)
    message = str(err.value)
    assert "missing from the checkpoint: fc2.W" in message
    assert "not in the graph: fc/b" in message
    assert "conv1.W checkpoint (4, 1, 3, 3) vs graph (4, 3, 3, 3)" in message
    assert "checkpoint.spec" in message
