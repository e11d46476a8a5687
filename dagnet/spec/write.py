"""Writing a spec: Graph -> the general-form mapping (Graph.to_spec) -> a YAML or JSON file."""
from __future__ import annotations

import json
import os

import yaml

from dagnet.errors import GraphError, SpecError
from dagnet.spec.read import check_extension


def graph_to_spec(graph) -> dict:
    """The general-form spec of a graph, every node explicit (params included): plain data
    that YAML or JSON can hold, from which graph_from_spec rebuilds an equal graph."""
    try:
        return graph.to_spec()
    except GraphError as e:
        raise SpecError(str(e)) from None


class _FlowMapping(dict):
    """A node of a saved YAML spec: written on one line."""


class _SpecDumper(yaml.SafeDumper):
    pass


_SpecDumper.add_representer(
    _FlowMapping, lambda d, m: d.represent_mapping("tag:yaml.org,2002:map", m, flow_style=True))


def save_spec(graph, path) -> None:
    """Write graph_to_spec(graph) to a .yaml/.yml (one node per line) or .json file."""
    path = os.fspath(path)
    ext = check_extension(path)
    spec = graph_to_spec(graph)
    if ext == ".json":
        text = json.dumps(spec, indent=2) + "\n"
    else:
        spec["nodes"] = [_FlowMapping(n) for n in spec["nodes"]]
        text = yaml.dump(spec, Dumper=_SpecDumper, sort_keys=False, default_flow_style=False,
                         width=1000)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
