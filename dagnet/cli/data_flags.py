"""The data flags that `dagnet train` and `dagnet show-batch` share: preprocessing and
augmentation (each remembered as given, for `dagnet train --resume`: see cli/resume.py)."""
from __future__ import annotations

from dagnet.cli.common import UsageError
from dagnet.cli.resume import Given
from dagnet.errors import DatasetError

FLAGS = ("crop", "translate", "flip", "erase", "cutout")


def add_arguments(parser) -> None:
    parser.add_argument("--preprocessing", action=Given, default="channel",
                        choices=["channel", "mean_image", "none"],
                        help="standardise with the training set's per-channel mean and std, "
                             "subtract its mean image, or neither (default: %(default)s)")
    g = parser.add_argument_group("augmentation (training batches only; seeded per step)")
    g.add_argument("--crop", action=Given, type=int, default=None, metavar="PAD",
                   help="pad PAD zero pixels on each side, crop back at a random offset")
    g.add_argument("--translate", action=Given, type=float, default=None, metavar="PIXELS",
                   help="shift by up to PIXELS (real, bilinear) along each axis")
    g.add_argument("--flip", action=Given, nargs=0, const=True, default=None,
                   help="mirror left-right with probability 1/2")
    g.add_argument("--erase", action=Given, type=float, default=None, metavar="P",
                   help="random erasing: with probability P a rectangle of noise")
    g.add_argument("--cutout", action=Given, type=int, default=None, metavar="SIZE",
                   help="zero a SIZE x SIZE square at a random place")


def from_args(args, base: dict | None = None):
    """The Augment of the flags given, over `base` (a recipe's augment: settings)."""
    from dagnet.data.augment import Augment

    settings = dict(base or {})
    settings.update({k: getattr(args, k) for k in FLAGS if getattr(args, k, None) is not None})
    try:
        return Augment.from_dict(settings, "augmentation")
    except DatasetError as e:
        flag = str(e).split(":")[0].rpartition(".")[2]
        raise UsageError(f"--{flag}: {str(e).split(': ', 1)[1]}") from None
