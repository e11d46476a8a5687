"""`dagnet train SPEC` with a `train:` recipe in the spec (dagnet/train/recipe.py): the recipe
becomes the defaults of the train flags, so flags on the command line override it; and every
run folder gets spec.yaml, the graph with the recipe as resolved, which repeats the run.

    dagnet train lenet --epochs 3 --crop 2 --out runs/a
    dagnet train runs/a/spec.yaml --out runs/b          # bitwise the same params as runs/a
"""
from __future__ import annotations

import os

import yaml

#: train flags a run's resolved recipe records (not --out, --resume, --quiet: they say where
#: and how to run, not what)
RECORDED = ("update_rule", "lr", "lr_schedule", "warmup", "lr_decay", "epochs", "batch_size",
            "weight_decay", "patience", "monitor", "min_delta", "data", "val", "seed", "dtype",
            "weights")


def spec_recipe(model: str) -> dict:
    """The checked recipe of a spec file ({} for a zoo name or a spec without one)."""
    from dagnet.spec.read import read_file
    from dagnet.train.recipe import recipe_of

    if not (os.path.isfile(model) and model.lower().endswith((".yaml", ".yml", ".json"))):
        return {}
    return recipe_of(read_file(model), f"{model}: train")


def as_flag_defaults(recipe: dict) -> dict:
    """The recipe as defaults of the train parser's dests (augment's keys are flags too)."""
    defaults = {k: v for k, v in recipe.items() if k != "augment"}
    defaults.update(recipe.get("augment", {}))
    return defaults


def reparse(parser, args, argv):
    """For `dagnet train SPEC` whose spec has a recipe: the command line parsed again with the
    recipe as the train flags' defaults (parser.commands["train"]), so flags override it."""
    if getattr(args, "command", None) != "train":
        return args
    recipe = spec_recipe(args.model)
    if not recipe:
        return args
    parser.commands["train"].set_defaults(**as_flag_defaults(recipe))
    return parser.parse_args(argv)


def resolved_recipe(args, augment) -> dict:
    """The run's settings, every one (defaults included): the train: section of spec.yaml."""
    from dagnet.cli.train import solver_options

    options = solver_options(args)
    # the values the run uses where a flag was left out (lr: the rule's default, ...)
    config = dict(options["optim_config"])
    # AdamW's --weight-decay is its decoupled decay, which lives in its optim_config
    decay = config.pop("weight_decay") if args.update_rule == "adamw" else options["weight_decay"]
    effective = {"lr": config.pop("learning_rate"), "weight_decay": decay}
    out = {}
    for key in RECORDED:
        value = effective.get(key, getattr(args, key, None))
        if value is not None:
            out[key] = value
    optim = {**config, **(getattr(args, "optim", None) or {})}
    if optim:
        out["optim"] = optim
    out["preprocessing"] = getattr(args, "preprocessing", None) or "channel"
    settings = augment.to_dict() if augment else {}
    if any(settings.values()):
        out["augment"] = {k: v for k, v in settings.items() if v}
    return out


def write_spec(path: str, graph, recipe: dict) -> None:
    """The graph (general form, lossless) and the recipe, as one YAML file written atomically
    (a run killed at any moment leaves a whole spec.yaml or none; a temp file created
    exclusively, never through a planted symlink)."""
    import tempfile

    from dagnet.spec.write import save_spec

    with tempfile.TemporaryDirectory() as scratch:
        draft = os.path.join(scratch, "spec.yaml")
        save_spec(graph, draft)
        with open(draft, encoding="utf-8") as f:
            text = f.read()
    text += ("# the recipe this run resolved: `dagnet train " + path + " --out DIR` repeats it\n"
             + yaml.safe_dump({"train": recipe}, sort_keys=False, default_flow_style=None))
    from dagnet.cli.common import UsageError
    from dagnet.files import write_atomically

    write_atomically(path, lambda f: f.write(text.encode("utf-8")), error=UsageError,
                     what="spec")
