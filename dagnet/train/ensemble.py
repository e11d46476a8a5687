"""Ensembles: the average of several models' class probabilities, and how it scores beside
each member.

    result = evaluate_ensemble([plan_a, plan_b, plan_c], X_test, y_test)
    result["ensemble"]["accuracy"], [m["accuracy"] for m in result["members"]]

Averaging probabilities (not scores, whose scales differ between models) is the ensemble of
the course notes and of Krizhevsky et al.; its loss is the cross-entropy of the averaged
probabilities.
"""
from __future__ import annotations

import numpy as np

from dagnet.errors import DatasetError
from dagnet.train import checks


def probabilities(plan, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Softmax of the plan's eval-mode scores, float64: X (N, ...) -> (N, classes)."""
    scores = plan.predict(X, batch_size=batch_size).astype(np.float64)
    scores -= scores.max(axis=1, keepdims=True)
    p = np.exp(scores)
    return p / p.sum(axis=1, keepdims=True)


def _score(p: np.ndarray, y: np.ndarray) -> dict:
    picked = np.clip(p[np.arange(len(y)), y], 1e-300, None)  # log 0 would be -inf
    return {"loss": float(-np.log(picked).mean()), "accuracy": float(np.mean(p.argmax(axis=1) == y))}


def evaluate_ensemble(plans: list, X: np.ndarray, y: np.ndarray, batch_size: int = 256) -> dict:
    """{"members": [{"loss", "accuracy"} per plan], "ensemble": {"loss", "accuracy"}}."""
    checks.check_examples("evaluate_ensemble", X, y)
    if len(X) == 0:
        raise DatasetError("cannot evaluate on an empty dataset")
    if not plans:
        raise DatasetError("an ensemble needs at least one model")
    probs = [probabilities(plan, X, batch_size) for plan in plans]
    shapes = {p.shape for p in probs}
    if len(shapes) != 1:
        raise DatasetError(f"the members score different numbers of classes "
                           f"({sorted(s[1] for s in shapes)}); an ensemble averages one set of classes")
    return {"members": [_score(p, y) for p in probs], "ensemble": _score(np.mean(probs, axis=0), y)}
