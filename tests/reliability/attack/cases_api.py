"""Attacks through the Python API (issue 15.6): every public function given what a careless
caller passes - wrong types, out-of-range numbers, wrong shapes - must raise a DagnetError or
do the right thing."""
from __future__ import annotations

import numpy as np

import dagnet
from tests.reliability.attack.harness import EITHER, OK, Silent, attack
from tests.reliability.helpers import tiny_data, tiny_mlp

A = "api"
_PLANS = {}


def plan(mode="train", dtype="float32"):
    key = (mode, dtype)
    if key not in _PLANS:
        _PLANS[key] = dagnet.compile(tiny_mlp(), seed=0, mode=mode, dtype=dtype)
    return _PLANS[key]


def X(n=4):
    return np.random.default_rng(0).standard_normal((n, 6)).astype(np.float32)


JUNK = {"neg": -1, "zero": 0, "float": 2.5, "str": "4", "none": None, "bool": True, "nan": float("nan"),
        "big": 10 ** 30, "list": [4], "array": np.array([4])}

# -- predict -------------------------------------------------------------------------------------
for _k, _v in JUNK.items():
    # a batch larger than the data is fine; a 1-element integer array too (numpy's int)
    @attack(f"predict-batch_size={_k}", A, expect=EITHER if _k in ("array", "big") else "error",
            says="batch_size")
    def _(env, v=_v):
        out = plan("eval").predict(X(), batch_size=v)
        if out.shape != (4, 3):
            raise Silent(f"predict returned shape {out.shape}")


for _name, _x in {"1d": np.zeros(6, np.float32), "wrong-features": np.zeros((4, 5), np.float32),
                  "ints": np.zeros((4, 6), np.int64), "ragged": [[1.0], [1.0, 2.0]], "none": None,
                  "string": "images", "empty": np.zeros((0, 6), np.float32),
                  "nan": np.full((4, 6), np.nan, np.float32), "object": np.array([object()] * 6),
                  "scalar": 3.0, "dict-unknown": {"z": np.zeros((4, 6), np.float32)}}.items():
    @attack(f"predict-x-{_name}", A, expect=EITHER if _name in ("empty", "nan") else "error")
    def _(env, x=_x, name=_name):
        out = plan("eval").predict(x)
        if name == "empty" and out.shape != (0, 3):
            raise Silent(f"empty batch gave shape {out.shape}")


# -- forward / backward / loss_and_grads ---------------------------------------------------------
@attack("backward-wrong-grad-shape", A, says="shape")
def _(env):
    p = plan()
    p.forward(p.feeds_for(X(), np.zeros(4, int)))
    p.backward({"scores": np.ones((4, 7))})


@attack("backward-grad-not-array", A)
def _(env):
    p = plan()
    p.forward(p.feeds_for(X(), np.zeros(4, int)))
    p.backward({"scores": "ones"})


@attack("backward-grad-unknown-output", A)
def _(env):
    p = plan()
    p.forward(p.feeds_for(X(), np.zeros(4, int)))
    p.backward({"nope": np.ones((4, 3))})


@attack("backward-douts-not-dict", A)
def _(env):
    p = plan()
    p.forward(p.feeds_for(X(), np.zeros(4, int)))
    p.backward([np.ones((4, 3))])


@attack("backward-grad-wrong-batch", A, says="shape")
def _(env):
    p = plan()
    p.forward(p.feeds_for(X(), np.zeros(4, int)))
    p.backward({"scores": np.ones((5, 3))})


@attack("backward-before-forward", A)
def _(env):
    dagnet.compile(tiny_mlp(), seed=0).backward()


@attack("forward-mode-bogus", A)
def _(env):
    plan().forward(plan().feeds_for(X(), np.zeros(4, int)), mode="test")


@attack("forward-feeds-not-dict", A)
def _(env):
    plan().forward([X()])


@attack("forward-outputs-not-names", A)
def _(env):
    plan().forward(plan().feeds_for(X(), np.zeros(4, int)), outputs=[3])


@attack("forward-outputs-str", A, expect=EITHER)
def _(env):
    plan().forward(plan().feeds_for(X(), np.zeros(4, int)), outputs="scores")


for _k, _v in {"str": "0.1", "neg": -1.0, "nan": float("nan"), "list": [0.1]}.items():
    @attack(f"loss_and_grads-reg={_k}", A, says="reg")
    def _(env, v=_v):
        plan().loss_and_grads(X(), np.zeros(4, int), reg=v)


@attack("peak_bytes-batch-negative", A, says="batch_size")
def _(env):
    plan().peak_bytes(-5)


@attack("profile-repeats-zero", A, says="repeats")
def _(env):
    plan().profile(X(), np.zeros(4, int), repeats=0)


# -- compile -------------------------------------------------------------------------------------
for _name, _kw in {"graph-none": {"graph": None}, "graph-str": {"graph": "lenet"},
                   "mode-bogus": {"mode": "test"}, "seed-neg": {"seed": -1},
                   "seed-str": {"seed": "0"}, "dtype-int": {"dtype": "int32"},
                   "params-list": {"params": [1]}, "params-junk": {"params": {"fc1.w": "x"}},
                   "state-junk": {"state": {"bn": 3}}, "outputs-str": {"outputs": "scores"},
                   "fuse-str": {"fuse": "yes"}, "check-int": {"check": 2}}.items():
    @attack(f"compile-{_name}", A, expect=EITHER if _name == "outputs-str" else "error")
    def _(env, kw=_kw):
        kw = dict(kw)
        g = kw.pop("graph", tiny_mlp())
        dagnet.compile(g, **kw)


# -- checkpoints ---------------------------------------------------------------------------------
for _name, _path in {"none": None, "int": 123, "empty": "", "bytes-garbage": b"\xff\xfe/x",
                     "list": ["a.npz"]}.items():
    @attack(f"load_checkpoint-{_name}", A)
    def _(env, path=_path):
        from dagnet.train.checkpoint import load_checkpoint

        load_checkpoint(path)


@attack("save_checkpoint-params-none", A)
def _(env):
    from dagnet.train.checkpoint import save_checkpoint

    save_checkpoint(env.tmp / "c.npz", params=None, state={}, optimizer={}, solver={}, spec={})


@attack("save_checkpoint-path-none", A)
def _(env):
    from dagnet.train.checkpoint import save_checkpoint

    save_checkpoint(None, params={}, state={}, optimizer={}, solver={}, spec={})


@attack("save_checkpoint-to-folder", A)
def _(env):
    from dagnet.train.checkpoint import save_checkpoint

    save_checkpoint(env.tmp, params={}, state={}, optimizer={}, solver={}, spec={})


@attack("check_compatible-junk", A)
def _(env):
    from dagnet.train.checkpoint import check_compatible

    check_compatible(None, {"w": (3,)})


# -- onnx ----------------------------------------------------------------------------------------
for _name, _data in {"garbage": bytes(range(256)) * 4, "empty": b"", "text": b"hello onnx"}.items():
    @attack(f"onnx.load-{_name}", A)
    def _(env, data=_data):
        from dagnet import onnx

        path = env.tmp / "m.onnx"
        path.write_bytes(data)
        onnx.load(path)


@attack("onnx.load-none", A)
def _(env):
    from dagnet import onnx

    onnx.load(None)


@attack("onnx.load-missing", A, says="not found")
def _(env):
    from dagnet import onnx

    onnx.load(env.tmp / "nope.onnx")


@attack("onnx.load-input-shapes-junk", A, says="input_shapes")
def _(env):
    from dagnet import onnx

    onnx.export(plan("eval"), env.tmp / "m.onnx")
    onnx.load(env.tmp / "m.onnx", input_shapes={"x": "big"})


@attack("onnx.export-to-folder", A)
def _(env):
    from dagnet import onnx

    onnx.export(plan("eval"), env.tmp)


@attack("onnx.export-graph-not-plan", A)
def _(env):
    from dagnet import onnx

    onnx.export(tiny_mlp(), env.tmp / "m.onnx")


# -- gradients -----------------------------------------------------------------------------------
@attack("numerical_gradient-one-arg-f", A, says="f")
def _(env):
    from dagnet.gradcheck import numerical_gradient

    numerical_gradient(lambda x: np.sum(x ** 2), np.ones(3))


@attack("numerical_gradient-x-list", A)
def _(env):
    from dagnet.gradcheck import numerical_gradient

    numerical_gradient(lambda: 1.0, [1.0, 2.0])


@attack("numerical_gradient-h-zero", A, says="h")
def _(env):
    from dagnet.gradcheck import numerical_gradient

    x = np.ones(3)
    numerical_gradient(lambda: np.sum(x), x, h=0)


@attack("numerical_gradient-int-x", A)
def _(env):
    from dagnet.gradcheck import numerical_gradient

    x = np.ones(3, dtype=np.int64)
    numerical_gradient(lambda: np.sum(x), x)


@attack("numerical_gradient-f-not-callable", A)
def _(env):
    from dagnet.gradcheck import numerical_gradient

    numerical_gradient(3.0, np.ones(3))


@attack("numerical_gradient-strided-view", A, expect=EITHER)
def _(env):
    from dagnet.gradcheck import numerical_gradient

    x = np.ones((4, 4))[:, ::2]  # a view reshape(-1) can still address: then it must be right
    g = numerical_gradient(lambda: np.sum(x), x)
    if not np.allclose(g, 1.0):
        raise Silent(f"gradient {g}")


@attack("rel_error-shapes-differ", A)
def _(env):
    from dagnet.gradcheck import rel_error

    rel_error(np.ones(3), np.ones(4))


for _k, _v in {"zero": 0, "neg": -2, "float": 2.5}.items():
    @attack(f"gradcheck_plan-max_entries={_k}", A, says="max_entries")
    def _(env, v=_v):
        from dagnet.compiler.feeds import random_feeds
        from dagnet.gradcheck import gradcheck_plan

        p = dagnet.compile(tiny_mlp(), dtype="float64", seed=0)
        gradcheck_plan(p, random_feeds(p, batch=2), max_entries=v)


# -- solver --------------------------------------------------------------------------------------
SOLVER_JUNK = {
    "momentum=5": {"update_rule": "sgd_momentum", "optim_config": {"momentum": 5.0}},
    "beta1=2": {"update_rule": "adam", "optim_config": {"beta1": 2.0}},
    "num_epochs=-1": {"num_epochs": -1}, "optim_config=fast": {"optim_config": "fast"},
    "batch_size=2.5": {"batch_size": 2.5}, "batch_size=0": {"batch_size": 0},
    "lr=-1": {"optim_config": {"learning_rate": -1}}, "lr=nan": {"optim_config": {"lr": float("nan")}},
    "lr_decay=0": {"lr_decay": 0}, "lr_schedule=junk": {"lr_schedule": "fast"},
    "lr_schedule=dict-junk": {"lr_schedule": {"name": "cosine", "total": -3}},
    "weight_decay=-1": {"weight_decay": -1}, "seed=-1": {"seed": -1}, "seed=str": {"seed": "0"},
    "verbose=str": {"verbose": "yes"}, "checkpoint=int": {"checkpoint": 3},
    "on_epoch=3": {"on_epoch": 3}, "patience=0": {"patience": 0}, "monitor=x": {"monitor": "acc"},
    "min_delta=-1": {"min_delta": -1}, "update_rule=x": {"update_rule": "adamx"},
    "num_train_samples=0": {"num_train_samples": 0}, "print_every=-1": {"print_every": -1},
    "resume-no-checkpoint": {"resume": True}, "allow_changes=str": {"allow_changes": "lr"},
    "run_info=set": {"run_info": {"a": {1, 2}}},
}
for _name, _kw in SOLVER_JUNK.items():
    @attack(f"Solver-{_name}", A)
    def _(env, kw=_kw):
        from dagnet.train.solver import Solver

        Solver(plan(), tiny_data(8, (6,)), **{"verbose": False, "num_epochs": 1, "batch_size": 4, **kw})


DATA_JUNK = {"none": None, "list": [1, 2], "X-none": {"X_train": None, "y_train": np.zeros(4, int)},
             "y-2d": {"X_train": X(), "y_train": np.zeros((4, 1), int)},
             "y-float": {"X_train": X(), "y_train": np.zeros(4)},
             "y-neg": {"X_train": X(), "y_train": -np.ones(4, int)},
             "X-strings": {"X_train": np.array([["a"] * 6] * 4), "y_train": np.zeros(4, int)}}
for _name, _data in DATA_JUNK.items():
    @attack(f"Solver-data-{_name}", A)
    def _(env, data=_data):
        from dagnet.train.solver import Solver

        Solver(plan(), data, verbose=False, num_epochs=1, batch_size=4).train()


for _k, _v in {"zero": 0, "neg": -1, "float": 1.5, "str": "8"}.items():
    @attack(f"evaluate_arrays-batch_size={_k}", A, says="batch_size")
    def _(env, v=_v):
        from dagnet.train.evaluate import evaluate_arrays

        evaluate_arrays(plan("eval"), X(), np.zeros(4, int), batch_size=v)


# -- graphs and specs ----------------------------------------------------------------------------
for _name, _spec in {"none": None, "int": 3, "bytes": b"name: x", "list": [1], "set": {1}}.items():
    @attack(f"graph_from_spec-{_name}", A)
    def _(env, spec=_spec):
        from dagnet.spec import graph_from_spec

        graph_from_spec(spec)


BUILDER_JUNK = {
    "input-shape-str": lambda g: g.input("x", "784"),
    "input-shape-neg": lambda g: g.input("x", (-1, 4)),
    "input-name-int": lambda g: g.input(7, (4,)),
    "input-dtype-junk": lambda g: g.input("x", (4,), dtype="float128x"),
    "affine-units-0": lambda g: g.affine(g.input("x", (4,)), 0),
    "affine-input-missing": lambda g: g.affine("nope", 3),
    "conv-stride-0": lambda g: g.conv2d(g.input("x", (1, 8, 8)), 2, 3, stride=0),
    "conv-on-vector": lambda g: g.conv2d(g.input("x", (8,)), 2, 3),
    "pool-size-str": lambda g: g.max_pool2d(g.input("x", (1, 8, 8)), "2"),
    "dropout-p-1": lambda g: g.dropout(g.input("x", (4,)), p=1.0),
    "reshape-bad": lambda g: g.reshape(g.input("x", (4,)), (3, -1)),
    "concat-axis": lambda g: g.concat(g.input("x", (4,)), g.input("z", (4,)), axis=5),
    "param-shape-none": lambda g: g.param("w", None),
    "add-node-inputs-int": lambda g: g.add_node("relu", 3),
    "node-missing": lambda g: g.node("nope"),
    "remove-missing": lambda g: g.remove_node("nope"),
    "batchnorm-eps-neg": lambda g: g.batchnorm(g.input("x", (4,)), eps=-1),
    "op-unknown-attr": lambda g: g.op("relu", g.input("x", (4,)), alpha=3),
}
for _name, _fn in BUILDER_JUNK.items():
    @attack(f"builder-{_name}", A, expect=EITHER if _name == "input-name-int" else "error")
    def _(env, fn=_fn):
        from dagnet import Graph

        fn(Graph("g"))


@attack("summary_table-not-graph", A)
def _(env):
    from dagnet.summary import summary_table

    summary_table("lenet")


@attack("make_schedule-junk", A)
def _(env):
    from dagnet.train.schedules import make_schedule

    make_schedule({"name": "step", "lr_decay": "0.5"}, 0.1)


for _name, _args in {"rule-junk": ("sgdx", np.ones(3), np.ones(3)),
                     "dw-shape": ("sgd", np.ones(3), np.ones(4)),
                     "w-list": ("sgd", [1.0, 2.0], np.ones(2)),
                     "config-str": ("adam", np.ones(3), np.ones(3), "fast")}.items():
    @attack(f"update-rule-{_name}", A)
    def _(env, args=_args):
        from dagnet.train import optim

        rule = optim.get_update_rule(args[0])
        rule(*args[1:])


@attack("read_idx-none", A)
def _(env):
    from dagnet.data.idx import read_idx

    read_idx(None)


@attack("read_idx-folder", A)
def _(env):
    from dagnet.data.idx import read_idx

    read_idx(env.tmp)


@attack("load_cifar10-none", A)
def _(env):
    from dagnet.data.cifar import load_cifar10

    load_cifar10(None)


@attack("split_train_val-too-many", A)
def _(env):
    from dagnet.data.preprocess import split_train_val

    split_train_val(X(), np.zeros(4, int), 10, 0)


@attack("render_graph-to-folder", A)
def _(env):
    from dagnet import viz

    viz.render_graph(tiny_mlp(), env.tmp)


@attack("predict-good", A, expect=OK)
def _(env):
    out = plan("eval").predict(X(10), batch_size=3)
    if out.shape != (10, 3):
        raise Silent(f"shape {out.shape}")
