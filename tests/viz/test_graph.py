"""render_graph: the declared DAG as DOT source and as real SVG/PNG/PDF files."""
import os

import pytest

from dagnet import DagnetError, Graph
from dagnet.viz import render_graph
from dagnet.viz.style import STYLES, family_of, shape_text
from tests.viz import lenet, needs_dot, png_size, svg_groups, svg_text


def test_source_has_a_box_per_op_with_name_op_shape_and_params():
    src = render_graph(lenet()).source
    assert "<b>conv1</b>" in src and "conv2d" in src and "20×24×24" in src
    assert "520 params (w 20×1×5×5, b 20)" in src
    assert "conv1.w" not in src  # params fold into their op by default
    assert 'label=" 20×24×24"' in src  # edges carry the tensor shape


def test_families_take_their_colors_from_the_one_style_table():
    g = lenet()
    src = render_graph(g).source
    for name, family in [("x", "input"), ("conv1", "conv"), ("relu1", "activation"),
                         ("pool1", "pool"), ("fc1", "dense"), ("loss", "loss")]:
        assert family_of(g.node(name)) == family
        assert STYLES[family]["fillcolor"] in src


@needs_dot
def test_lenet_svg_holds_every_node_name_and_shape(tmp_path):
    g = lenet()
    path = tmp_path / "lenet.svg"
    render_graph(g, path)
    text = svg_text(path)
    drawn = [n for n in g if n.op != "param"]
    for n in drawn:
        assert n.name in text
        assert shape_text(g.shape_of(n)) in text
    assert sorted(svg_groups(path, "node")) == sorted(n.name for n in drawn)


@needs_dot
def test_svg_has_one_node_element_per_graph_node_when_params_are_drawn(tmp_path):
    g = lenet()
    path = tmp_path / "full.svg"
    render_graph(g, path, collapse_params=False, rankdir="LR")
    assert sorted(svg_groups(path, "node")) == sorted(n.name for n in g)
    edges = sum(len(n.inputs) for n in g)
    assert len(svg_groups(path, "edge")) == edges


def test_a_shared_param_stays_a_node_of_its_own():
    g = Graph("shared")
    x = g.input("x", (4,))
    a = g.affine(x, 4, name="a")
    g.affine(a, 4, name="b", w=g.node("a.w"))
    src = render_graph(g).source
    assert '"a.w" [' in src and '"a.b" [' not in src and '"b.b" [' not in src


def test_labels_are_escaped_and_a_hook_chooses_the_text():
    g = Graph("odd <names> & co")
    x = g.input("in:put", (3,))
    g.op("relu", x, name="a<b>&c")
    src = render_graph(g, label=lambda n: f"{n.op}\n<{n.name}>").source
    assert "a&lt;b&gt;&amp;c" in src and "<a<b>" not in src
    assert "relu<br/>&lt;a&lt;b&gt;&amp;c&gt;" in src
    assert '"in%3Aput" -> "a<b>&c"' in src  # ':' would be read as a port


@needs_dot
def test_escaped_names_render(tmp_path):
    g = Graph("odd")
    x = g.input("in:put", (3,))
    g.op("relu", x, name="a<b>&c")
    path = render_graph(g, tmp_path / "odd.svg") and tmp_path / "odd.svg"
    assert "a<b>&c" in svg_text(path) and "in:put" in svg_text(path)


@needs_dot
@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG\r\n\x1a\n"), ("pdf", b"%PDF-")])
def test_png_and_pdf_files_are_real(tmp_path, fmt, magic):
    path = tmp_path / f"lenet.{fmt}"
    render_graph(lenet(), path)
    data = path.read_bytes()
    assert data.startswith(magic)
    assert 10_000 < len(data) < 5_000_000
    if fmt == "png":
        w, h = png_size(path)
        assert 300 < w < 3000 and 1000 < h < 6000  # a tall TB picture at 144 dpi


@needs_dot
def test_format_argument_overrides_the_suffix(tmp_path):
    path = tmp_path / "picture.out"
    render_graph(lenet(), path, format="png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_missing_dot_gives_a_clear_error_and_dot_format_still_works(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DagnetError, match="apt-get install graphviz"):
        render_graph(lenet(), tmp_path / "x.svg")
    dot = render_graph(lenet(), tmp_path / "x.dot")
    assert (tmp_path / "x.dot").read_text() == dot.source
    render_graph(lenet(), tmp_path / "y.gv", format="dot")
    assert (tmp_path / "y.gv").read_text().startswith("digraph lenet {")


def test_bad_arguments_say_what_fits():
    with pytest.raises(DagnetError, match="rankdir"):
        render_graph(lenet(), rankdir="sideways")
    with pytest.raises(DagnetError, match="blocks"):
        render_graph(lenet(), blocks="yes")


def test_file_is_written_in_a_new_folder(tmp_path):
    path = tmp_path / "deep" / "er" / "g.dot"
    render_graph(lenet(), path)
    assert os.path.getsize(path) > 1000


def test_a_graph_without_shapes_is_annotated_first():
    g = Graph("raw")
    g.add_node("input", attrs={"shape": [3, 8, 8], "dtype": "float32"}, name="x")
    g.add_node("max_pool2d", ["x"], {"size": 2, "stride": 2, "pad": 0}, name="pool")
    assert all("shape" not in n.meta for n in g)
    assert "3×4×4" in render_graph(g).source
