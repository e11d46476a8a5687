"""Attacks on resource bounds (issue 15.2): small files that expand to gigabytes - a YAML alias
bomb, a zip bomb in a checkpoint, ONNX and IDX headers that claim huge sizes, a gzip bomb -
must fail fast and small, with a short message. Each runs in a child process under a memory
cap, and its peak memory and time are checked."""
from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np

from tests.reliability.attack.harness import EITHER, Misleading, Silent, attack
from tests.reliability.helpers import ROOT

A = "bounds"

#: what a bounded failure may cost
MAX_RSS_MIB = 400
MAX_SECONDS = 20.0
#: the child's address-space cap: a blow-up becomes a MemoryError there, not a dead machine
CAP_GIB = 3


def bounded(code: str, cwd=None):
    """Run `code` in a child Python under the memory cap; (returncode, stdout, stderr, peak
    RSS MiB, seconds). Silent if it took too long or too much memory."""
    prelude = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({CAP_GIB} * 2 ** 30, resource.RLIM_INFINITY))
        import atexit
        def _peak_mib():  # this process's own high-water mark: ru_maxrss would carry over the
            # parent's across exec (Linux keeps it), so a child of a big pytest worker looked big
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) // 1024
        atexit.register(lambda: print("PEAK", _peak_mib(), file=sys.stderr))
    """)
    start = time.perf_counter()
    try:
        r = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=cwd or ROOT,
                           capture_output=True, text=True, timeout=120,
                           env={"DAGNET_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                                "PATH": "/usr/bin:/bin"})
    except subprocess.TimeoutExpired:
        raise Silent("ran over 120 s") from None
    seconds = time.perf_counter() - start
    lines = r.stderr.strip().splitlines()
    peak = int(lines[-1].split()[1]) if lines and lines[-1].startswith("PEAK") else -1
    err = "\n".join(lines[:-1] if peak >= 0 else lines)
    if "MemoryError" in err:
        raise Silent(f"MemoryError under a {CAP_GIB} GiB cap: {err[-200:]}")
    if peak > MAX_RSS_MIB or seconds > MAX_SECONDS:
        raise Silent(f"cost {peak} MiB and {seconds:.1f} s")
    return r.returncode, r.stdout, err, peak, seconds


def cli_bounded(*argv, says=""):
    """`dagnet ARGV` in a bounded child: must end with a clean one-line error."""
    code, out, err, peak, seconds = bounded(
        f"import sys\nfrom dagnet.cli.main import main\nsys.exit(main({list(map(str, argv))!r}))")
    lines = [line for line in err.splitlines() if line.strip()]
    if "Traceback" in err or "internal error" in err or code not in (0, 2) or len(lines) > 1:
        raise RuntimeError(f"exit {code}: {err[-300:]}")
    if code == 0:
        raise Silent(f"exit 0: {out[-200:]}")
    if len(lines[0]) > 1000:
        raise Misleading(f"a {len(lines[0])}-character error line")
    if says and says not in lines[0]:
        raise Misleading(f"lacks {says!r}: {lines[0][:300]}")
    from tests.reliability.attack.harness import CliFailed, CliRun

    raise CliFailed(CliRun(code, out, lines[0]))


def laughs(levels: int, width: int = 9) -> str:
    """A YAML alias bomb: width ** levels leaves from a few hundred bytes."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines)


for _levels in (9, 8, 6):
    # 9**6 values stay under the cap: then the spec's other mistake is the error
    @attack(f"yaml-billion-laughs-9^{_levels}-summary", A, says="alias" if _levels > 6 else "")
    def _(env, levels=_levels):
        text = (f"name: bomb\ninput: {{shape: [4]}}\nlayers:\n  - {{type: relu}}\n"
                f"junk:\n  {laughs(levels).replace(chr(10), chr(10) + '  ')}\n")
        path = env.tmp / "bomb.yaml"
        path.write_text(text)
        cli_bounded("summary", path, says="alias" if levels > 6 else "")

    @attack(f"yaml-laughs-in-attrs-9^{_levels}", A, says="alias" if _levels > 6 else "")
    def _(env, levels=_levels):
        anchors = laughs(levels).replace("\n", "\n  ")
        text = (f"name: bomb\nnodes:\n  - {{name: x, op: input, shape: [4]}}\n"
                f"  - name: r\n    op: relu\n    inputs: [x]\n    alpha: &top\n      - 1\n"
                f"bombs:\n  {anchors}\n")
        path = env.tmp / "bomb.yaml"
        path.write_text(text)
        cli_bounded("summary", path, says="alias" if levels > 6 else "")


@attack("yaml-bomb-in-op-attr-value", A)
def _(env):
    text = "\n".join([laughs(7), "name: bomb", "input: {shape: [4]}",
                      "layers:", "  - {type: dropout, p: *a6}"])
    path = env.tmp / "bomb.yaml"
    path.write_text(text)
    cli_bounded("summary", path)


@attack("yaml-long-error-value", A, heavy=True)
def _(env):
    path = env.tmp / "long.yaml"
    path.write_text(f"name: x\ninput: {{shape: [4]}}\nlayers:\n  - {{type: {'r' * 5_000_000}}}\n")
    cli_bounded("summary", path)


def write_zip_bomb(path, gib: float = 1.5):
    """A checkpoint whose one params entry inflates to `gib` GiB of zeros (deflate packs them
    about 1000:1) and whose metadata is dagnet's own, but for the checksum."""
    import io

    n = int(gib * 2 ** 30)
    meta = {"format": "dagnet-checkpoint", "version": 1,
            "tree": {"params": {"w": "params/0"}, "state": {}, "optimizer": {}, "extra": {}},
            "arrays": {"params/0": {"dtype": "|u1", "shape": [n]}}, "solver": {}, "spec": {},
            "sha256": "0" * 64}
    buf = io.BytesIO()
    np.save(buf, np.frombuffer(json.dumps(meta).encode(), np.uint8))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (n,)})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("params/0.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            block = bytes(2 ** 24)
            for _ in range(n // len(block)):
                f.write(block)
        zf.writestr("__dagnet__.npy", buf.getvalue())


@attack("checkpoint-zip-bomb-evaluate", A, says="checkpoint", seconds=300, heavy=True)
def _(env):
    run = env.tmp / "run"
    run.mkdir()
    write_zip_bomb(run / "checkpoint.npz")
    cli_bounded("evaluate", run, says="checkpoint")


@attack("checkpoint-entry-claims-huge-shape", A, seconds=120)
def _(env):
    path = env.tmp / "c.npz"
    header = {"descr": "<f4", "fortran_order": False, "shape": (2 ** 40,)}
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("params/0.npy", buf.getvalue() + b"\0" * 64)
        zf.writestr("__dagnet__.npy", b"")
    code = f"from dagnet.train.checkpoint import load_checkpoint\nload_checkpoint({str(path)!r})"
    rc, out, err, peak, seconds = bounded(code)
    if "CheckpointError" not in err:
        raise RuntimeError(err[-300:])
    from dagnet.errors import CheckpointError

    raise CheckpointError(err.strip().splitlines()[-1])


def idx_bytes(dims, payload=b"\0" * 64):
    return struct.pack(">BBBB", 0, 0, 0x08, len(dims)) + struct.pack(">" + "I" * len(dims), *dims) + payload


@attack("idx-gzip-bomb", A, says="bytes", seconds=120, heavy=True)
def _(env):
    path = env.tmp / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(idx_bytes((10, 8, 8), b""))
        block = bytes(2 ** 24)
        for _ in range(64):  # 1 GiB of zeros after a header that claims 640 bytes
            f.write(block)
    code = f"from dagnet.data.idx import read_idx\nread_idx({str(path)!r})"
    rc, out, err, peak, seconds = bounded(code)
    if "DatasetError" not in err:
        raise RuntimeError(err[-300:])
    from dagnet.errors import DatasetError

    raise DatasetError(err.strip().splitlines()[-1])


@attack("idx-header-overflow-number", A, says="bytes")
def _(env):
    path = env.tmp / "x-idx3-ubyte"
    path.write_bytes(idx_bytes((2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1)))
    from dagnet.data.idx import read_idx

    try:
        read_idx(path)
    except Exception as e:
        want = f"{(2 ** 32 - 1) ** 3 + 16:,}"
        if want not in str(e) and str((2 ** 32 - 1) ** 3 + 16) not in str(e):
            raise Misleading(f"the size is not {want}: {e}") from None
        raise


def onnx_model(env, build):
    """An ONNX model made by build(helper, numpy_helper, TensorProto) -> ModelProto, saved."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = build(helper, numpy_helper, TensorProto)
    path = env.tmp / "m.onnx"
    onnx.save(model, str(path)) if not isinstance(model, bytes) else path.write_bytes(model)
    return path


def relu_model(helper, extra_nodes=(), initializers=(), inputs=None):
    from onnx import TensorProto

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="r"), *extra_nodes]
    graph = helper.make_graph(nodes, "g", inputs or [x], [y], initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@attack("onnx-two-nodes-one-value", A, says="y")
def _(env):
    path = onnx_model(env, lambda h, nh, T: relu_model(h, [h.make_node("Sigmoid", ["x"], ["y"],
                                                                        name="s")]))
    env.cli("import", path, "-o", env.tmp / "m.yaml")


@attack("onnx-no-nodes", A, says="no nodes")
def _(env):
    def build(h, nh, T):
        x = h.make_tensor_value_info("x", T.FLOAT, ["N", 4])
        return h.make_model(h.make_graph([], "g", [x], [x]), opset_imports=[h.make_opsetid("", 17)])

    env.cli("import", onnx_model(env, build), "-o", env.tmp / "m.yaml")


@attack("onnx-huge-initializer-dims", A, seconds=120)
def _(env):
    def build(h, nh, T):
        w = T(name="w", data_type=T.FLOAT, dims=[2 ** 20, 2 ** 20], raw_data=b"\0" * 16)
        m = h.make_node("MatMul", ["x", "w"], ["y"], name="mm")
        x = h.make_tensor_value_info("x", T.FLOAT, ["N", 2 ** 20])
        y = h.make_tensor_value_info("y", T.FLOAT, ["N", 2 ** 20])
        return h.make_model(h.make_graph([m], "g", [x], [y], initializer=[w]),
                            opset_imports=[h.make_opsetid("", 17)])

    cli_bounded("import", onnx_model(env, build), "-o", env.tmp / "m.yaml")


@attack("onnx-string-initializer", A)
def _(env):
    def build(h, nh, T):
        w = h.make_tensor("w", T.STRING, [4, 4], vals=[b"a"] * 16)
        m = h.make_node("MatMul", ["x", "w"], ["y"], name="mm")
        x = h.make_tensor_value_info("x", T.FLOAT, ["N", 4])
        y = h.make_tensor_value_info("y", T.FLOAT, ["N", 4])
        return h.make_model(h.make_graph([m], "g", [x], [y], initializer=[w]),
                            opset_imports=[h.make_opsetid("", 17)])

    env.cli("import", onnx_model(env, build), "-o", env.tmp / "m.yaml")


@attack("onnx-external-data-outside", A, says="external")
def _(env):
    secret = env.tmp.parent / "secret.bin"
    secret.write_bytes(np.ones(16, np.float32).tobytes())

    def build(h, nh, T):
        w = T(name="w", data_type=T.FLOAT, dims=[4, 4])
        w.data_location = T.EXTERNAL
        for k, v in (("location", "../secret.bin"), ("offset", "0"), ("length", "64")):
            e = w.external_data.add()
            e.key, e.value = k, v
        m = h.make_node("MatMul", ["x", "w"], ["y"], name="mm")
        x = h.make_tensor_value_info("x", T.FLOAT, ["N", 4])
        y = h.make_tensor_value_info("y", T.FLOAT, ["N", 4])
        return h.make_model(h.make_graph([m], "g", [x], [y], initializer=[w]),
                            opset_imports=[h.make_opsetid("", 17)])

    env.cli("import", onnx_model(env, build), "-o", env.tmp / "m.yaml")


@attack("onnx-input-shape-huge", A, seconds=120)
def _(env):
    env.cli("export", "two_layer_net", "-o", env.tmp / "m.onnx")
    cli_bounded("import", env.tmp / "m.onnx", "--input-shape", "x=100000,100000,100000",
                "-o", env.tmp / "m.yaml")


@attack("spec-json-deep-nesting", A)
def _(env):
    path = env.tmp / "deep.json"
    path.write_text("[" * 200000 + "]" * 200000)
    env.cli("summary", path)


@attack("spec-huge-chain-compiles", A, expect=EITHER, seconds=120, heavy=True)
def _(env):
    layers = [{"type": "relu"}] * 20000
    path = env.tmp / "long.json"
    path.write_text(json.dumps({"name": "long", "input": {"shape": [4]}, "layers": layers}))
    env.cli("summary", path)
