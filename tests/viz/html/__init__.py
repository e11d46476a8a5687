"""Pages of the explorer and what they are made of (the graphs come from tests.viz)."""
from __future__ import annotations

import json
import re

from dagnet import Graph


def chain(blocks: int = 500, width: int = 16) -> Graph:
    """A chain of `blocks` affine + relu pairs (2 * blocks op nodes) and a loss."""
    g = Graph("chain")
    h = g.input("x", (width,))
    for i in range(blocks):
        h = g.relu(g.affine(h, width, name=f"l{i}.fc"), name=f"l{i}.relu")
    g.softmax_cross_entropy(h, g.input("y", (), dtype="int64"), name="loss")
    return g


def page_data(html: str) -> dict:
    """The JSON a page carries in <script id="dagnet-data">."""
    m = re.search(r'<script type="application/json" id="dagnet-data">(.*?)</script>', html, re.S)
    assert m, "the page carries no data"
    return json.loads(m.group(1))


def replay(frames: list) -> list[list[str]]:
    """The node names (no params) of every frame of a film strip, its deltas applied."""
    names = [[n["name"] for n in frames[0]["nodes"]]]
    for d in frames[1:]:
        gone = set(d["removed"])
        names.append(d.get("order") or [v for v in names[-1] if v not in gone])
    return names


def history(epochs: int = 3, per_epoch: int = 20) -> dict:
    """A made-up Solver.history() whose loss falls and accuracies rise."""
    import numpy as np

    t = np.arange(epochs * per_epoch)
    loss = (2.3 * np.exp(-t / per_epoch) + 0.3 + 0.05 * np.sin(t)).tolist()
    acc = [0.6 + 0.3 * (1 - np.exp(-e)) for e in range(1, epochs + 1)]
    return {"loss_history": loss, "train_acc_history": acc, "val_acc_history": [a - 0.02 for a in acc],
            "epoch_times": [4.0] * epochs, "best_val_acc": acc[-1] - 0.02, "epoch": epochs}
