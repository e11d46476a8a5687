"""Attacks through the `dagnet` command's flags and input files (issue 15.4, 15.5, 15.7)."""
from __future__ import annotations

import gzip
import struct

import numpy as np

from tests.reliability.attack.env import RUN_FLAGS
from tests.reliability.attack.harness import EITHER, OK, Misleading, Silent, attack
from tests.reliability.helpers import write_idx

A = "cli"

CYCLE = """name: loop
nodes:
  - {name: x, op: input, shape: [4]}
  - {name: a, op: relu, inputs: [b]}
  - {name: b, op: add, inputs: [a, x]}
"""
SELF_LOOP = """name: selfloop
nodes:
  - {name: x, op: input, shape: [4]}
  - {name: a, op: add, inputs: [a, x]}
"""


def consumers_first_chain(n: int) -> str:
    """A general-form spec listing a chain of n relus from the last to the first."""
    lines = ["name: backwards", "nodes:"]
    for i in range(n, 0, -1):
        lines.append(f"  - {{name: r{i}, op: relu, inputs: [{'r' + str(i - 1) if i > 1 else 'x'}]}}")
    lines.append("  - {name: x, op: input, shape: [4]}")
    return "\n".join(lines) + "\n"


def spec(env, text, name="s.yaml", encoding="utf-8"):
    path = env.tmp / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


for _name, _text in [("cycle", CYCLE), ("self-loop", SELF_LOOP)]:
    for _cmd in (["summary"], ["render", "-o", "OUT"], ["diff", "lenet", "-o", "OUT"],
                 ["gradcheck"], ["export", "-o", "OUT"], ["render", "--plan", "-o", "OUT"]):
        @attack(f"{_name}-{'-'.join(c for c in _cmd if c not in ('-o', 'OUT'))}", A,
                says="cycle")
        def _(env, text=_text, cmd=_cmd):
            path = spec(env, text)
            args = [str(env.tmp / "out.svg") if c == "OUT" else c for c in cmd]
            if args[0] == "diff":
                args = ["diff", str(path), *args[1:]]
            else:
                args = [args[0], str(path), *args[1:]]
            env.cli(*args)


for _n in (600, 3000):
    @attack(f"consumers-first-chain-{_n}-summary", A, expect=OK, seconds=120, heavy=_n > 600)
    def _(env, n=_n):
        env.cli("summary", spec(env, consumers_first_chain(n)))

    @attack(f"consumers-first-chain-{_n}-gradcheck", A, expect=EITHER, seconds=240,
            heavy=_n > 600)
    def _(env, n=_n):
        env.cli("gradcheck", spec(env, consumers_first_chain(n)), "--entries", "1")


@attack("consumers-first-chain-600-render", A, expect=EITHER, seconds=240, heavy=True)
def _(env):  # (graphviz lays out 3000 nodes for minutes: the summary above is the test there)
    env.cli("render", spec(env, consumers_first_chain(600)), "-o", env.tmp / "g.dot")


for _enc in ("latin-1", "utf-16"):
    @attack(f"spec-not-utf8-{_enc}", A, says="UTF-8")
    def _(env, enc=_enc):
        env.cli("summary", spec(env, "name: caf\xe9\ninput: {shape: [4]}\nlayers: [{type: relu}]\n",
                                encoding=enc))


@attack("spec-binary-garbage", A)
def _(env):
    env.cli("summary", spec(env, bytes(range(256)) * 4))


@attack("spec-empty-file", A)
def _(env):
    env.cli("summary", spec(env, ""))


@attack("spec-is-a-folder", A)
def _(env):
    (env.tmp / "d.yaml").mkdir()
    env.cli("summary", env.tmp / "d.yaml")


@attack("spec-unreadable-fifo", A, expect=EITHER, seconds=20)
def _(env):
    import os

    os.mkfifo(env.tmp / "f.yaml")
    env.cli("summary", env.tmp / "f.yaml")


for _flag, _value in [("--entries", "0"), ("--entries", "-1"), ("--batch", "0"), ("--batch", "-3"),
                      ("--seed", "-1"), ("--tol", "-1"), ("--tol", "nan")]:
    @attack(f"gradcheck{_flag}={_value}", A, says=_flag)
    def _(env, flag=_flag, value=_value):
        env.cli("gradcheck", "two_layer_net", flag, value)


for _flag, _value in [("--seed", "-1"), ("--batch-size", "0"), ("--batch-size", "-64"),
                      ("--epochs", "0"), ("--epochs", "-1"), ("--val", "-1"), ("--val", "100000"),
                      ("--lr", "0"), ("--lr", "-1"), ("--lr", "nan"), ("--lr", "inf"),
                      ("--warmup", "-1"), ("--warmup", "99"), ("--lr-decay", "0"),
                      ("--lr-decay", "-0.5"), ("--weight-decay", "-1"), ("--patience", "0"),
                      ("--min-delta", "-1")]:
    @attack(f"train{_flag}={_value}", A, says=_flag)
    def _(env, flag=_flag, value=_value):
        env.train(flag, value, out=env.tmp / "run")


@attack("train-lr-1e6-one-line", A, says="learning rate")
def _(env):
    env.train("--lr", "1e6", "--update-rule", "sgd_momentum", out=env.tmp / "run")


@attack("train-render-batch-negative", A, says="--batch")
def _(env):
    env.cli("render", "lenet", "--plan", "--timings", "--batch", "-1", "-o", env.tmp / "p.svg")


@attack("maps-node-is-a-param", A, says="param")
def _(env):
    env.cli("maps", env.run(), "--node", "conv1.w", "-o", env.tmp / "m.png")


@attack("maps-node-unknown", A, says="conv1")
def _(env):
    env.cli("maps", env.run(), "--node", "conv9", "-o", env.tmp / "m.png")


for _index in ("-1", "1000000000"):
    @attack(f"maps-index={_index}", A, says="--index")
    def _(env, index=_index):
        env.cli("maps", env.run(), "--node", "conv1", "--index", index, "-o", env.tmp / "m.png")


@attack("render-huge-node-name", A, expect=EITHER, seconds=120)
def _(env):
    name = "n" * 1_000_000
    text = (f"name: big\nnodes:\n  - {{name: x, op: input, shape: [4]}}\n"
            f"  - {{name: {name}, op: relu, inputs: [x]}}\n")
    out = env.tmp / "g.svg"
    r = env.cli("render", spec(env, text), "-o", out)
    if not out.exists() or out.stat().st_size == 0:
        raise Silent(f"exit 0 but no picture: {r.out[-100:]}")


@attack("train-huge-node-name-pictures", A, expect=OK, seconds=240)
def _(env):
    name = "n" * 200_000
    text = (f"name: big\ninput: {{shape: [1, 8, 8]}}\nlayers:\n  - {{type: fc, hidden: 4, "
            f"name: {name}}}\n")
    r = env.train(spec=spec(env, text), out=env.tmp / "run")
    del r


@attack("import-empty-file", A, says="empty")
def _(env):
    (env.tmp / "m.onnx").write_bytes(b"")
    env.cli("import", env.tmp / "m.onnx", "-o", env.tmp / "m.yaml")
    if (env.tmp / "m.yaml").exists():
        raise Silent("wrote a spec")


@attack("import-garbage", A)
def _(env):
    (env.tmp / "m.onnx").write_bytes(bytes(range(256)) * 8)
    env.cli("import", env.tmp / "m.onnx", "-o", env.tmp / "m.yaml")


@attack("import-truncated", A)
def _(env):
    env.cli("export", "lenet", "-o", env.tmp / "full.onnx")
    data = (env.tmp / "full.onnx").read_bytes()
    (env.tmp / "m.onnx").write_bytes(data[: len(data) // 3])
    env.cli("import", env.tmp / "m.onnx", "-o", env.tmp / "m.yaml")


@attack("import-missing-file", A, says="not found")
def _(env):
    env.cli("import", env.tmp / "nope.onnx")


for _item in ("x=0,0,0", "x=-1,28,28", "x=a,b", "x", "=1,2", "nope=1,28,28"):
    @attack(f"import-input-shape-{_item}", A, says="--input-shape")
    def _(env, item=_item):
        env.cli("export", "lenet", "-o", env.tmp / "m.onnx")
        env.cli("import", env.tmp / "m.onnx", "--input-shape", item, "-o", env.tmp / "m.yaml")


@attack("train-test-images-of-another-size", A, says="test", seconds=60)
def _(env):
    d = env.tmp / "data"
    d.mkdir()
    rng = np.random.default_rng(0)
    write_idx(d / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (60, 8, 8), dtype=np.uint8))
    write_idx(d / "train-labels-idx1-ubyte.gz", rng.integers(0, 4, 60, dtype=np.uint8))
    write_idx(d / "t10k-images-idx3-ubyte.gz", rng.integers(0, 255, (20, 9, 9), dtype=np.uint8))
    write_idx(d / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 4, 20, dtype=np.uint8))
    r = env.train(out=env.tmp / "run", data=d)
    raise Silent(f"trained: {r.out[-100:]}")


def idx_header(d, dims, name="train-images-idx3-ubyte"):
    header = struct.pack(">BBBB", 0, 0, 0x08, len(dims)) + struct.pack(">" + "I" * len(dims), *dims)
    with gzip.open(d / f"{name}.gz", "wb") as f:
        f.write(header + b"\0" * 64)


for _dims, _says in [((2 ** 32 - 1,) * 3, "bytes"), ((2 ** 31, 2 ** 31, 4), "bytes"),
                     ((60000, 28, 28), "truncated")]:
    @attack(f"idx-header-{'x'.join(map(str, _dims))}", A, says=_says)
    def _(env, dims=_dims):
        from dagnet.data.idx import read_idx

        d = env.tmp
        idx_header(d, dims)
        try:
            read_idx(d / "train-images-idx3-ubyte.gz")
        except Exception as e:
            if "-" in str(e).split("bytes")[0][-25:]:
                raise Misleading(f"a negative size: {e}") from None
            raise


@attack("data-unknown-kind", A, says="unknown dataset")
def _(env):
    env.cli("train", env.net, "--data", "imagenet", "--out", env.tmp / "run")


@attack("cifar-missing", A, says="CIFAR")
def _(env):
    env.cli("train", "lenet", "--data", f"cifar10:{env.tmp}", "--out", env.tmp / "run")


@attack("weights-garbage", A, says="checkpoint")
def _(env):
    (env.tmp / "w.npz").write_bytes(b"junk")
    env.train("--weights", env.tmp / "w.npz", out=env.tmp / "run")


@attack("weights-another-graph", A, says="does not fit")
def _(env):
    env.train("--weights", env.run() / "checkpoint.npz", out=env.tmp / "run2",
              spec=env.spec_file(env.tmp / "big.yaml", extra="  - {type: fc, hidden: 7}\n"))


@attack("train-unknown-model", A, says="unknown model")
def _(env):
    env.train(spec="lenett", out=env.tmp / "run")


@attack("diff-missing-file", A)
def _(env):
    env.cli("diff", "lenet", env.tmp / "nope.yaml", "-o", env.tmp / "d.svg")


@attack("plot-not-a-run", A, says="history.json")
def _(env):
    env.cli("plot", env.tmp, "-o", env.tmp / "c.png")


@attack("evaluate-json-ok", A, expect=OK)
def _(env):
    r = env.cli("evaluate", env.run(), "--json")
    if '"test"' not in r.out:
        raise Silent(r.out[-200:])


@attack("train-good-run", A, expect=OK)
def _(env):
    env.train(out=env.tmp / "run")
    RUN_FLAGS  # noqa: B018 - the flags the run used
