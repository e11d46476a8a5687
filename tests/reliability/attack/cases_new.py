"""Attacks on what main added since the first pass: predict, report, show-batch, evaluate
--top-k/--ensemble, tune, render --html, the data-parallel flags, dagnet.save/load and
Model.predict, Augment, TensorBoard event files (the same rules: a clean error or success)."""
from __future__ import annotations

import os

import numpy as np

from tests.reliability.attack.harness import EITHER, OK, Silent, attack

C, P = "cli", "api"


def images(env, array, name="x.npy"):
    path = env.tmp / name
    np.save(path, array)
    return path


# -- predict -------------------------------------------------------------------------------------
for _name, _array in [("wrong-size", np.zeros((2, 9, 9), np.uint8)),
                      ("one-image-2d", np.zeros((8, 8), np.uint8)),
                      ("strings", np.array(["a", "b"])),
                      ("nan-floats", np.full((2, 8, 8), np.nan, np.float32)),
                      ("out-of-range-floats", np.full((2, 8, 8), 300.0, np.float32)),
                      ("empty", np.zeros((0, 8, 8), np.uint8)),
                      ("5d", np.zeros((1, 1, 1, 8, 8), np.uint8))]:
    @attack(f"predict-{_name}", C, expect=EITHER)
    def _(env, array=_array):
        env.cli("predict", env.run(), images(env, array))


@attack("predict-not-npy", C)
def _(env):
    path = env.tmp / "x.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    env.cli("predict", env.run(), path)


@attack("predict-pickled-npy", C)
def _(env):
    path = env.tmp / "x.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    env.cli("predict", env.run(), path)


@attack("predict-output-is-folder", C)
def _(env):
    env.cli("predict", env.run(), images(env, np.zeros((2, 8, 8), np.uint8)), "-o", env.tmp)


@attack("predict-top-0", C)
def _(env):
    env.cli("predict", env.run(), images(env, np.zeros((2, 8, 8), np.uint8)), "--top", "0")


@attack("predict-good", C, expect=OK)
def _(env):
    r = env.cli("predict", env.run(), images(env, np.zeros((3, 8, 8), np.uint8)))
    if len([line for line in r.out.splitlines() if line.strip()]) < 3:
        raise Silent(f"predict printed {r.out!r}")


# -- report, show-batch, evaluate ----------------------------------------------------------------
@attack("report-not-a-run", C)
def _(env):
    env.cli("report", env.tmp)


@attack("report-output-not-html", C)
def _(env):
    env.cli("report", env.run(), "-o", env.tmp / "r.svg")


@attack("report-batch-0", C, expect=EITHER)
def _(env):
    env.cli("report", env.run(), "--timings", "--batch", "0", "--no-eval")


@attack("report-history-mistyped", C, expect=EITHER)
def _(env):
    run = env.run()
    (run / "history.json").write_text('{"loss_history": "x"}')
    env.cli("report", run, "--no-eval", "-o", env.tmp / "r.html")


for _flag, _value in [("--count", "0"), ("--count", "-3"), ("--draws", "-1"), ("--val", "-5"),
                      ("--seed", "-1"), ("--crop", "-2"), ("--erase", "2"), ("--cutout", "-1")]:
    @attack(f"show-batch{_flag}={_value}", C, expect=EITHER)
    def _(env, flag=_flag, value=_value):
        env.cli("show-batch", "--data", f"mnist:{env.data}", "--val", "20", flag, value,
                "-o", env.tmp / "b.png")


@attack("show-batch-output-is-folder", C)
def _(env):
    env.cli("show-batch", "--data", f"mnist:{env.data}", "--val", "20", "--flip", "-o", env.tmp)


@attack("evaluate-top-k-over-classes", C, says="--top-k")
def _(env):
    env.cli("evaluate", env.run(), "--top-k", "99")


@attack("evaluate-ensemble-other-data", C, expect=EITHER)
def _(env):
    other = env.tmp / "other"
    env.train(out=other, data=env.data)
    env.cli("evaluate", env.run(), other, "--ensemble")


@attack("evaluate-ensemble-missing-member", C)
def _(env):
    env.cli("evaluate", env.run(), env.tmp / "nope", "--ensemble")


# -- tune ----------------------------------------------------------------------------------------
for _name, _text in [("empty", ""), ("list", "- a\n- b\n"), ("alias-bomb", "a: &a [1, 1]\nb: &b [*a, *a]\n" * 1),
                     ("unknown", "momentum: {low: 0.5, high: 0.9}\n"),
                     ("bad-range", "lr: {low: 0.1, high: 0.01}\n"),
                     ("not-utf8", "lr: {low: 0.001, high: 0.1, log: true} # caf\xe9\n")]:
    @attack(f"tune-space-{_name}", C)
    def _(env, text=_text):
        space = env.tmp / "space.yaml"
        space.write_bytes(text.encode("latin-1"))
        env.cli("tune", env.net, "--space", space, "--data", f"mnist:{env.data}", "--val", "20",
                "--trials", "1", "--epochs", "1", "--out", env.tmp / "t")


for _flag, _value in [("--trials", "0"), ("--epochs", "0"), ("--heartbeat", "-1")]:
    @attack(f"tune{_flag}={_value}", C, expect=EITHER)
    def _(env, flag=_flag, value=_value):
        space = env.tmp / "space.yaml"
        space.write_text("lr: {low: 1.0e-3, high: 1.0e-1, log: true}\n")
        env.cli("tune", env.net, "--space", space, "--data", f"mnist:{env.data}", "--val", "20",
                "--out", env.tmp / "t", flag, value)


@attack("tune-storage-bad-url", C)
def _(env):
    space = env.tmp / "space.yaml"
    space.write_text("lr: {low: 1.0e-3, high: 1.0e-1, log: true}\n")
    env.cli("tune", env.net, "--space", space, "--storage", "nosuchdb://x/y", "--out", env.tmp / "t")


# -- render --html, data-parallel flags ------------------------------------------------------------
@attack("render-html-to-folder", C)
def _(env):
    env.cli("render", "lenet", "--html", "-o", env.tmp)


for _flag, _value in [("--ranks", "0"), ("--ranks", "-2"), ("--bucket-mb", "0"),
                      ("--bucket-mb", "nan"), ("--comm-timeout", "-1")]:
    @attack(f"train{_flag}={_value}", C, expect=EITHER)
    def _(env, flag=_flag, value=_value):
        env.train(flag, value, out=env.tmp / "r")


@attack("train-tensorboard-folder-read-only", C, expect=EITHER)
def _(env):
    run = env.tmp / "r"
    run.mkdir()
    os.chmod(run, 0o555)
    try:
        env.train(out=run)
    finally:
        os.chmod(run, 0o755)


# -- the Python API: save/load/predict, Augment ------------------------------------------------
@attack("api-load-garbage-folder", P)
def _(env):
    import dagnet

    (env.tmp / "checkpoint.npz").write_bytes(b"PK\x03\x04 not a zip")
    dagnet.load(env.tmp)


@attack("api-load-data-json-mistyped", P)
def _(env):
    import dagnet

    run = env.run()
    (run / "data.json").write_text('{"normalization": {"mean": "zero"}}')
    dagnet.load(run)


for _name, _kw in [("batch-0", {"batch_size": 0}), ("batch-str", {"batch_size": "8"}),
                   ("batch-float", {"batch_size": 2.5})]:
    @attack(f"api-model-predict-{_name}", P)
    def _(env, kw=_kw):
        import dagnet

        dagnet.load(env.run()).predict(np.zeros((2, 8, 8), np.uint8), **kw)


for _name, _kw in [("crop-neg", {"crop": -1}), ("erase-2", {"erase": 2.0}),
                   ("translate-nan", {"translate": float("nan")}), ("flip-str", {"flip": "yes"}),
                   ("cutout-float", {"cutout": 2.5}), ("unknown", {"rotate": 3})]:
    @attack(f"api-augment-{_name}", P)
    def _(env, kw=_kw):
        from dagnet.data.augment import Augment

        Augment.from_dict(kw)


@attack("api-augment-wrong-rank", P, expect=EITHER)
def _(env):
    from dagnet.data.augment import Augment, augment_rng

    Augment(crop=2)(np.zeros((4, 8), np.float32), augment_rng(0, 0))


@attack("api-solver-augment-not-callable", P)
def _(env):
    from dagnet.train.solver import Solver
    from tests.reliability.cases import mlp_plan
    from tests.reliability.helpers import tiny_data

    Solver(mlp_plan(), tiny_data(8, (6,)), augment="flip", verbose=False)


@attack("api-save-to-a-file", P)
def _(env):
    import dagnet
    from tests.reliability.cases import mlp_plan

    (env.tmp / "f").write_text("x")
    dagnet.save(env.tmp / "f", mlp_plan())
