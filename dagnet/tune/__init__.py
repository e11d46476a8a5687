"""Hyperparameter search on Optuna: search spaces, studies shared by worker processes through
one storage (an SQLite file, or a PostgreSQL server for several machines), coarse-to-fine
narrowing, and the results as tables. `dagnet tune` (dagnet/cli/tune.py) drives it; Optuna is
an optional dependency (pip install 'dagnet[tune]'), imported only when a study is opened."""
from dagnet.tune.space import Param, fits, load_space, narrow, parse_space, suggest, to_yaml

__all__ = ["Param", "fits", "load_space", "narrow", "parse_space", "suggest", "to_yaml"]
