"""The data hygiene of an experiment's data sets (optbench.io.hygiene: validation
configurations that also occur in training, duplicates, outliers, atoms too close), as the
lines `optbench validate`, `run` and `report` print and the report lists first."""

from __future__ import annotations

from optbench.experiments.record import load_data
from optbench.io import DataError, check_data


def data_findings(experiment) -> list[str]:
    """One line per finding of each data set of `experiment` (its `data` dict by label),
    prefixed with the data set's label; a data set that cannot be read gives a line saying
    so (the run itself reports the error)."""
    lines = []
    for label, data in experiment.data.items():
        try:
            train, valid = load_data(data)
        except (OSError, ValueError, DataError) as err:
            lines.append(f"data {label}: not checked: {err}")
            continue
        lines += [f"data {label}: {finding}" for finding in check_data(train, valid)]
    return lines
