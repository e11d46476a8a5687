"""`dagnet render ... --html` and `dagnet report RUN_DIR`, run as a user would."""
import pytest

from tests.test_cli import dagnet
from tests.viz.html import page_data


@pytest.fixture(scope="module")
def run_dir(tiny_mnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "lenet"
    r = dagnet("train", "lenet", "--data", f"mnist:{tiny_mnist}", "--epochs", 2, "--val", 40,
               "--batch-size", 20, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    return out


def test_render_html_writes_one_page(tmp_path):
    out = tmp_path / "plan.html"
    r = dagnet("render", "lenet", "--html", "-o", out, "--timings", "--batch", 4)
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stdout and "self-contained" in r.stdout
    data = page_data(out.read_text())
    assert data["graph"]["name"] == "lenet" and [s["pattern"] for s in data["plan"]["steps"]][:2] == [
        "conv2d+relu+max_pool2d"] * 2
    assert set(data["plan"]["timings"]["steps"]) == {s["name"] for s in data["plan"]["steps"]}
    assert data["passes"][-1]["pass"] == "memory" and data["run"] is None


def test_render_html_needs_an_html_name(tmp_path):
    r = dagnet("render", "lenet", "--html", "-o", tmp_path / "plan.svg")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "give -o NAME.html" in r.stderr and "Traceback" not in r.stderr


def test_render_html_of_a_run_and_an_onnx_file(run_dir, tmp_path):
    pytest.importorskip("onnx")
    r = dagnet("render", run_dir, "--html", "-o", tmp_path / "run.html")
    assert r.returncode == 0, r.stderr
    # a run folder is compiled in the --mode asked for, as every other kind of model is
    assert page_data((tmp_path / "run.html").read_text())["plan"]["mode"] == "train"
    r = dagnet("render", run_dir, "--html", "--mode", "eval", "-o", tmp_path / "run_eval.html")
    assert r.returncode == 0, r.stderr
    assert page_data((tmp_path / "run_eval.html").read_text())["plan"]["mode"] == "eval"
    assert dagnet("export", run_dir, "-o", tmp_path / "lenet.onnx").returncode == 0
    r = dagnet("render", tmp_path / "lenet.onnx", "--html", cwd=tmp_path)  # default name: lenet.html
    assert (tmp_path / "lenet.html").exists()
    assert r.returncode == 0, r.stderr


def test_report_shows_curves_recipe_and_metrics(run_dir, tmp_path):
    out = tmp_path / "report.html"
    r = dagnet("report", run_dir, "-o", out)
    assert r.returncode == 0, r.stderr
    data = page_data(out.read_text())
    run = data["run"]
    assert len(run["history"]["loss_history"]) == 16 and len(run["history"]["train_acc_history"]) == 2
    recipe, metrics = dict(run["recipe"]), dict(run["metrics"])
    assert recipe["update rule"] == "sgd_momentum" and recipe["batch size"] == "20" and recipe["epochs asked"] == "2"
    assert recipe["data"].startswith("mnist:") and metrics["epochs run"] == "2"
    assert set(run["evaluation"]) == {"val", "test"} and 0 <= run["evaluation"]["test"]["accuracy"] <= 1
    assert data["plan"]["mode"] == "train" and data["plan"]["backward"]["order"]  # the plan it trained with
    assert data["title"] == "lenet · lenet"


def test_report_defaults_into_the_run_and_can_skip_evaluation(run_dir):
    r = dagnet("report", run_dir, "--no-eval")
    assert r.returncode == 0, r.stderr
    data = page_data((run_dir / "report.html").read_text())
    assert data["run"]["evaluation"] is None


def test_report_of_a_folder_that_is_no_run(tmp_path):
    r = dagnet("report", tmp_path)
    assert r.returncode == 2 and "checkpoint.npz" in r.stderr and "Traceback" not in r.stderr
