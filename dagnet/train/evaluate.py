"""Average cross-entropy and accuracy of a plan's eval-mode scores, computed in batches."""
from __future__ import annotations

import numpy as np

from dagnet.errors import DatasetError
from dagnet.train import checks


def evaluate_arrays(plan, X: np.ndarray, y: np.ndarray, batch_size: int = 256) -> dict:
    """{"loss": mean softmax cross-entropy, "accuracy": fraction correct} for X (N, ...), y (N,)."""
    checks.count("batch_size", batch_size, owner="evaluate_arrays")
    checks.check_examples("evaluate_arrays", X, y)
    if len(X) == 0:
        raise DatasetError("cannot evaluate on an empty dataset")
    scores = plan.predict(X, batch_size=batch_size).astype(np.float64)
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_probs[np.arange(len(y)), y].mean())
    return {"loss": loss, "accuracy": float(np.mean(scores.argmax(axis=1) == y))}
