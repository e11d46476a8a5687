"""The README stays true: its Python tour runs, every command it shows parses with flags the
command has, every file it links exists, and the example files it names are valid."""
import pathlib
import re
import shlex

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def dagnet_commands() -> list[list[str]]:
    """Each `.venv/bin/dagnet ...` command of the README's shell blocks, as argv."""
    commands = []
    for block in blocks("sh"):
        for line in block.splitlines():
            line = line.split("  #")[0]
            for part in line.split(";"):
                words = shlex.split(part, comments=True)
                if words[:1] == [".venv/bin/dagnet"]:
                    commands.append(words[1:])
                elif "dagnet" in part and "&&" in part:  # the set-up command ends with train
                    commands.append(shlex.split(part.split("&&")[-1])[1:])
    return commands


def test_the_tour_runs():
    (tour,) = blocks("python")
    namespace = {}
    exec(compile(tour, "README.md (tour)", "exec"), namespace)
    assert namespace["scores"].shape == (64, 10)
    assert namespace["loss"] > 0 and set(namespace["grads"]) >= {"conv1.w", "fc2.b"}


def test_commands_call_the_venv_and_never_an_activated_dagnet():
    for block in blocks("sh"):
        for line in block.splitlines():
            code = line.split("#")[0]
            assert not re.search(r"(^|[;&]\s*)(dagnet|python|pytest|pip)\b", code.strip()), line


@pytest.mark.parametrize("argv", dagnet_commands(), ids=" ".join)
def test_every_command_shown_parses(argv):
    from dagnet.cli.main import build_parser

    args = build_parser().parse_args(argv)  # an unknown command or flag exits (SystemExit 2)
    assert args.command == argv[0]


def test_the_commands_cover_every_command_group():
    from dagnet.cli.main import build_parser

    shown = {argv[0] for argv in dagnet_commands()}
    assert set(build_parser().commands) <= shown


def test_the_first_cli_run_does_not_collide_with_the_set_up_run():
    commands = dagnet_commands()
    setup, first = commands[0], commands[1]
    assert setup[:2] == ["train", "lenet"] and "--out" not in setup  # writes runs/lenet
    assert first[0] == "train" and first[first.index("--out") + 1] != "runs/lenet"


def test_every_linked_file_exists():
    links = re.findall(r"\]\(([^)#]+)\)", README) + re.findall(r"(docs/[\w/.-]+\.\w+)", README)
    assert links
    missing = [p for p in links if not p.startswith("http") and not (ROOT / p).exists()]
    assert not missing


def test_the_example_recipe_and_space_are_valid():
    import dagnet
    from dagnet.train.recipe import check_recipe
    from dagnet.tune.space import parse_space

    path = ROOT / "docs" / "examples" / "lenet_recipe.yaml"
    assert dagnet.Graph.from_spec(str(path)).name == "lenet"
    check_recipe(yaml.safe_load(path.read_text())["train"])
    space = parse_space(yaml.safe_load((ROOT / "docs" / "examples" / "space.yaml").read_text()))
    assert [p.name for p in space] == ["lr", "weight_decay", "update_rule"]
