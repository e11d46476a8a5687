"""A trained network ready for prediction on raw images, with the preprocessing it was trained with.

    model = dagnet.load("runs/lenet")          # see dagnet.saving
    model.predict(images)                       # (N,) class ids
    model.predict_proba(images)                 # (N, K) softmax probabilities

`images` are raw: integer pixels (uint8 0-255), divided by the pixel scale the model was trained
with (255: dagnet's loaders give [0, 1] pixels), or floats already on that scale ([0, 1]);
(N, C, H, W), (N, H, W) for one channel, (N, H, W, C) channel-last, or one image without the
batch axis. The run's normalisation (data.json) is applied here, never by the caller.
"""
from __future__ import annotations

import numpy as np

from dagnet.data.preprocess import normalize
from dagnet.errors import FeedError
from dagnet.train.evaluate import evaluate_arrays


class Model:
    """An eval-mode plan plus its preprocessing: pixel scale, normalisation stats, class names.

    plan: a compiled plan (dagnet.compile) with one float input; normalization: {"mean", "std"}
    arrays of shape (1, C, 1, 1) or (1, C, H, W) as fit_normalization gives ({} or None: none);
    pixel_scale: what integer pixels are divided by; class_names: one name per class or None."""

    def __init__(self, plan, normalization: dict | None = None, pixel_scale: float = 255.0,
                 class_names=None):
        floats = [n for n, s in plan.input_specs.items() if np.dtype(s["dtype"]).kind == "f"]
        if len(floats) != 1:
            raise FeedError(f"a Model needs a plan with one float input (the images), this one has "
                            f"{floats}")
        self.plan = plan
        self.input_name = floats[0]
        self.input_shape = tuple(plan.input_specs[self.input_name]["shape"])
        self.normalization = {k: np.asarray(v, dtype=plan.dtype) for k, v in (normalization or {}).items()}
        self.pixel_scale = float(pixel_scale)
        self.class_names = list(class_names) if class_names is not None else None

    @property
    def num_classes(self) -> int:
        """K: the length of a score vector."""
        return int(self.plan.graph.node(self.plan.scores_name).meta["shape"][-1])

    @property
    def name(self) -> str:
        return self.plan.source.name

    def preprocess(self, images) -> np.ndarray:
        """Raw images -> the normalised float batch the plan takes: (N, *input_shape)."""
        x = np.asarray(images)
        if x.dtype == bool or x.dtype.kind not in "uif":
            raise FeedError(f"images must be numbers (uint8 pixels or floats), got dtype {x.dtype}")
        x = self._batched(x)
        if x.dtype.kind in "ui":
            x = np.divide(x, self.pixel_scale, dtype=self.plan.dtype)
        else:
            self._check_float_range(x)
            x = x.astype(self.plan.dtype)  # a copy: normalising never touches the caller's array
        if self.normalization:
            x = normalize(x, self.normalization)
        return x

    def _batched(self, x: np.ndarray) -> np.ndarray:
        """(N, *input_shape) from a batch or one image, with or without the channel axis,
        channel-first or channel-last."""
        shape = self.input_shape
        forms = [(shape, None)]
        if len(shape) == 3:
            c, h, w = shape
            if c == 1:
                forms.append(((h, w), lambda a: a[:, None]))
            forms.append(((h, w, c), lambda a: a.transpose(0, 3, 1, 2)))
        for per_image, to_chw in forms:
            if x.shape[1:] == per_image:
                batch = x
            elif x.shape == per_image:
                batch = x[None]
            else:
                continue
            return np.ascontiguousarray(to_chw(batch)) if to_chw else batch
        accepted = [f"(N, {', '.join(map(str, form))})" for form, _ in forms]
        raise FeedError(f"images of shape {x.shape} do not fit the model's input {shape}: pass "
                        f"{' or '.join(accepted)}, or one image without N")

    def _check_float_range(self, x: np.ndarray) -> None:
        if x.size == 0:
            return
        top = 255.0 / self.pixel_scale
        lo, hi = float(np.min(x)), float(np.max(x))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise FeedError("images hold NaN or Inf")
        if lo < -1e-6 * top or hi > top * (1 + 1e-6):
            raise FeedError(f"float images must be raw pixels in [0, {top:g}] (the scale the model "
                            f"was trained on); these span [{lo:.3g}, {hi:.3g}]: pass uint8 pixels, "
                            f"or the images before any normalisation (the model applies its own)")

    def scores(self, images, batch_size: int = 256) -> np.ndarray:
        """Raw class scores (logits) of raw images: (N, K)."""
        return self.plan.predict(self.preprocess(images), batch_size=batch_size)

    def predict_proba(self, images, batch_size: int = 256) -> np.ndarray:
        """Softmax probabilities of raw images: (N, K), rows sum to 1."""
        s = self.scores(images, batch_size).astype(np.float64)
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(self.plan.dtype)

    def predict(self, images, batch_size: int = 256) -> np.ndarray:
        """The most probable class id of each raw image: (N,) int64."""
        return self.scores(images, batch_size).argmax(axis=1).astype(np.int64)

    def evaluate(self, images, labels, batch_size: int = 256, top_k: int | None = None) -> dict:
        """{"loss", "accuracy", "confusion", ("top_k_accuracy")} on raw images and labels (N,)."""
        return evaluate_arrays(self.plan, self.preprocess(images), np.asarray(labels),
                               batch_size=batch_size, top_k=top_k)

    def __repr__(self) -> str:
        params = sum(p.size for p in self.plan.params.values())
        norm = "/".join(sorted(self.normalization)) or "none"
        return (f"Model({self.name}: {self.input_shape} -> {self.num_classes} classes, "
                f"{params:,} params, pixels / {self.pixel_scale:g}, normalisation {norm})")
