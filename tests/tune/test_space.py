"""Search-space files: parsing, their mistakes, round trips, and coarse-to-fine narrowing."""
import pytest

from dagnet.errors import TuneError
from dagnet.tune.space import Param, load_space, narrow, parse_space, to_yaml

SPACE = """
lr: {low: 1.0e-3, high: 1.0e-1, log: true}
weight_decay: {low: 1.0e-6, high: 1.0e-2, log: true}
update_rule: {choices: [sgd_momentum, adam]}
batch_size: {low: 32, high: 256, step: 32}
warmup: {low: 0.0, high: 0.5}
lr_schedule: cosine
"""


def test_every_kind_of_entry(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    space = load_space(path)
    assert space == [
        Param("lr", "float", 1e-3, 1e-1, log=True),
        Param("weight_decay", "float", 1e-6, 1e-2, log=True),
        Param("update_rule", "choice", choices=("sgd_momentum", "adam")),
        Param("batch_size", "int", 32, 256, step=32),
        Param("warmup", "float", 0.0, 0.5),
        Param("lr_schedule", "fixed", value="cosine"),
    ]
    path.write_text(to_yaml(space))
    assert load_space(path) == space


@pytest.mark.parametrize("entry,needle", [
    ("{low: 1e-3, high: 1.0e-1}", "YAML 1.1 needs a dot"),
    ("{low: 0.1, high: 0.01}", "low (0.1) must be less than high (0.01)"),
    ("{low: 0.0, high: 1.0, log: true}", "a log range needs low > 0"),
    ("[sgd, adam]", "{choices: ['sgd', 'adam']}"),
    ("{choices: []}", "non-empty list"),
    ("{low: 1, high: 9, stp: 2}", "got keys ['high', 'low', 'stp']"),
    ("{low: 0.5, high: 2.5, step: 1}", "a step is an integer >= 1 on an int range"),
    ("'1e-3'", "YAML 1.1 needs a dot"),
])
def test_mistakes_name_the_file_and_key(tmp_path, entry, needle):
    path = tmp_path / "space.yaml"
    path.write_text(f"lr: {entry}\nseed2: {{low: 1, high: 2}}\n")
    with pytest.raises(TuneError) as e:
        load_space(path)
    assert needle in str(e.value) and f"{path}: lr" in str(e.value)


def test_whole_file_mistakes(tmp_path):
    with pytest.raises(TuneError, match="not found"):
        load_space(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("lr: [1, 2\n")
    with pytest.raises(TuneError, match="cannot be read as YAML"):
        load_space(tmp_path / "bad.yaml")
    with pytest.raises(TuneError, match="every entry is fixed"):
        parse_space({"lr": 0.1})
    with pytest.raises(TuneError, match="a mapping of names to ranges"):
        parse_space([1, 2])


def test_narrow_shrinks_around_the_best_trials():
    space = parse_space({"lr": {"low": 1e-4, "high": 1.0, "log": True},
                         "batch_size": {"low": 16, "high": 256, "step": 16},
                         "dropout": {"low": 0.0, "high": 0.5},
                         "rule": {"choices": ["sgd", "adam", "rmsprop"]}, "fixed": 3})
    ranked = [{"lr": 1e-2, "batch_size": 64, "dropout": 0.1, "rule": "adam"},
              {"lr": 4e-2, "batch_size": 96, "dropout": 0.2, "rule": "sgd"},
              {"lr": 1e-4, "batch_size": 256, "dropout": 0.5, "rule": "rmsprop"},
              {"lr": 0.9, "batch_size": 16, "dropout": 0.0, "rule": "rmsprop"}]
    lr, bs, drop, rule, fixed = narrow(space, ranked, keep=0.25)  # the best 2 of 4
    # log span of [1e-2, 4e-2] is ln 4; a quarter of it on each side: factor 4**0.25 = 1.414
    assert lr.low == pytest.approx(1e-2 / 4**0.25, rel=1e-3)
    assert lr.high == pytest.approx(4e-2 * 4**0.25, rel=1e-3) and lr.log
    assert (bs.low, bs.high, bs.step) == (64, 96, 16)  # [56, 104] inward to the 16-grid
    assert drop.low == pytest.approx(0.075) and drop.high == pytest.approx(0.225)
    assert rule.choices == ("sgd", "adam")  # the file's order, only the values used
    assert fixed == space[4]
    for new, old in zip((lr, bs, drop), space):
        assert old.low <= new.low < new.high <= old.high


def test_narrow_clips_to_the_old_range_and_fixes_a_collapsed_int():
    space = parse_space({"lr": {"low": 0.01, "high": 0.1}, "epochs": {"low": 1, "high": 3}})
    lr, epochs = narrow(space, [{"lr": 0.1, "epochs": 2}, {"lr": 0.1, "epochs": 2}])
    assert lr.high == 0.1 and lr.low == pytest.approx(0.1 - 0.25 * 0.09)
    assert epochs == Param("epochs", "fixed", value=2)
    with pytest.raises(TuneError, match="no finished trial"):
        narrow(space, [])
