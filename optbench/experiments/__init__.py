"""Experiments: an experiment file (TOML) expanded into runs, the runs executed on local
processes or a Dask cluster, and their results in one SQLite store.

- `experiment`: `load_experiment` (the file format is in its docstring), `Experiment`,
  `describe_plan`; the file's parts are checked by `values` (typed values, [paths]
  variables), `sections` (weights, budget, models, data, report) and `entries`
  ([[optimizers]] grids and their expansion), line numbers from `toml_lines`;
- `references`: the [[references]] sections (results of another code, read from CSV
  files) as one frame of REFERENCE_COLUMNS, `Experiment.references`;
- `baseline`: which variant the others are compared with;
- `runspec`: `RunSpec`, one run fully specified, and the code version in its key;
- `execute`: one run in a worker (`execute_run`);
- `runner`: the sweep (`run_experiment`), `progress`: what it prints;
- `data_check`: the data hygiene findings of the experiment's data sets;
- `store`: the results store (`Store`).

Loading and checking an experiment file imports no training code's C library and runs
nothing; `runner` is imported only to run.
"""

from optbench.experiments.baseline import BaselineError, choose_baseline
from optbench.experiments.experiment import Experiment, ExperimentError, describe_plan, load_experiment
from optbench.experiments.references import REFERENCE_COLUMNS, describe_references
from optbench.experiments.runspec import RunSpec, current_code_version
from optbench.experiments.store import Store

__all__ = ["Experiment", "ExperimentError", "load_experiment", "describe_plan", "RunSpec", "current_code_version",
           "Store", "BaselineError", "choose_baseline", "REFERENCE_COLUMNS", "describe_references"]
