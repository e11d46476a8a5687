"""Checkpoints: params, explicit state, optimizer state, solver state and the graph spec in ONE .npz.

    save_checkpoint("run/checkpoint.npz", params, state, optimizer, solver, spec)
    ckpt = load_checkpoint("run/checkpoint.npz")        # raises CheckpointError if unusable
    check_compatible(ckpt, {name: p.shape for name, p in params.items()})

Layout: every array is an npz entry named `<section>/<i>`; the entry `__dagnet__` is a uint8
array holding UTF-8 JSON metadata: format name and version, the tree of each section (nested
dicts whose leaves are entry names, so any key - even one containing "/" - round-trips),
dtype and shape per entry, the solver and spec dicts, and a SHA-256 of all of it.

Safety: the file is written to a temp file in the same directory, fsynced, renamed over the old
one with os.replace (atomic on POSIX) and the directory fsynced, so a crash at any moment
leaves either the old or the new checkpoint, both complete. The temp file of a killed save is
removed by a later save once it is a minute old. Loading uses allow_pickle=False
and refuses object arrays before reading them: a checkpoint never executes code.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np

from dagnet.errors import CheckpointError
from dagnet import files

FORMAT = "dagnet-checkpoint"
FORMAT_VERSION = 1
META_KEY = "__dagnet__"
ARRAY_SECTIONS = ("params", "state", "optimizer", "extra")
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class Checkpoint:
    """What a checkpoint holds; the array sections are (nested) dicts of numpy arrays."""

    params: dict
    state: dict
    optimizer: dict
    solver: dict
    spec: dict
    extra: dict = field(default_factory=dict)


# -- saving ----------------------------------------------------------------------------------

def save_checkpoint(path, params: dict, state: dict, optimizer: dict, solver: dict, spec: dict,
                    extra: dict | None = None) -> None:
    """Write one checkpoint file atomically.

    params: {name: array}; state: {node: {key: array}} (e.g. batchnorm running stats);
    optimizer: dict of arrays (e.g. optim.state_to_arrays(configs)); solver, spec: JSON-able
    dicts (tuples come back as lists); extra: more arrays, e.g. the best-validation params.
    Array sections may nest dicts to any depth; leaves must be numeric numpy arrays.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise CheckpointError(f"save_checkpoint: path = {path!r:.60}; it must be a file path "
                              f"(str or pathlib.Path)")
    path = os.fsdecode(os.fspath(path))
    if os.path.isdir(path):
        raise CheckpointError(f"cannot write checkpoint {path}: it is a folder; give a file path "
                              f"such as {os.path.join(path, 'checkpoint.npz')}")
    arrays: dict[str, np.ndarray] = {}
    sections = {"params": params, "state": state, "optimizer": optimizer, "extra": extra or {}}
    tree = {name: _flatten(name, sections[name], [name], arrays) for name in ARRAY_SECTIONS}
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "tree": tree,
        "arrays": {key: {"dtype": a.dtype.str, "shape": list(a.shape)} for key, a in arrays.items()},
        "solver": solver,
        "spec": spec,
    }
    for name in ("solver", "spec"):
        _check_json(name, meta[name])
    # Hash what load will see: the JSON round trip turns tuples into lists and int keys into str.
    meta = json.loads(json.dumps(meta, default=_json_default))
    meta["sha256"] = _digest(meta, arrays)
    text = json.dumps(meta)
    arrays[META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    _write_atomically(path, arrays)


def _flatten(section: str, tree, where: list, arrays: dict) -> dict:
    """Move the arrays of a nested dict into `arrays`; returns the tree with entry names as leaves."""
    if not isinstance(tree, dict):
        raise CheckpointError(f"checkpoint {'.'.join(where)} must be a dict of numpy arrays, "
                              f"got {type(tree).__name__}")
    skeleton = {}
    for key, value in tree.items():
        here = where + [str(key)]
        if not isinstance(key, str):
            raise CheckpointError(f"checkpoint {'.'.join(here)}: keys must be str, got {type(key).__name__}")
        if isinstance(value, dict):
            skeleton[key] = _flatten(section, value, here, arrays)
        elif isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise CheckpointError(f"checkpoint {'.'.join(here)} is an object array; it could only "
                                      "be stored as a pickle, which dagnet never loads: use numeric arrays")
            entry = f"{section}/{len(arrays)}"
            arrays[entry] = value
            skeleton[key] = entry
        else:
            raise CheckpointError(f"checkpoint {'.'.join(here)} is a {type(value).__name__}; leaves of "
                                  f"{section} must be numpy arrays (use np.asarray; for optimizer configs "
                                  "use dagnet.train.optim.state_to_arrays)")
    return skeleton


def _json_default(obj):
    # Histories often hold numpy scalars (np.float32 losses); store them as plain numbers.
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"a {type(obj).__name__} is not JSON-serialisable")


def _check_json(name: str, value) -> None:
    try:
        json.dumps(value, default=_json_default)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {name} must be JSON-serialisable (numbers, strings, lists, "
                              f"dicts with str keys): {e}; put arrays in params/state/extra instead") from None


def _digest(meta: dict, arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the metadata (canonical JSON, without the digest) and every array's bytes."""
    h = hashlib.sha256()
    body = {k: v for k, v in meta.items() if k != "sha256"}
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    for key in sorted(arrays):
        h.update(key.encode("utf-8") + b"\0")
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    return h.hexdigest()


def _write_atomically(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Temp file in the same directory, flush + fsync, os.replace, fsync the directory."""
    files.write_atomically(path, lambda f: np.savez(f, allow_pickle=False, **arrays),
                               error=CheckpointError, what="checkpoint")


# -- loading ---------------------------------------------------------------------------------

def load_checkpoint(path) -> Checkpoint:
    """Read and verify a checkpoint written by save_checkpoint; CheckpointError if it is unusable."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise CheckpointError(f"load_checkpoint: path = {path!r:.60}; it must be the path of a "
                              f"checkpoint file (str or pathlib.Path)")
    path = os.fsdecode(os.fspath(path))
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a directory; pass the checkpoint file (e.g. {path}/checkpoint.npz)")
    files.check_regular(path, CheckpointError, "checkpoint file")
    try:
        with open(path, "rb") as f:
            head = f.read(len(_ZIP_MAGIC))
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}: the file does not exist; check the path, "
                              "or train first to create one") from None
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror}") from None
    if not head:
        raise CheckpointError(f"checkpoint {path} is empty (a save cut short?); use an earlier "
                              "checkpoint or train again")
    if head != _ZIP_MAGIC:
        raise CheckpointError(f"{path} is not a dagnet checkpoint (not an .npz archive); "
                              "pass a file written by dagnet's save_checkpoint")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return _read(path, npz)
    except CheckpointError:
        raise
    except Exception as e:
        # Whatever the zip, npy or JSON parsers raise on these untrusted bytes (BadZipFile, bad
        # CRC, EOF, bad header, ...) means the same thing to the user: the file is damaged.
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(e).__name__}: {e}); "
                              "use an earlier checkpoint or train again") from e


#: a checkpoint may inflate to this many times its size on disk (dagnet stores its entries
#: uncompressed: 1x; np.savez_compressed float data: ~1.1x) - or to MAX_SMALL_INFLATED bytes,
#: whichever is more; beyond that it is a zip bomb, refused before any entry is inflated
MAX_INFLATION = 50
MAX_SMALL_INFLATED = 256 * 2 ** 20


def _check_sizes(path: str, zf) -> None:
    """Refuse an archive whose entries claim to inflate far beyond its size on disk."""
    declared = sum(info.file_size for info in zf.infolist())
    on_disk = os.path.getsize(path)
    if declared > max(MAX_INFLATION * on_disk, MAX_SMALL_INFLATED):
        raise CheckpointError(f"checkpoint {path} is {on_disk:,} bytes but its entries claim "
                              f"{declared:,} bytes inflated (over {MAX_INFLATION}x): a damaged "
                              f"or malicious archive (a zip bomb); use a checkpoint written by "
                              f"dagnet")


def _read(path: str, npz) -> Checkpoint:
    """Verify the entries of an open NpzFile and rebuild the Checkpoint."""
    _check_sizes(path, npz.zip)
    for info in npz.zip.infolist():
        _check_entry(path, npz.zip, info)
    keys = [info.filename[: -len(".npy")] for info in npz.zip.infolist()]
    if META_KEY not in keys:
        raise CheckpointError(f"{path} is an .npz archive but not a dagnet checkpoint (no {META_KEY} "
                              "entry); pass a file written by dagnet's save_checkpoint")
    meta = json.loads(npz[META_KEY].tobytes().decode("utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a dagnet checkpoint (its {META_KEY} entry is not "
                              "dagnet metadata)")
    if meta.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {meta.get('version')!r}; this "
                              f"dagnet reads version {FORMAT_VERSION}: use the dagnet that wrote it")
    arrays = {key: npz[key] for key in keys if key != META_KEY}
    if _digest(meta, arrays) != meta.get("sha256"):
        raise CheckpointError(f"checkpoint {path} is corrupt: its SHA-256 checksum does not match "
                              "its contents; use an earlier checkpoint or train again")
    for key, info in meta["arrays"].items():
        array = arrays[key]
        if array.dtype.str != info["dtype"] or list(array.shape) != info["shape"]:
            raise CheckpointError(f"checkpoint {path}: entry {key} is {array.dtype.str}{array.shape}, "
                                  f"metadata says {info['dtype']}{tuple(info['shape'])}; the file is corrupt")
    sections = {name: _unflatten(meta["tree"][name], arrays) for name in ARRAY_SECTIONS}
    return Checkpoint(solver=meta["solver"], spec=meta["spec"], **sections)


def _check_entry(path: str, zf, info) -> None:
    """Read only the .npy header of one entry: refuse pickles, check the size adds up."""
    if not info.filename.endswith(".npy"):
        raise CheckpointError(f"{path}: unexpected entry {info.filename!r}; the file is corrupt or not "
                              "a dagnet checkpoint")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise CheckpointError(f"{path}: entry {info.filename!r} has .npy version {version}, "
                                  "which dagnet never writes; the file is corrupt or foreign")
        if dtype.hasobject:
            raise CheckpointError(
                f"{path}: entry {info.filename!r} holds pickled Python objects; dagnet refuses to "
                "load it, because unpickling can execute arbitrary code. Only use checkpoints "
                "written by dagnet's save_checkpoint (numeric arrays only)")
        # Checked before numpy allocates: a damaged header could claim a huge shape.
        if f.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != info.file_size:
            raise CheckpointError(f"{path}: entry {info.filename!r} claims shape {shape} of {dtype} "
                                  "but its size differs; the file is corrupt")


def _unflatten(skeleton, arrays: dict):
    """Inverse of _flatten: replace entry names by their arrays."""
    if isinstance(skeleton, str):
        return arrays[skeleton]
    return {key: _unflatten(value, arrays) for key, value in skeleton.items()}


# -- compatibility -----------------------------------------------------------------------------

def check_compatible(checkpoint: Checkpoint, param_shapes: dict, param_dtypes: dict | None = None) -> None:
    """Raise CheckpointError listing params missing, extra or of another shape than the graph's
    (and, given param_dtypes {name: dtype}, of another dtype than the plan's)."""
    # duck-typed: anything holding a {param: array} dict as .params (fine-tuning's weights)
    if not isinstance(getattr(checkpoint, "params", None), dict) or not isinstance(param_shapes, dict):
        raise CheckpointError(f"check_compatible(checkpoint, param_shapes): give a Checkpoint "
                              f"(load_checkpoint(path)) and a dict {{param: shape}}, got "
                              f"{type(checkpoint).__name__} and {type(param_shapes).__name__}")
    saved = {name: tuple(np.shape(a)) for name, a in checkpoint.params.items()}
    wanted = {name: tuple(shape) for name, shape in param_shapes.items()}
    missing = [name for name in wanted if name not in saved]
    extra = [name for name in saved if name not in wanted]
    differ = [f"{name} checkpoint {saved[name]} vs graph {wanted[name]}"
              for name in wanted if name in saved and saved[name] != wanted[name]]
    problems = []
    if missing:
        problems.append(f"missing from the checkpoint: {', '.join(missing)}")
    if extra:
        problems.append(f"not in the graph: {', '.join(extra)}")
    if differ:
        problems.append(f"shape differs: {'; '.join(differ)}")
    if problems:
        raise CheckpointError("checkpoint does not fit this graph: " + "; ".join(problems)
                              + ". Build the graph from the spec saved with it (checkpoint.spec) "
                              "or train from scratch")
    if param_dtypes:
        dtypes = [f"{name} checkpoint {np.asarray(a).dtype} vs plan {np.dtype(param_dtypes[name])}"
                  for name, a in checkpoint.params.items()
                  if name in param_dtypes and np.asarray(a).dtype != np.dtype(param_dtypes[name])]
        if dtypes:
            more = f"; and {len(dtypes) - 3} more" if len(dtypes) > 3 else ""
            raise CheckpointError(f"checkpoint dtype differs from the plan's: {'; '.join(dtypes[:3])}{more}. "
                                  f"Compile with the checkpoint's dtype (--dtype) to resume it")
