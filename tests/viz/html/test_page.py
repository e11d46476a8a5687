"""The page itself: one self-contained document that asks nothing of any network."""
import re
import shutil
import subprocess

import pytest

import dagnet
from dagnet.viz.html import explorer_data, explorer_html, notebook_html
from dagnet.viz.html.page import CSP, SCRIPTS, asset, script
from tests.viz import lenet, resnet
from tests.viz.html import page_data

SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # a name in the SVG markup, never fetched


@pytest.fixture(scope="module")
def lenet_page():
    return explorer_html(dagnet.compile(lenet()))


def test_everything_is_inline(lenet_page):
    assert lenet_page.startswith("<!DOCTYPE html>") and lenet_page.count("<html") == 1
    assert not re.search(r"<(link|iframe|img|object|embed|base)\b", lenet_page)
    assert not re.search(r"<script[^>]*\bsrc\s*=", lenet_page)
    assert not re.search(r"\b(src|href|action)\s*=\s*[\"']?(https?:|//)", lenet_page)
    assert not re.search(r"@import|url\((?!#)", lenet_page)  # url(#arrow): a marker of the page itself
    assert re.findall(r"https?://[^\s\"'`)]+", lenet_page) == [SVG_NAMESPACE] * lenet_page.count(SVG_NAMESPACE)


def test_the_page_forbids_every_request(lenet_page):
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in lenet_page
    assert "default-src 'none'" in CSP and "connect-src 'none'" in CSP
    for call in ("fetch(", "XMLHttpRequest", "WebSocket", "import(", "sendBeacon", "EventSource"):
        assert call not in script(), call


def test_the_data_round_trips(lenet_page):
    data = page_data(lenet_page)
    assert data["graph"]["name"] == "lenet" and len(data["plan"]["steps"]) == 5
    assert data == __import__("json").loads(__import__("json").dumps(explorer_data(dagnet.compile(lenet()))))


def test_no_text_can_close_the_data_element():
    g = lenet()
    html = explorer_html(g, title="</script><script>alert(1)</script>")
    assert html.count("</script>") == 2  # the data's and the code's
    assert page_data(html)["title"] == "</script><script>alert(1)</script>"


def test_every_script_is_in_the_page(lenet_page):
    for name in SCRIPTS:
        assert asset(name).strip()[:60] in lenet_page, name
    assert asset("explorer.css").strip()[:60] in lenet_page


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed (syntax check only)")
def test_the_script_parses(tmp_path):
    path = tmp_path / "explorer.js"
    path.write_text(script())
    r = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_notebooks_get_a_summary_table_beside_the_explorer():
    g = lenet()
    for obj, rows in ((g, ["conv1", "pool2", "loss"]), (dagnet.compile(g), ["conv1+relu1+pool1", "fc2"])):
        html = obj._repr_html_()
        table, frame = html.split("<iframe", 1)
        assert "<table" in table and all(f">{r}<" in table for r in rows)
        assert 'sandbox="allow-scripts"' in frame and "srcdoc=" in frame and "<" not in frame.split(">", 1)[0]
        assert html == notebook_html(obj)
    assert "431,080 params" in dagnet.compile(g)._repr_html_()


def test_a_graph_that_does_not_compile_shows_why_in_notebooks():
    g = lenet()
    g.outputs = ["nowhere"]
    assert "not compiled: " in g._repr_html_()
    for n in g:
        n.meta.clear()
    g.node("conv2.w").attrs["shape"] = [50, 7, 5, 5]  # 7 input channels, 20 given: no shapes to draw
    assert g._repr_html_() is None  # the notebook falls back to the SVG or the repr


def test_a_page_of_a_big_graph_stays_small():
    html = explorer_html(resnet(blocks=10))
    assert len(html) < 600_000
