"""Reading a spec: a file path, YAML/JSON text or a dict -> the top-level mapping.

Files are read with a yaml.SafeLoader only (as yaml.safe_load, plus refusing duplicate keys): a
spec is data and never runs code. JSON is read refusing duplicate keys too. Every mistake is a
SpecError naming the file or 'spec text' and, for YAML, the line and column.
"""
from __future__ import annotations

import json
import os

import yaml

from dagnet.errors import SpecError
from dagnet.files import read_bounded

EXTENSIONS = (".yaml", ".yml", ".json")

#: the largest spec file read (a 10,000-node spec is about 1 MB)
MAX_SPEC_BYTES = 64 * 2 ** 20


class _DuplicateKey(yaml.YAMLError):
    pass


#: the most values a spec may hold with its aliases expanded: a 'billion laughs' alias bomb
#: (each alias repeating the one before) packs 10**9 into a few hundred bytes
MAX_EXPANDED_VALUES = 1_000_000


class _AliasBomb(yaml.YAMLError):
    pass


def expanded_size(root) -> int:
    """How many YAML nodes the composed document holds with every alias expanded (a node an
    alias repeats counts each time), computed once per distinct node."""
    sizes: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children = ([c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else [])
        if done:
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


#: libyaml's parser when PyYAML has it (about 50x faster on a large spec), else PyYAML's own;
#: both with SafeLoader's constructor: plain data only
_SafeBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SpecLoader(_SafeBase):
    """A safe YAML loader (plain data only, never code) that refuses duplicate keys, which
    PyYAML would otherwise silently resolve to the last value, and alias bombs."""

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            size = expanded_size(node)
            if size > MAX_EXPANDED_VALUES:
                raise _AliasBomb(f"its aliases (*name) expand to {size:,} values, more than "
                                 f"{MAX_EXPANDED_VALUES:,} (an alias bomb?); write the values "
                                 f"out, or use fewer aliases")
        return node

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                dup = key in seen
            except TypeError:  # an unhashable key: construct_mapping reports it
                break
            if dup:
                raise _DuplicateKey(f"line {key_node.start_mark.line + 1}: duplicate key {key!r} "
                                   f"(first at line {seen[key] + 1}); keep one")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _json_pairs(pairs):
    keys = [k for k, _ in pairs]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup is not None:
        raise ValueError(f"duplicate key {dup!r}; keep one")
    return dict(pairs)


def _json_loads(text: str):
    """json.loads refusing duplicate keys (ValueError), as the YAML loader does."""
    return json.loads(text, object_pairs_hook=_json_pairs)


def _parse(text: str, where: str, fmt: str) -> object:
    try:
        if fmt == "json":
            return _json_loads(text)
        return yaml.load(text, Loader=_SpecLoader)  # a SafeLoader: plain data only
    except RecursionError:
        raise SpecError(f"{where}: nested too deeply to be a spec") from None
    except ValueError as e:
        raise SpecError(f"{where}: not valid JSON: {e}") from None
    except (_DuplicateKey, _AliasBomb) as e:
        raise SpecError(f"{where}: {e}") from None
    except yaml.YAMLError as e:
        # One line: the problem and where (PyYAML's own text spans several, with a caret).
        detail = getattr(e, "problem", None) or str(e).splitlines()[0]
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            detail += f" (line {mark.line + 1}, column {mark.column + 1})"
        context, start = getattr(e, "context", None), getattr(e, "context_mark", None)
        if context and start is not None:  # where the construct it was reading began
            detail += f" {context} begun at line {start.line + 1}, column {start.column + 1}"
        raise SpecError(f"{where}: not valid YAML (plain data only: tags such as !!python/... "
                        f"are refused): {detail}") from None


def check_extension(path: str) -> str:
    """The lower-case extension of a spec path; SpecError unless it is .yaml, .yml or .json."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in EXTENSIONS:
        raise SpecError(f"{path}: unknown spec extension '{ext}'; use {', '.join(EXTENSIONS)}")
    return ext


def read_file(path) -> dict:
    """The top-level mapping of a .yaml/.yml or .json spec file."""
    path = os.fspath(path)
    ext = check_extension(path)
    raw = read_bounded(path, MAX_SPEC_BYTES, SpecError, "spec file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset "
                        f"{e.start}); save the spec as UTF-8") from None
    return top_level(_parse(text, path, "json" if ext == ".json" else "yaml"))


def read(source) -> dict:
    """The top-level mapping of a spec given as a path, a YAML/JSON string or a dict."""
    if isinstance(source, dict):
        return source
    if isinstance(source, os.PathLike):
        return read_file(source)
    if not isinstance(source, str):
        raise SpecError(f"spec: expected a file path, a YAML/JSON string or a dict, "
                        f"got {type(source).__name__}")
    one_line = "\n" not in source
    if one_line and (source.lower().endswith(EXTENSIONS) or os.path.isfile(source)):
        return read_file(source)
    if source.lstrip().startswith(("{", "[")):
        # JSON first: YAML 1.1 would read JSON's 1e-05 as a string.
        try:
            return top_level(_json_loads(source))
        except RecursionError:
            raise SpecError("spec text: nested too deeply to be a spec") from None
        except ValueError:
            pass
    return top_level(_parse(source, "spec text", "yaml"))


def top_level(data) -> dict:
    if not isinstance(data, dict):
        raise SpecError(f"spec: the top level must be a mapping with 'layers' or 'nodes', "
                        f"got {type(data).__name__} {data!r:.60}")
    return data
