"""YAML/JSON specs <-> Graph, in a sequential form (a layer stack) and a general form (any DAG).

    g = dagnet.Graph.from_spec("lenet.yaml")      # or graph_from_spec(path | text | dict)
    save_spec(g, "lenet.yaml")                    # the general form, one node per line

Both forms share one vocabulary, derived from the ops' declarations: an op or one of its
aliases (conv, fc, bn, pool, ...), and its attributes or their aliases (the course names
num_filters, filter_size, hidden, ...). docs/spec.md lists every op with its inputs and
attributes (kind, default, bounds, aliases); `python -m dagnet.spec.reference` writes it.

    read.py        text, file or dict -> the top-level mapping (safe YAML, duplicate keys refused)
    vocab.py       op names, keys and value checks both forms share
    sequential.py  `layers:`     general.py  `nodes:`     write.py  Graph -> YAML/JSON
    reference.py   docs/spec.md

Every mistake is a SpecError naming the key path (`layers[3].num_filters: must be a positive
integer, got -2`); shape and attr errors found while building keep their class with the key
path prefixed. The forms build through the builder (dagnet.graph), which therefore cannot import
this package: it plugs its reader into Graph.from_spec below.
"""
from __future__ import annotations

import os

from dagnet.errors import SpecError
from dagnet.graph import Graph
from dagnet.spec.general import build_general
from dagnet.spec.read import read, read_file, top_level
from dagnet.spec.sequential import build_sequential
from dagnet.spec.write import graph_to_spec, save_spec

__all__ = ["graph_from_spec", "graph_to_spec", "load_spec", "save_spec"]


def graph_from_spec(spec, graph_class=Graph) -> Graph:
    """A Graph from a spec: a .yaml/.yml/.json path, a YAML/JSON string, or a dict."""
    return _build(read(spec), graph_class)


def load_spec(path, graph_class=Graph) -> Graph:
    """A Graph from a .yaml/.yml or .json spec file (the format follows the extension)."""
    return _build(top_level(read_file(os.fspath(path))), graph_class)


def _build(data: dict, graph_class) -> Graph:
    # `train:` is the training recipe (dagnet.train.recipe reads it), not part of the graph
    data = {k: v for k, v in data.items() if k != "train"}
    if "layers" in data and "nodes" in data:
        raise SpecError("spec: give either 'layers' (sequential form) or 'nodes' (general form), "
                        "not both")
    if "layers" in data:
        return build_sequential(data, graph_class)
    if "nodes" in data:
        return build_general(data, graph_class)
    raise SpecError(f"spec: needs 'layers' (sequential form) or 'nodes' (general form); "
                    f"found keys {', '.join(map(str, data)) or 'none'}")


Graph.spec_reader = staticmethod(graph_from_spec)
