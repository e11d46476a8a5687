"""python -m tests.reliability.attack [-k WORD] [--area AREA] [--json FILE]"""
from __future__ import annotations

import argparse
import json
import sys

from tests.reliability.attack.run import run_all


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.reliability.attack")
    p.add_argument("-k", default="", help="only cases whose id holds this")
    p.add_argument("--area", default="", help="only this area (resume, folder, cli, api, bounds)")
    p.add_argument("--json", help="also write every result to this file")
    args = p.parse_args(argv)
    results, counts = run_all(args.k, args.area, progress=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"counts": counts, "results": [r.__dict__ for r in results]}, f, indent=1)
    print(json.dumps(counts))
    bad = counts["traceback"] + counts["silent"] + counts["hang"] + counts["lost"] + counts["blowup"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
