"""The facade: `import dagnet` reaches every submodule lazily (dagnet.onnx.load without
`import dagnet.onnx`), says clearly when an optional dependency is missing, and
dagnet.compile takes a model loaded by dagnet.onnx.load as it is."""
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest

import dagnet
from dagnet.errors import DagnetError, MissingDependencyError
from dagnet.models import lenet


def run_python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_submodules_load_on_first_use_only():
    r = run_python(
        "import sys, dagnet\n"
        "lazy = ('onnx', 'viz', 'models', 'train', 'data', 'saving', 'inference')\n"
        "assert not [m for m in lazy if 'dagnet.' + m in sys.modules], sys.modules.keys()\n"
        "assert callable(dagnet.onnx.load) and callable(dagnet.onnx.export)\n"
        "assert callable(dagnet.viz.render_graph) and dagnet.models.lenet().name == 'lenet'\n"
        "assert dagnet.train.Solver and dagnet.data.load_mnist_like\n"
        "assert callable(dagnet.load) and callable(dagnet.save) and dagnet.Model\n"
        "assert {'onnx', 'viz', 'load', 'save'} <= set(dir(dagnet))\n"
        "print('ok')\n")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_unknown_attribute_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        dagnet.nosuch
    assert not hasattr(dagnet, "nosuch")


def test_a_missing_optional_dependency_is_named():
    saved = {k: v for k, v in sys.modules.items() if k == "dagnet.viz" or k.startswith("dagnet.viz.")}
    viz = dagnet.__dict__.pop("viz", None)
    try:
        with mock.patch.dict(sys.modules, {"graphviz": None}):
            for k in saved:
                del sys.modules[k]
            with pytest.raises(MissingDependencyError, match=r"dagnet\.viz needs .*graphviz.*pip install"):
                dagnet.viz
    finally:
        sys.modules.update(saved)
        if viz is not None:
            dagnet.viz = viz
    assert issubclass(MissingDependencyError, ImportError) and issubclass(MissingDependencyError, DagnetError)


def test_compile_takes_an_imported_model():
    from dagnet.onnx import OnnxModel

    g = lenet()
    trained = dagnet.compile(g, seed=3)
    m = OnnxModel(lenet(), {k: v.copy() for k, v in trained.params.items()}, {})
    plan = dagnet.compile(m, mode="eval")  # was: AttributeError 'OnnxModel' has no 'name'
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    # the eval plan runs as an inference program: equal to float32 rounding to the train plan
    np.testing.assert_allclose(plan.predict(x), trained.predict(x), rtol=1e-5, atol=1e-5)
    fresh = dagnet.compile(m, mode="eval", params=dagnet.compile(g, seed=4).params)
    assert not np.array_equal(fresh.predict(x), plan.predict(x))  # params= still wins


def test_compile_names_what_it_got():
    with pytest.raises(DagnetError, match="compile: graph must be a dagnet Graph, got int"):
        dagnet.compile(3)
