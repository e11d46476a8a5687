"""Untrusted files never execute code: checkpoints are read with allow_pickle=False (pickled
entries refused before numpy reads them), specs with a yaml SafeLoader. The library-level
proofs are in tests/train/test_checkpoint.py (pickled payload in a checkpoint) and
tests/test_spec.py (!!python tags); here the same payloads go through the `dagnet` command as a
user would run it, plus a scan of the sources for any unsafe loader."""
import ast
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest

from dagnet.spec import graph_from_spec
from dagnet.spec.read import _SpecLoader
from dagnet.train.checkpoint import save_checkpoint
from tests.reliability.helpers import ROOT, write_mnist_like
from tests.payloads import Payload


def dagnet(*args, cwd):
    return subprocess.run([sys.executable, "-m", "dagnet.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def one_line_exit_2(r, needle):
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_the_payload_is_live(tmp_path):
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker))).close()
    assert marker.exists()


def evil_checkpoint(path, marker):
    """A dagnet-looking checkpoint whose metadata entry is a pickled payload."""
    np.savez(path, __dagnet__=np.array([Payload(marker)], dtype=object),
             **{"params/0": np.array([Payload(marker)], dtype=object)})


def test_cli_evaluate_refuses_a_pickled_checkpoint(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "pwned"
    evil_checkpoint(run / "checkpoint.npz", marker)
    (run / "data.json").write_text('{"data": "mnist:/nonexistent", "num_val": 1, "split_seed": 0}')
    r = dagnet("evaluate", run, cwd=tmp_path)
    one_line_exit_2(r, "pickled Python objects")
    assert not marker.exists()


def test_cli_resume_refuses_a_pickled_checkpoint(tmp_path):
    write_mnist_like(str(tmp_path), n_train=30, n_test=10, size=8, classes=3)
    (tmp_path / "net.yaml").write_text("input: {shape: [1, 8, 8]}\nlayers: [{type: fc, hidden: 3}]\n")
    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "pwned"
    evil_checkpoint(run / "checkpoint.npz", marker)
    r = dagnet("train", tmp_path / "net.yaml", "--data", f"mnist:{tmp_path}", "--val", 5,
               "--epochs", 1, "--out", run, "--resume", "--quiet", cwd=tmp_path)
    one_line_exit_2(r, "pickled Python objects")
    assert not marker.exists()


@pytest.mark.parametrize("command", ["summary", "train"])
def test_cli_refuses_a_spec_with_python_tags(tmp_path, command):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.yaml").write_text(
        f"name: !!python/object/apply:os.system ['touch {marker}']\n"
        f"input: {{shape: [1, 8, 8]}}\nlayers: [{{type: relu}}]\n")
    r = dagnet(command, tmp_path / "evil.yaml", cwd=tmp_path)
    one_line_exit_2(r, "refused")
    assert not marker.exists()


def test_a_spec_saved_in_a_checkpoint_is_data(tmp_path):
    """The spec inside a checkpoint is JSON: a tag in it is a string, never a constructor."""
    marker = tmp_path / "pwned"
    spec = {"name": f"!!python/object/apply:os.system ['touch {marker}']",
            "input": {"shape": [4]}, "layers": [{"type": "fc", "hidden": 2}]}
    save_checkpoint(tmp_path / "c.npz", params={}, state={}, optimizer={}, solver={}, spec=spec)
    from dagnet.train.checkpoint import load_checkpoint

    g = graph_from_spec(load_checkpoint(tmp_path / "c.npz").spec)
    assert g.name.startswith("!!python") and not marker.exists()


SOURCES = [p for folder in ("dagnet", "compiler", "models")
           for p in pathlib.Path(ROOT).joinpath(folder).rglob("*.py")]


def calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            owner = getattr(f.value, "id", "") if isinstance(f, ast.Attribute) else ""
            yield owner, name, node


def test_sources_use_no_unsafe_loader():
    bad = []
    for path in SOURCES:
        rel = path.relative_to(ROOT).as_posix()
        for owner, name, node in calls(ast.parse(path.read_text())):
            kw = {k.arg: k.value for k in node.keywords}
            where = f"{rel}:{node.lineno}"
            if owner == "np" and name == "load":
                ap = kw.get("allow_pickle")
                if not (isinstance(ap, ast.Constant) and ap.value is False):
                    bad.append(f"{where}: np.load without allow_pickle=False")
            if owner == "yaml" and name in ("load", "load_all", "unsafe_load", "full_load"):
                loader = kw.get("Loader")
                if name != "load" or not (isinstance(loader, ast.Name) and loader.id == "_SpecLoader"):
                    bad.append(f"{where}: yaml.{name} without the safe spec loader")
            if owner == "pickle" and name in ("load", "loads") and rel != "dagnet/data/cifar.py":
                bad.append(f"{where}: pickle.{name}")
            if name in ("eval", "exec") and not owner:
                bad.append(f"{where}: {name}()")
    assert not bad, "\n".join(bad)


def test_the_spec_loader_is_a_safe_loader():
    import yaml

    # yaml.SafeLoader or, where PyYAML has libyaml, yaml.CSafeLoader: the safe constructor
    assert issubclass(_SpecLoader, (yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    assert issubclass(_SpecLoader, yaml.constructor.SafeConstructor)
    assert not issubclass(_SpecLoader, (yaml.constructor.FullConstructor,
                                        yaml.constructor.UnsafeConstructor))
