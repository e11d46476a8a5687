"""docs/spec.md is generated from the op declarations and kept current, as docs/errors.md is."""
import pathlib

import pytest

from dagnet.graph import Graph
from dagnet.spec import graph_from_spec
from dagnet.spec.reference import GENERAL_EXAMPLE, SEQUENTIAL_EXAMPLE, reference
from dagnet.spec.vocab import declared_ops

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "spec.md"


def test_docs_spec_md_is_current():
    assert DOC.exists(), "docs/spec.md is missing: python -m dagnet.spec.reference > docs/spec.md"
    assert DOC.read_text() == reference(), \
        "docs/spec.md is stale: python -m dagnet.spec.reference > docs/spec.md"


@pytest.mark.parametrize("name", sorted(declared_ops()))
def test_every_op_attr_and_alias_is_documented(name):
    op = declared_ops()[name]
    text = reference()
    section = text.split(f"### `{name}`\n", 1)[1].split("\n### ", 1)[0]
    assert op.doc in section
    for p in op.ports:
        assert f"`{p.name}`" in section
    for a in op.attributes:
        assert f"| `{a.name}` |" in section and a.doc in section
        assert all(f"`{alias}`" in section for alias in a.aliases)


def test_the_examples_build():
    seq = graph_from_spec(SEQUENTIAL_EXAMPLE)
    assert [n.name for n in seq if n.op == "conv2d"] == ["conv1", "conv2"]
    assert seq.shape_of("scores") == (10,)
    g = graph_from_spec(GENERAL_EXAMPLE)
    assert isinstance(g, Graph) and g.outputs == ["loss"] and "conv1.w" in g
