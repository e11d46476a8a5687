"""`dagnet predict`: the classes (and their probabilities) a trained run gives new images.

The images are raw (uint8 pixels or floats in [0, 1]) in a .npy file or an IDX file such as
t10k-images-idx3-ubyte[.gz]; the run's own preprocessing is applied (dagnet.inference).
"""
from __future__ import annotations

import csv
import json
import os

import numpy as np

from dagnet.cli.common import UsageError, at_least
from dagnet.errors import DatasetError


def cmd_predict(args) -> int:
    from dagnet.saving import load

    if args.output and not args.output.endswith((".csv", ".json")):
        raise UsageError(f"-o {args.output}: write predictions to a .csv or a .json file")
    model = load(args.run_dir)
    images = read_images(args.images)
    if args.top > model.num_classes:
        raise UsageError(f"--top must be at most the number of classes ({model.num_classes}), "
                         f"got {args.top}")
    probs = model.predict_proba(images, batch_size=args.batch_size)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :args.top]
    rows = [[(int(c), float(p[c])) for c in t] for p, t in zip(probs, top)]
    names = model.class_names
    if args.output:
        write_predictions(args.output, rows, names)
        print(f"wrote {len(rows):,} predictions to {args.output}")
    else:
        print_predictions(rows, names)
    return 0


def read_images(path: str) -> np.ndarray:
    """The array in a .npy file or an IDX file (raw or gzipped)."""
    from dagnet.data.idx import read_idx

    if not os.path.isfile(path):
        raise UsageError(f"images file not found: {path}")
    if not path.endswith(".npy"):
        return read_idx(path)
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:  # pickled objects, or not an .npy file at all
        raise DatasetError(f"{path} is not a numeric .npy array ({e}); save the images with "
                           f"np.save(path, images) as uint8 or float") from None


def _label(c: int, names) -> str:
    return f"{c} {names[c]}" if names else str(c)


def print_predictions(rows, names) -> None:
    """One line per image: its top classes, most probable first, each with its probability."""
    cells = [[f"{_label(c, names)} {p:.4f}" for c, p in row] for row in rows]
    width = max(len(c) for row in cells for c in row) + 3
    k = len(rows[0]) if rows else 1
    head = ["class probability"] if k == 1 else [f"top {i + 1}" for i in range(k)]
    print(f"{'image':>6s}   " + "".join(f"{h:{width}s}" for h in head).rstrip())
    for i, row in enumerate(cells):
        print(f"{i:6d}   " + "".join(f"{c:{width}s}" for c in row).rstrip())


def write_predictions(path: str, rows, names) -> None:
    """A .csv (image, class_1, [name_1,] probability_1, ...) or .json list of records."""
    k = len(rows[0]) if rows else 1
    try:
        if path.endswith(".json"):
            records = []
            for i, row in enumerate(rows):
                top = [{"class": c, **({"name": names[c]} if names else {}), "probability": p}
                       for c, p in row]
                records.append({"image": i, **top[0], **({"top": top} if k > 1 else {})})
            with open(path, "w") as f:
                json.dump(records, f)
        elif path.endswith(".csv"):
            with open(path, "w", newline="") as f:
                out = csv.writer(f)
                out.writerow(["image"] + [col for r in range(1, k + 1) for col in
                                          ([f"class_{r}"] + ([f"name_{r}"] if names else [])
                                           + [f"probability_{r}"])])
                for i, row in enumerate(rows):
                    out.writerow([i] + [v for c, p in row for v in
                                        ([c] + ([names[c]] if names else []) + [f"{p:.6g}"])])
        else:
            raise UsageError(f"-o {path}: write predictions to a .csv or a .json file")
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}") from None


def register(sub) -> None:
    """Add this module's commands to the `dagnet` parser."""
    p = sub.add_parser("predict", help="classes and probabilities of a trained run for new images")
    p.add_argument("run_dir", help="a run directory written by `dagnet train` or dagnet.save")
    p.add_argument("images", help="raw images (uint8 0-255 or float 0-1; (N, H, W), (N, C, H, W) "
                   "or (N, H, W, C)) in a .npy file or an IDX file (e.g. t10k-images-idx3-ubyte.gz)")
    p.add_argument("--top", type=at_least(1), default=1, metavar="K",
                   help="the K most probable classes of each image")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the predictions to FILE (.csv or .json) instead of printing them")
    p.add_argument("--batch-size", type=at_least(1), default=256, help="images per forward pass")
    p.set_defaults(func=cmd_predict)
