"""How well a plan classifies: mean cross-entropy, accuracy, top-k accuracy and the confusion
matrix of its eval-mode scores, computed in batches.

    r = evaluate_arrays(plan, X_test, y_test, top_k=5)
    r["accuracy"], r["top_k_accuracy"], r["confusion"]      # confusion: (K, K) counts
    print(confusion_table(r["confusion"], class_names))
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import DagnetError, DatasetError
from dagnet.train import checks


def evaluate_arrays(plan, X: np.ndarray, y: np.ndarray, batch_size: int = 256,
                    top_k: int | None = None) -> dict:
    """{"loss": mean softmax cross-entropy, "accuracy": fraction correct, "confusion": (K, K)
    counts (rows: true class, columns: predicted)}, plus "top_k_accuracy" (the fraction whose
    label is among the top_k scores) when top_k is given. X (N, ...), y (N,)."""
    checks.count("batch_size", batch_size, owner="evaluate_arrays")
    checks.check_examples("evaluate_arrays", X, y)
    if len(X) == 0:
        raise DatasetError("cannot evaluate on an empty dataset")
    return evaluate_scores(plan.predict(X, batch_size=batch_size), y, top_k)


def evaluate_scores(scores: np.ndarray, y: np.ndarray, top_k: int | None = None) -> dict:
    """evaluate_arrays on given class scores (N, K) and labels (N,)."""
    scores = np.asarray(scores, dtype=np.float64)
    y = _checked_labels(y, scores)
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    pred = scores.argmax(axis=1)
    result = {"loss": float(-log_probs[np.arange(len(y)), y].mean()),
              "accuracy": float(np.mean(pred == y)),
              "confusion": confusion_matrix(y, pred, scores.shape[1])}
    if top_k is not None:
        result["top_k"] = int(top_k)
        result["top_k_accuracy"] = top_k_accuracy(scores, y, top_k)
    return result


def _checked_labels(y, scores: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if scores.ndim != 2 or y.shape != scores.shape[:1]:
        raise DatasetError(f"labels of shape {y.shape} do not match scores of shape {scores.shape}: "
                           f"give one class id per example")
    if y.size and (y.dtype.kind not in "ui" or y.min() < 0 or y.max() >= scores.shape[1]):
        raise DatasetError(f"labels must be class ids in 0..{scores.shape[1] - 1} (the model has "
                           f"{scores.shape[1]} classes), got {y.dtype} in [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def top_k_accuracy(scores: np.ndarray, y: np.ndarray, k: int) -> float:
    """The fraction of examples whose label is among their k highest scores. scores (N, K)."""
    num_classes = scores.shape[1]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= num_classes:
        raise DagnetError(f"top_k must be an integer in 1..{num_classes} (the number of classes), "
                          f"got {k!r}")
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float(np.mean((top == np.asarray(y)[:, None]).any(axis=1)))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts: entry [i, j] is how many examples of class i were predicted as j."""
    flat = np.asarray(y_true, dtype=np.int64) * num_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def confusion_table(matrix: np.ndarray, class_names=None) -> str:
    """The confusion matrix as text: one row per true class with its recall, a last row with
    each predicted class's precision."""
    m = np.asarray(matrix)
    k = len(m)
    labels = [f"{i} {class_names[i]}" if class_names else str(i) for i in range(k)]
    label_w = max(len("precision"), *(len(s) for s in labels))
    w = max(6, len(str(int(m.max(initial=0)))) + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.diag(m) / m.sum(axis=1)
        precision = np.diag(m) / m.sum(axis=0)
    corner = "true \\ predicted"
    label_w = max(label_w, len(corner))
    lines = [f"{corner:<{label_w}}" + "".join(f"{j:>{w}}" for j in range(k)) + "  recall"]
    for i in range(k):
        lines.append(f"{labels[i]:<{label_w}}" + "".join(f"{int(c):>{w}}" for c in m[i])
                     + f"  {_fraction(recall[i])}")
    lines.append(f"{'precision':<{label_w}}" + "".join(f"{_fraction(p):>{w}}" for p in precision))
    return "\n".join(lines)


def _fraction(x: float) -> str:
    """x to 3 decimals; '-' where it is undefined (0 / 0: a class never seen or predicted)."""
    return f"{x:.3f}" if np.isfinite(x) else "-"
