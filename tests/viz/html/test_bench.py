"""benchmarks/bench_explorer.py still runs (tiny sizes) and prints its JSON; no times asserted."""
from tests.test_bench_scripts import run


def test_bench_explorer_quick():
    out = run("bench_explorer.py")
    assert set(out["build_s"]) == {"lenet", "resnet_small", "chain"} and out["ops_in_chain"] == 100
    assert out["dot_chain_s"] > 0 and all(v > 0 for v in out["page_kb"].values())
    if isinstance(out["browser"], dict):  # measured where a browser is installed
        assert set(out["browser"]) == {"lenet", "resnet_small", "chain"} and out["chain_unfold_all_ms"] > 0
