"""`dagnet summary` of a big graph: grouped by name level, a total per stage, repeated blocks
folded into one row, every layer with --depth full; small graphs stay one row per layer."""
import re

import pytest

from dagnet.models import densenet_small, lenet, resnet20, resnet50, squeezenet
from dagnet.summary import summary_rows, summary_table
from dagnet.viz.summary import default_depth, folded_summary


def rows(text: str) -> dict:
    """{layer (indent kept): the rest of its line split on 2+ spaces}."""
    out = {}
    for line in text.splitlines()[3:-2]:
        cells = re.split(r"\s{2,}", line.strip())
        out[line[:len(line) - len(line.lstrip())] + cells[0]] = cells[1:]
    return out


def test_resnet50_summary_folds_its_bottlenecks():
    g = resnet50()
    assert default_depth(g) == 2
    text = folded_summary(g, 2)
    table = rows(text)
    assert len(text.splitlines()) < 35  # 175 ops
    assert table["stage3"][:2] == ["62 ops", "(1024, 14, 14)"]
    assert table["  stage3.block3 … block6"][0] == "4 like stage3.block2"
    assert table["  stage4.block3"][0] == "like stage4.block2"
    assert "  stage3.block4" not in table
    # the totals add up: every stage's params, and the whole graph's
    per_layer = {r["name"]: r["params"] for r in summary_rows(g)}
    for stage in ("stem", "stage1", "stage2", "stage3", "stage4"):
        want = sum(v for k, v in per_layer.items() if k.startswith(stage + "."))
        assert table[stage][2] == f"{want:,}", stage
    assert text.splitlines()[-1].split()[-2] == "25,583,592"


def test_depth_one_gives_one_row_per_stage_and_full_every_layer():
    table = rows(folded_summary(resnet20(), 1))
    assert list(table) == ["x", "y", "stem", "stage1", "stage2", "stage3", "pool", "scores", "loss"]
    assert folded_summary(resnet20(), 3) == summary_table(resnet20())
    assert folded_summary(resnet20(), None) == summary_table(resnet20())


def test_dense_layers_and_fire_modules_fold():
    """Dense layers differ in their channel counts, so find_repeats keeps them apart; layers
    running the same ops fold all the same. SqueezeNet's names have two levels: one row per
    fire module by default."""
    table = rows(folded_summary(densenet_small(), 2))
    assert table["  block2.layer2 … layer4"][:2] == ["3 like block2.layer1", "(84, 16, 16)"]
    assert "  block2.layer3" not in table and "  trans1.conv" in table
    g = squeezenet()
    assert default_depth(g) == 1
    table = rows(folded_summary(g, 1))
    assert table["fire2"][0] == "7 ops" and table["fire3"][0] == "like fire2"
    assert "fire2.squeeze" not in table


def test_small_graphs_keep_the_plain_table():
    assert default_depth(lenet()) is None
    assert folded_summary(lenet(), default_depth(lenet())) == summary_table(lenet())


def test_summary_command_depth(capsys):
    from dagnet.cli.main import main

    assert main(["summary", "resnet50"]) == 0
    out = capsys.readouterr().out
    assert "stage3.block3 … block6" in out and "--depth 3 lists every layer" in out
    assert main(["summary", "resnet50", "--depth", "full"]) == 0
    assert "stage3.block4.conv2" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["summary", "resnet50", "--depth", "0"])
    assert e.value.code == 2
