"""One self-contained HTML page: the explorer's styles and scripts (viz/html/assets, no
library) and the data as JSON, inline. A Content-Security-Policy forbids every request, so the
page works offline and nothing in it can leak to a network.

    page(data, title) -> str
"""
from __future__ import annotations

import html
import json
import os
from functools import lru_cache

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
#: the scripts in the order they are concatenated (later ones call the earlier ones)
SCRIPTS = ("util.js", "layout.js", "view.js", "panzoom.js", "memory.js", "details.js", "passes.js",
           "training.js", "app.js")
#: inline scripts and styles only; no connections, frames, fonts or images from anywhere
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'")


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    with open(os.path.join(ASSETS, name), encoding="utf-8") as f:
        return f.read()


def script() -> str:
    """Every script in one strict-mode closure (nothing leaks into the page's globals but
    window.__dagnet, which the tests and a curious user read)."""
    body = "\n".join(f"// ---- {name}\n{asset(name)}" for name in SCRIPTS)
    return f'(function () {{\n"use strict";\n{body}\n}})();'


def embed_json(data) -> str:
    """JSON safe inside <script type="application/json">: no '</' can end the element."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(data: dict, title: str) -> str:
    """The whole HTML document."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<meta name=\"generator\" content=\"dagnet\">\n<title>{html.escape(title)}</title>\n"
        f"<style>\n{asset('explorer.css')}</style>\n</head>\n<body>\n<div id=\"app\"></div>\n"
        f"<script type=\"application/json\" id=\"dagnet-data\">{embed_json(data)}</script>\n"
        f"<script>\n{script()}\n</script>\n</body>\n</html>\n")
