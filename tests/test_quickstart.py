"""docs/quickstart.py, the whole story in one script, still runs (on tiny data), and by default
writes its pictures to an untracked folder, never over the README's tracked ones."""
import hashlib
import importlib.util
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PICTURES = ("graph.png", "plan.png", "memory.png", "curves.png", "filters.png",
            "maps_conv1.png", "maps_pool1.png")


def load_quickstart():
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / "docs" / "quickstart.py")
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)
    return quickstart


def tracked_pictures() -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((ROOT / "docs" / "quickstart").glob("*.png"))}


def test_quickstart_runs_and_writes_its_pictures_to_the_default_folder(tiny_mnist, tmp_path, monkeypatch):
    before = tracked_pictures()
    assert set(PICTURES) <= set(before)  # the README links each of them
    monkeypatch.chdir(tmp_path)
    acc = load_quickstart().main(["--data", f"mnist:{tiny_mnist}", "--train", "200", "--epochs", "1"])
    assert 0.0 <= acc <= 1.0
    for name in PICTURES:
        data = (tmp_path / "runs" / "quickstart" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000, name
    assert tracked_pictures() == before


def test_out_names_the_folder(tiny_mnist, tmp_path):
    load_quickstart().main(["--data", f"mnist:{tiny_mnist}", "--train", "100", "--epochs", "1",
                            "--out", str(tmp_path / "qs")])
    assert sorted(p.name for p in (tmp_path / "qs").iterdir()) == sorted(PICTURES)


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="not a git checkout")
def test_the_default_folder_is_ignored_by_git():
    default = pathlib.Path(load_quickstart().DEFAULT_OUT) / "memory.png"
    assert not default.is_absolute() and default.parts[0] != "docs"
    r = subprocess.run(["git", "check-ignore", "-q", str(default)], cwd=ROOT)
    assert r.returncode == 0, f"{default} is not gitignored"
