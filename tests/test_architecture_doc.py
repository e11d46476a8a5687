"""docs/architecture.md stays true of the code: every module is in its layout tables, its
meta-key table is compiler/meta.py's, and every repository path it names exists."""
import pathlib
import re

from dagnet.compiler import meta

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
SOURCES = ("*.py", "*.pyx", "*.pxd", "*.h")


def modules():
    for top in ("dagnet", "compiler", "models", "viz"):
        for pattern in SOURCES:
            for path in (ROOT / top).rglob(pattern):
                rel = path.relative_to(ROOT).as_posix()
                if "__pycache__" not in rel and "/assets/" not in rel:
                    yield rel


def test_every_module_is_listed():
    text = DOC.read_text()
    named = set(re.findall(r"`([\w/.*]+)`", text))
    missing = []
    for rel in modules():
        name = rel.rsplit("/", 1)[-1]
        # the kernels share one row that names each file
        if rel not in named and not (rel.startswith("dagnet/_kernels/") and f"`{name}`" in text):
            missing.append(rel)
    assert not missing, f"docs/architecture.md does not list: {missing}"


def test_meta_table_is_generated_from_compiler_meta():
    text = DOC.read_text()
    table = text.split("<!-- meta-table:begin -->\n")[1].split("\n<!-- meta-table:end -->")[0]
    assert table == meta.table(), "regenerate the table: python -c 'from dagnet.compiler import meta; print(meta.table())'"


def test_every_named_path_exists():
    text = DOC.read_text()
    paths = {p for p in re.findall(r"`((?:dagnet|compiler|models|viz|tests|docs|benchmarks)/[\w/.<>-]*)`", text)
             if "<" not in p and "*" not in p}
    assert len(paths) > 100
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"
