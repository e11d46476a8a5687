"""The training recipe: an optional `train:` section of a spec, as Caffe's solver file is.

    name: lenet
    input: {shape: [1, 28, 28]}
    layers: [...]
    train:
      update_rule: sgd_momentum
      optim: {momentum: 0.95}          # the update rule's own settings
      lr: 0.04
      lr_schedule: cosine              # cosine | step | constant
      warmup: 0.1                      # epochs (cosine)
      epochs: 4
      batch_size: 64
      weight_decay: 1.0e-4
      data: fashion-mnist              # as --data
      val: 5000
      preprocessing: channel           # channel | mean_image | none
      augment: {crop: 2, flip: true}
      seed: 0

Every key is the `dagnet train` flag of the same name (underscores for dashes), plus optim
and augment; flags given on the command line override the recipe. A run folder's spec.yaml
holds the graph and the recipe as resolved (every setting, defaults included), so
`dagnet train RUN/spec.yaml --out OTHER` repeats the run bitwise. Mistakes are SpecErrors
naming train.KEY.
"""
from __future__ import annotations

import numbers

from dagnet.errors import SpecError

SCHEDULES = ("cosine", "step", "constant")
PREPROCESSING = ("channel", "mean_image", "none")


def _is(kind):
    def check(v):
        if kind is int:
            return isinstance(v, numbers.Integral) and not isinstance(v, bool)
        if kind is float:
            return isinstance(v, numbers.Real) and not isinstance(v, bool)
        return isinstance(v, kind)
    return check


#: key -> (check, what it must be)
KEYS = {
    "update_rule": (_is(str), "the name of an update rule"),
    "optim": (_is(dict), "a mapping of the update rule's settings, e.g. {momentum: 0.9}"),
    "lr": (_is(float), "a number"),
    "lr_schedule": (lambda v: v in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
    "warmup": (_is(float), "a number of epochs"),
    "lr_decay": (_is(float), "a number"),
    "epochs": (_is(int), "an integer"),
    "batch_size": (_is(int), "an integer"),
    "weight_decay": (_is(float), "a number"),
    "patience": (_is(int), "an integer"),
    "monitor": (_is(str), "val_acc or val_loss"),
    "min_delta": (_is(float), "a number"),
    "data": (_is(str), "a data set as --data takes it (fashion-mnist, mnist:DIR, cifar10:DIR)"),
    "val": (_is(int), "an integer"),
    "seed": (_is(int), "an integer"),
    "dtype": (lambda v: v in ("float32", "float64"), "float32 or float64"),
    "preprocessing": (lambda v: v in PREPROCESSING, f"one of {', '.join(PREPROCESSING)}"),
    "augment": (_is(dict), "a mapping such as {crop: 2, flip: true}"),
    "weights": (_is(str), "the path of a checkpoint to start from"),
}


def check_recipe(section, where: str = "train") -> dict:
    """The recipe mapping, checked: SpecError naming where.KEY for an unknown key or a value
    of the wrong kind (ranges are the flags' and the Solver's to check)."""
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise SpecError(f"{where}: must be a mapping of training settings (lr: 0.01, epochs: "
                        f"4, ...), got {section!r:.60}")
    for key, value in section.items():
        if key not in KEYS:
            from difflib import get_close_matches

            close = get_close_matches(str(key), KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise SpecError(f"{where}: unknown key '{key}'{hint}; a recipe takes "
                            f"{', '.join(KEYS)}")
        ok, want = KEYS[key]
        if not ok(value):
            note = " (a string: write numbers like 1e-4 as 1.0e-4 in YAML)" if isinstance(value, str) \
                and _numeric(value) else ""
            raise SpecError(f"{where}.{key}: must be {want}, got {value!r}{note}")
    if "augment" in section:
        from dagnet.data.augment import check

        try:
            check(section["augment"], f"{where}.augment")
        except Exception as e:
            raise SpecError(str(e)) from None
    return dict(section)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def recipe_of(spec: dict, where: str = "train") -> dict:
    """The checked `train:` section of a spec mapping ({} when it has none)."""
    return check_recipe(spec.get("train"), where) if isinstance(spec, dict) else {}
