"""The autodiff pictures of the README: the course's classic exercise
y = (exp(x1) * sin(x2) + x1 * x2, sigmoid(x1 * x2)) at x1 = 1.5, x2 = 0.5, by forward mode
(tangents d/dx1 along the edges) and by reverse mode (adjoints of y1 flowing back).

    python docs/autodiff.py --out docs/autodiff
"""
import argparse
import os

import dagnet  # before numpy: it tunes OpenBLAS's threads (dagnet/procenv.py)
from dagnet import Graph
from dagnet.viz import render_autodiff


def classic() -> Graph:
    g = Graph("classic")
    x1 = g.input("x1", (), batched=False)
    x2 = g.input("x2", (), batched=False)
    p = g.mul(x1, x2, name="p")
    y1 = g.add(g.mul(g.exp(x1, name="e"), g.sin(x2, name="s"), name="es"), p, name="y1")
    g.outputs = [y1, g.sigmoid(p, name="y2")]
    return g


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for the PNGs")
    args = ap.parse_args(argv)
    feeds = {"x1": 1.5, "x2": 0.5}
    J = dagnet.jacobian(classic(), feeds, of=["y1"], wrt=["x1", "x2"])
    print(f"dy1/dx1 = {J['y1']['x1']:.4f}, dy1/dx2 = {J['y1']['x2']:.4f} (reverse mode)")
    for mode, kw in (("forward", {"wrt": "x1"}), ("reverse", {"of": "y1"})):
        path = os.path.join(args.out, f"{mode}.png")
        render_autodiff(classic(), feeds, mode, path=path, **kw)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
