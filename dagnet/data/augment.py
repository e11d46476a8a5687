"""Data augmentation: a seeded stage of the batch iterator that transforms a batch of images.

    aug = Augment(crop=2, flip=True, erase=0.5)
    xb = aug(xb, augment_rng(seed, step))        # xb: (N, C, H, W) -> a new (N, C, H, W) array
    Solver(plan, data, augment=aug, ...)         # every training batch, a fresh draw per step

Transforms, applied in this order, each drawn independently per image:
    crop=P       pad P pixels on every side, crop H x W back at a random offset (the CIFAR
                 recipe): a shift by whole pixels, at most P
    translate=T  shift by a uniform real offset in [-T, T] pixels along each axis, bilinear:
                 smooth, sub-pixel shifts
    (both repeat the border pixels into the space that opens, as Keras's fill_mode="nearest":
    a dark background stays dark, where zeros - the mean after standardisation - would draw
    a grey frame)
    flip         mirror left-right with probability 1/2
    erase=p      random erasing (Zhong et al. 2017): with probability p a rectangle of 2% to
                 33% of the image, aspect ratio 0.3 to 3.3, filled with N(0, 1) noise
    cutout=S     cutout (DeVries & Taylor 2017): an S x S square, centre anywhere in the image
                 (clipped at its border), set to zero, on every image

The generator of step t is augment_rng(seed, t), a pure function of the two: a resumed run
draws exactly what an uninterrupted one does, and switching augmentation on or off leaves
the batch order unchanged. Validation and test batches are never augmented.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from dagnet.errors import DatasetError

#: mixed into every augmentation seed, so that the augmentation stream never coincides with
#: the batch-order or init streams of the same seed
_STREAM = 0x617567  # "aug"
ERASE_AREA = (0.02, 1 / 3)
ERASE_ASPECT = (0.3, 1 / 0.3)


def augment_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of global step `step`'s augmentation: a pure function of (seed, step)."""
    return np.random.default_rng((_STREAM, int(seed), int(step)))


def augment_key(augment) -> dict | str | None:
    """What a checkpoint records of a run's augmentation (resuming with another refuses):
    an Augment's settings, another callable's name, None for none."""
    if not augment:
        return None
    if isinstance(augment, Augment):
        return augment.to_dict()
    return getattr(augment, "__qualname__", type(augment).__qualname__)


@dataclass(frozen=True)
class Augment:
    """A pipeline of seeded image transforms; Augment() does nothing (bool(Augment()) is False)."""

    crop: int = 0
    translate: float = 0.0
    flip: bool = False
    erase: float = 0.0
    cutout: int = 0

    def __post_init__(self):
        check(self.to_dict())

    def __bool__(self) -> bool:
        return any(v for v in self.to_dict().values())

    def to_dict(self) -> dict:
        """{"crop": ..., ...}: the JSON form from_dict and the recipe's augment: take."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "augment") -> "Augment":
        """An Augment from {"crop": 2, "flip": true, ...}; DatasetError naming `where`."""
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise DatasetError(f"{where}: must be a mapping such as {{crop: 2, flip: true}}, got {d!r}")
        check(d, where)
        return cls(**d)

    def describe(self) -> str:
        parts = [f"crop {self.crop}" if self.crop else "", f"translate {self.translate:g}"
                 if self.translate else "", "flip" if self.flip else "",
                 f"erase {self.erase:g}" if self.erase else "", f"cutout {self.cutout}" if self.cutout else ""]
        return ", ".join(p for p in parts if p) or "none"

    def __call__(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The batch X (N, C, H, W) transformed; X itself is never modified."""
        if X.ndim != 4:
            raise DatasetError(f"augmentation works on images (N, C, H, W), got shape {X.shape}; "
                               f"switch augmentation off for this data")
        out = np.array(X, copy=True)
        n, _, h, w = out.shape
        if self.crop:
            out = _random_crop(out, self.crop, rng)
        if self.translate:
            out = _translate(out, rng.uniform(-self.translate, self.translate, (n, 2)))
        if self.flip:
            mirror = rng.random(n) < 0.5
            out[mirror] = out[mirror, :, :, ::-1]
        if self.erase:
            _random_erase(out, self.erase, rng)
        if self.cutout:
            centres = rng.integers(0, (h, w), size=(n, 2))
            for i, (cy, cx) in enumerate(centres):
                half = self.cutout // 2
                out[i, :, max(cy - half, 0):cy - half + self.cutout,
                    max(cx - half, 0):cx - half + self.cutout] = 0
        return out


def check(d: dict, where: str = "augment") -> None:
    """DatasetError naming where.key for unknown keys and values out of range."""
    fields = {f.name for f in dataclasses.fields(Augment)}
    unknown = sorted(set(d) - fields)
    if unknown:
        raise DatasetError(f"{where}: unknown key(s) {', '.join(unknown)}; augmentation takes "
                           f"{', '.join(sorted(fields))}")
    rules = {"crop": (int, 0, None, "an integer >= 0 (pixels of padding)"),
             "cutout": (int, 0, None, "an integer >= 0 (the square's side in pixels)"),
             "translate": ((int, float), 0, None, "a number >= 0 (pixels)"),
             "erase": ((int, float), 0, 1, "a probability in [0, 1]"),
             "flip": (bool, None, None, "true or false")}
    for key, value in d.items():
        kind, low, high, want = rules[key]
        ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        ok = ok and (low is None or value >= low) and (high is None or value <= high)
        if not ok or (isinstance(value, float) and not math.isfinite(value)):
            raise DatasetError(f"{where}.{key}: must be {want}, got {value!r}")


def _random_crop(X: np.ndarray, pad: int, rng) -> np.ndarray:
    n, _, h, w = X.shape
    padded = np.pad(X, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="edge")
    offsets = rng.integers(0, 2 * pad + 1, size=(n, 2))
    return np.stack([padded[i, :, oy:oy + h, ox:ox + w] for i, (oy, ox) in enumerate(offsets)])


def _shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """image (C, H, W) moved down dy and right dx whole pixels, the border repeated in."""
    _, h, w = image.shape
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return image[:, rows[:, None], cols[None, :]]


def _translate(X: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Each image moved by its real (dy, dx): bilinear between the four whole-pixel shifts."""
    out = np.empty_like(X)
    for i, (dy, dx) in enumerate(offsets):
        y0, x0 = math.floor(dy), math.floor(dx)
        fy, fx = dy - y0, dx - x0
        out[i] = ((1 - fy) * (1 - fx) * _shift(X[i], y0, x0) + (1 - fy) * fx * _shift(X[i], y0, x0 + 1)
                  + fy * (1 - fx) * _shift(X[i], y0 + 1, x0) + fy * fx * _shift(X[i], y0 + 1, x0 + 1))
    return out


def _random_erase(X: np.ndarray, p: float, rng) -> None:
    """In place: with probability p per image, a random rectangle of N(0, 1) noise."""
    n, c, h, w = X.shape
    hit = rng.random(n) < p
    area = rng.uniform(*ERASE_AREA, n) * h * w
    aspect = np.exp(rng.uniform(*np.log(ERASE_ASPECT), n))
    eh = np.clip(np.round(np.sqrt(area * aspect)), 1, h).astype(int)
    ew = np.clip(np.round(np.sqrt(area / aspect)), 1, w).astype(int)
    top = (rng.random(n) * (h - eh + 1)).astype(int)
    left = (rng.random(n) * (w - ew + 1)).astype(int)
    for i in np.flatnonzero(hit):
        patch = rng.standard_normal((c, eh[i], ew[i]))
        X[i, :, top[i]:top[i] + eh[i], left[i]:left[i] + ew[i]] = patch
