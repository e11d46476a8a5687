"""A training run as the report's training tab: curves from the history, the recipe (what the
run folder recorded of how it was trained) and the final metrics.

    run_data(history, solver, data_info, evaluation=None) -> {"history", "recipe", "metrics", ...}

history: Solver.history() (history.json); solver: the checkpoint's solver dict (update rule,
schedule, batch size, epochs, weight decay, seed); data_info: data.json (data, split, the
normalization); evaluation: {split: {"loss", "accuracy"}} when the report evaluated the model.
"""
from __future__ import annotations

import numpy as np

from dagnet.viz.html.model import jsonable

#: solver entries that are not a recipe: the run's state and its curves
NOT_RECIPE = ("rng", "plan_rng", "loss_history", "train_acc_history", "val_acc_history",
              "epoch_times", "best_val_acc", "epoch")


def run_data(history: dict, solver: dict | None = None, data_info: dict | None = None,
             evaluation: dict | None = None, notes=()) -> dict:
    """The training tab's data (JSON-able)."""
    history = {k: jsonable(v) for k, v in (history or {}).items()}
    return {"history": history, "recipe": recipe_rows(solver or {}, data_info or {}),
            "metrics": metric_rows(history), "evaluation": jsonable(evaluation), "notes": list(notes)}


def recipe_rows(solver: dict, data_info: dict) -> list[list[str]]:
    """[key, value] rows: optimizer and schedule, batch, epochs, decay, seed, data and split."""
    rows = []
    if "update_rule" in solver:
        rows.append(["update rule", str(solver["update_rule"])])
    schedule = solver.get("schedule") or {}
    if schedule:
        rows.append(["learning rate", f"{schedule.get('learning_rate', '?'):g}" if isinstance(
            schedule.get("learning_rate"), (int, float)) else str(schedule.get("learning_rate"))])
        extra = ", ".join(f"{k} {v}" for k, v in schedule.items() if k not in ("name", "learning_rate"))
        rows.append(["schedule", schedule.get("name", "?") + (f" ({extra})" if extra else "")])
    for key, label in (("batch_size", "batch size"), ("num_epochs", "epochs asked"),
                       ("weight_decay", "weight decay"), ("seed", "seed")):
        if key in solver:
            rows.append([label, str(solver[key])])
    for key, value in solver.items():
        if key not in NOT_RECIPE and key not in ("update_rule", "schedule", "batch_size", "num_epochs",
                                                 "weight_decay", "seed"):
            rows.append([key.replace("_", " "), str(jsonable(value))])
    if "data" in data_info:
        rows.append(["data", str(data_info["data"])])
    if "num_val" in data_info:
        rows.append(["validation split", f"{data_info['num_val']:,} examples (seed {data_info.get('split_seed')})"])
    norm = data_info.get("normalization") or {}
    for key in ("mean", "std"):
        if key in norm:
            values = np.ravel(np.asarray(norm[key], dtype=float))
            rows.append([f"input {key}", ", ".join(f"{v:.4g}" for v in values[:8]) + (" …" if len(values) > 8 else "")])
    return rows


def metric_rows(history: dict) -> list[list[str]]:
    """[key, value] rows: epochs, the last epoch's mean loss and accuracies, the best, the time."""
    rows = []
    loss = history.get("loss_history") or []
    train = history.get("train_acc_history") or []
    val = history.get("val_acc_history") or []
    times = history.get("epoch_times") or []
    epochs = len(train)
    rows.append(["epochs run", str(history.get("epoch", epochs))])
    if loss and epochs:
        per = max(1, len(loss) // epochs)
        rows.append(["loss (mean of the last epoch)", f"{float(np.mean(loss[-per:])):.4f}"])
    if train:
        rows.append(["train accuracy (last epoch)", f"{train[-1]:.4f}"])
    if val:
        rows.append(["val accuracy (last epoch)", f"{val[-1]:.4f}"])
        rows.append(["best val accuracy", f"{max(val):.4f} (epoch {int(np.argmax(val)) + 1})"])
    if times:
        rows.append(["time per epoch", f"{float(np.mean(times)):.1f} s (total {float(np.sum(times)):.0f} s)"])
    return rows
