"""docs/quickstart.py, the whole story in one script, still runs (on tiny data)."""
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_quickstart_runs_and_writes_its_pictures(tiny_mnist, tmp_path):
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / "docs" / "quickstart.py")
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)
    acc = quickstart.main(["--data", f"mnist:{tiny_mnist}", "--train", "200", "--epochs", "1",
                           "--out", str(tmp_path)])
    assert 0.0 <= acc <= 1.0
    for name in ("graph.png", "plan.png", "memory.png", "curves.png", "filters.png",
                 "maps_conv1.png", "maps_pool1.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000, name
