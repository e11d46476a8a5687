"""dagnet in one script: declare LeNet, render it, compile it, look at the plan and its fusions,
train briefly, plot the curves and LeNet's feature maps.

    .venv/bin/python docs/quickstart.py                  # Fashion-MNIST, pictures into runs/quickstart/
    .venv/bin/python docs/quickstart.py --data mnist:DIR --train 2000 --out /tmp/qs
    .venv/bin/python docs/quickstart.py --out docs/quickstart   # regenerate the README's pictures

The pictures go to an untracked folder (runs/ is gitignored) unless --out says otherwise, so
running the tour never rewrites the tracked pictures the README links.
"""
import argparse
import os

import dagnet  # before numpy: it tunes OpenBLAS's threads (dagnet/procenv.py)
import numpy as np

from dagnet import viz
from dagnet.data.idx import load_mnist_like
from dagnet.data.preprocess import fit_normalization, normalize
from dagnet.train import Solver

DEFAULT_OUT = os.path.join("runs", "quickstart")  # like `dagnet train`'s runs/MODEL; runs/ is gitignored


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion-mnist", help="fashion-mnist, or mnist:DIR / fashion-mnist:DIR")
    ap.add_argument("--train", type=int, default=10000, help="training examples to use")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", default=DEFAULT_OUT,
                    help=f"folder for the pictures (default: {DEFAULT_OUT}, untracked; docs/quickstart "
                         f"holds the README's)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    out = lambda name: os.path.join(args.out, name)  # noqa: E731

    # 1. Declare LeNet as a graph: every builder call checks shapes at once.
    g = dagnet.Graph("lenet")
    x = g.input("x", (1, 28, 28))
    y = g.input("y", (), dtype="int64")
    h = g.max_pool2d(g.relu(g.conv2d(x, filters=20, size=5, name="conv1"), name="relu1"), 2, name="pool1")
    h = g.max_pool2d(g.relu(g.conv2d(h, filters=50, size=5, name="conv2"), name="relu2"), 2, name="pool2")
    h = g.relu(g.affine(h, 500, name="fc1"), name="relu3")
    g.softmax_cross_entropy(g.affine(h, 10, name="fc2"), y)
    viz.render_graph(g, out("graph.png"))

    # 2. Compile: conv-relu-pool and affine-relu chains fuse into single kernel calls.
    plan = dagnet.compile(g, seed=0)
    print(plan.describe())
    print(plan.fusion_report())
    viz.render_plan(plan, out("plan.png"), show_backward=True)
    viz.plot_memory(plan, out("memory.png"))

    # 3. Train briefly on real data, standardised with the training statistics.
    kind, _, directory = args.data.partition(":")
    raw = load_mnist_like(directory or None, kind)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(raw["X_train"]))[:args.train]
    X, ys = raw["X_train"][idx], raw["y_train"][idx]
    n_val = max(1, len(X) // 10)
    stats = fit_normalization(X[n_val:], "channel")
    data = {"X_train": normalize(X[n_val:], stats), "y_train": ys[n_val:],
            "X_val": normalize(X[:n_val], stats), "y_val": ys[:n_val]}
    solver = Solver(plan, data, update_rule="sgd_momentum", optim_config={"learning_rate": 1e-2},
                    batch_size=64, num_epochs=args.epochs, verbose=True)
    solver.train()
    X_test = normalize(raw["X_test"], stats)
    acc = np.mean(plan.predict(X_test).argmax(axis=1) == raw["y_test"])
    print(f"test accuracy {acc:.4f}")

    # 4. Look at what it learned: curves, the first layer's filters, feature maps of one image.
    viz.plot_history(solver.history(), out("curves.png"))
    viz.plot_filters(plan.params["conv1.w"], out("filters.png"), title="conv1 filters")
    image = f"test image 0 (label {raw['y_test'][0]})"
    for node in ("conv1", "pool1"):
        maps = viz.feature_maps(plan, X_test[0], node)
        viz.plot_feature_maps(maps, out(f"maps_{node}.png"), title=f"{node} of test image 0",
                              image=X_test[0], image_title=image)
    print(f"pictures in {args.out}")
    return acc


if __name__ == "__main__":
    main()
