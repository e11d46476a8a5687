"""`dagnet show-batch`: a grid of training examples as the augmentation draws them."""
from __future__ import annotations

import numpy as np

from dagnet.cli import data_flags
from dagnet.cli.common import DATA_HELP, UsageError, at_least, load_data
from dagnet.cli.outputs import output_file


def cmd_show_batch(args) -> int:
    from dagnet.data.augment import augment_rng
    from dagnet.data.preprocess import batch_indices
    from dagnet.viz.augment import plot_augmented

    if args.count < 1 or args.draws < 1:
        raise UsageError("--count and --draws must be >= 1")
    output_file(args.output)
    augment = data_flags.from_args(args)
    data, info = load_data(args.data, args.val, args.seed, args.preprocessing)
    X, y = data["X_train"], data["y_train"]
    # the first examples of the first training batch, in the order the Solver draws them
    idx = batch_indices(len(X), max(args.count, 1), np.random.default_rng(args.seed))[0][:args.count]
    draws = np.stack([augment(X[idx], augment_rng(args.seed, step)) for step in range(args.draws)])
    stats = {k: np.asarray(v, dtype=np.float32) for k, v in info["normalization"].items()}
    title = (f"augmentation: {augment.describe()} (seed {args.seed}); column 0: the examples, "
             f"then the draws of steps 0..{args.draws - 1}")
    plot_augmented(_unnormalize(X[idx], stats), _unnormalize(draws, stats), args.output, title,
                   labels=[str(c) for c in y[idx]])
    print(f"wrote {args.output}")
    return 0


def _unnormalize(X, stats):
    """Back to pixel values in [0, 1] for display."""
    out = X * stats["std"] if "std" in stats else X
    return np.clip(out + stats.get("mean", 0.0), 0.0, 1.0)


def register(sub) -> None:
    """Add this module's commands to the `dagnet` parser."""
    s = sub.add_parser("show-batch", help="a grid of training examples, each beside several "
                       "draws of the augmentation")
    s.add_argument("--data", default="fashion-mnist", help=DATA_HELP + " (default: %(default)s)")
    s.add_argument("--val", type=at_least(0), default=5000, help="validation examples split off train, "
                   "as for `dagnet train` (default: %(default)s)")
    s.add_argument("--seed", type=at_least(0), default=0, help="as for `dagnet train` (default: %(default)s)")
    s.add_argument("--count", type=int, default=8, help="examples, one per row (default: %(default)s)")
    s.add_argument("--draws", type=int, default=7, help="augmented draws per example "
                   "(default: %(default)s)")
    s.add_argument("-o", "--output", default="batch.png", help="the picture (default: %(default)s)")
    data_flags.add_arguments(s)
    s.set_defaults(func=cmd_show_batch)
