"""dagnet's event files, read back with TensorBoard's own readers (the event accumulator and
the plugin accumulator its server uses) and its own protobuf classes."""
import numpy as np
import pytest

from dagnet.tensorboard import SummaryWriter, TensorBoardLogger
from dagnet.tensorboard.callback import write_experiment
from dagnet.tensorboard.writer import crc32c
from dagnet.train.solver import Solver
from dagnet.tune.space import parse_space

ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
pea = pytest.importorskip("tensorboard.backend.event_processing.plugin_event_accumulator")
plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")

ALL = {ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.TENSORS: 0}


def read(logdir):
    acc = ea.EventAccumulator(str(logdir), size_guidance=ALL)
    acc.Reload()
    return acc


def hparams(acc):
    return {tag: plugin_data_pb2.HParamsPluginData.FromString(content)
            for tag, content in acc.PluginTagToContent("hparams").items()}


def test_crc32c_check_values():
    # the CRC-32C check value (RFC 3720 appendix B.4) and iSCSI's 32 zero bytes
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA


def test_scalars_histograms_and_hparams_read_back(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(1000)
    with SummaryWriter(tmp_path) as writer:
        for step in range(1, 4):
            writer.add_scalars({"step/loss": 1.0 / step, "step/zero": 0.0}, step)
        writer.add_histogram("weights/w", w, step=1)
        writer.add_histogram("weights/const", np.full(5, 2.0), step=1)
    acc = read(tmp_path)
    assert [(e.step, e.value) for e in acc.Scalars("step/loss")] == [(1, 1.0), (2, 0.5),
                                                                     (3, pytest.approx(1 / 3))]
    assert [e.value for e in acc.Scalars("step/zero")] == [0.0] * 3  # a 0.0 oneof is present
    h = acc.Histograms("weights/w")[0].histogram_value
    assert (h.min, h.max, h.num) == (w.min(), w.max(), 1000)
    assert h.sum == pytest.approx(w.sum()) and h.sum_squares == pytest.approx(w @ w)
    assert sum(h.bucket) == 1000 and h.bucket_limit[-1] == w.max()
    assert list(h.bucket) == list(np.histogram(w, bins=30)[0])
    const = acc.Histograms("weights/const")[0].histogram_value
    assert (const.min, const.max, sum(const.bucket)) == (2.0, 2.0, 5)
    # the server's own loader (data_compat) turns them into its scalar and histogram tensors
    server = pea.EventAccumulator(str(tmp_path), size_guidance=ALL)
    server.Reload()
    assert {"step/loss", "weights/w"} <= set(server.Tags()["tensors"])
    assert server.PluginTagToContent("histograms").keys() >= {"weights/w"}


def test_a_restart_purges_the_repeated_steps(tmp_path):
    with SummaryWriter(tmp_path) as writer:  # a run killed after step 7 had flushed 1..7
        for step in range(1, 8):
            writer.add_scalar("step/loss", 1.0, step)
    with SummaryWriter(tmp_path, purge_step=5) as writer:  # resumed from its step-4 checkpoint
        for step in range(5, 11):
            writer.add_scalar("step/loss", 2.0, step)
    events = read(tmp_path).Scalars("step/loss")
    assert [e.step for e in events] == list(range(1, 11))
    assert [e.value for e in events] == [1.0] * 4 + [2.0] * 6


def tiny_run(tmp_path, epochs, resume=False, hp=None):
    from dagnet import compile
    from tests.reliability.helpers import tiny_data, tiny_mlp

    plan = compile(tiny_mlp(), seed=0)
    logger = TensorBoardLogger(tmp_path, hparams=hp)
    solver = Solver(plan, tiny_data(50, (6,)), batch_size=10, num_epochs=epochs, verbose=False,
                    checkpoint=str(tmp_path / "ck.npz"), resume=resume, callbacks=[logger],
                    allow_changes=["num_epochs"] if resume else (),  # resuming runs more epochs
                    optim_config={"learning_rate": 0.05})
    solver.train()
    logger.close()
    return solver


def test_a_run_logs_every_step_epoch_and_param(tmp_path):
    solver = tiny_run(tmp_path, 2, hp={"lr": 0.05, "rule": "sgd", "nesterov": False})
    acc = read(tmp_path)
    losses = acc.Scalars("step/loss")
    assert [e.step for e in losses] == list(range(1, 11))
    assert [e.value for e in losses] == pytest.approx(solver.loss_history)
    assert [e.value for e in acc.Scalars("epoch/val_acc")] == pytest.approx(solver.val_acc_history)
    assert [e.step for e in acc.Scalars("epoch/train_acc")] == [1, 2]
    assert acc.Scalars("epoch/loss")[1].value == pytest.approx(np.mean(solver.loss_history[5:]))
    assert all(e.value == pytest.approx(0.05) for e in acc.Scalars("step/lr"))
    for p in solver.model.params:
        assert [h.step for h in acc.Histograms(f"weights/{p}")] == [1, 2]
        assert [h.step for h in acc.Histograms(f"grads/{p}")] == [1, 2]
    last = acc.Histograms("weights/fc1.w")[-1].histogram_value  # the last epoch's params
    from dagnet.train.checkpoint import load_checkpoint

    assert last.sum == pytest.approx(float(load_checkpoint(tmp_path / "ck.npz").params["fc1.w"].sum()),
                                     rel=1e-5)
    hp = hparams(acc)
    start = hp["_hparams_/session_start_info"].session_start_info.hparams
    assert start["lr"].number_value == 0.05 and start["rule"].string_value == "sgd"
    assert start["nesterov"].bool_value is False
    assert hp["_hparams_/session_end_info"].session_end_info.status == 1  # STATUS_SUCCESS


def test_a_resumed_run_logs_each_step_once(tmp_path):
    tiny_run(tmp_path, 1)
    solver = tiny_run(tmp_path, 3, resume=True)
    losses = read(tmp_path).Scalars("step/loss")
    assert [e.step for e in losses] == list(range(1, 16))
    assert [e.value for e in losses] == pytest.approx(solver.loss_history)


def test_a_search_experiment(tmp_path):
    space = parse_space({"lr": {"low": 1e-3, "high": 0.1, "log": True},
                         "update_rule": {"choices": ["sgd", "adam"]},
                         "batch_size": {"choices": [32, 64]}, "seed_fixed": 3})
    write_experiment(tmp_path, space, name="lenet")
    exp = hparams(read(tmp_path))["_hparams_/experiment"].experiment
    assert exp.name == "lenet"
    infos = {h.name: h for h in exp.hparam_infos}
    assert set(infos) == {"lr", "update_rule", "batch_size"}
    assert (infos["lr"].domain_interval.min_value, infos["lr"].domain_interval.max_value) == (1e-3, 0.1)
    assert [v.string_value for v in infos["update_rule"].domain_discrete.values] == ["sgd", "adam"]
    assert [v.number_value for v in infos["batch_size"].domain_discrete.values] == [32, 64]
    assert [m.name.tag for m in exp.metric_infos] == ["epoch/val_acc", "epoch/train_acc", "epoch/loss"]
