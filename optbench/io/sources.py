"""Where a run's configurations come from: a data dict (RunSpec.data, or the command
line's files) -> the training and validation sets.

    {"kind": "generate", "n_train": 240, "n_valid": 60, "seed": 0}   the Ag-Pd EMT set
    {"kind": "files", "train": PATH | [PATH, ...], "valid": PATH | None, "valid_fraction": f | None,
     "split_seed": 0, "format": None | a FORMATS name, "species": [...] | None,
     "stress_format": None | one of STRESS_FORMATS,
     "energy_key", "forces_key", "virial_key", "stress_key": extended XYZ label keys | None,
     "tests": {LABEL: PATH} | absent,   held-out test sets, evaluated after training
     "n_train", "n_valid": N | absent}    a random subset of N configurations (split_seed)
"""

from __future__ import annotations

import numpy as np

from optbench.io.dataset import DataSet, split
from optbench.io.formats import LABEL_KEYS, read_dataset
from optbench.io.generator import generate_agpd_split

DATA_KINDS = ("generate", "files")


def load_data(data: dict) -> tuple[DataSet, DataSet | None]:
    """(train, valid or None) for a data dict: generated, or read from files (a
    validation file read with the training file's element order, or a random
    `valid_fraction` held out with `split_seed`). Units as read: A, eV, eV/A, PlusStress eV."""
    kind = data.get("kind")
    if kind == "generate":
        train, valid = generate_agpd_split(int(data["n_train"]), int(data.get("n_valid", 0)), int(data.get("seed", 0)))
        return train, valid if len(valid) else None
    if kind != "files":
        raise ValueError(f"data kind {kind!r}: expected one of {', '.join(DATA_KINDS)}")
    kw = {"species": data["species"]} if data.get("species") else {}
    if data.get("stress_format"):
        kw["stress_format"] = data["stress_format"]
    kw.update({k: data[k] for k in LABEL_KEYS if data.get(k)})
    paths = data["train"] if isinstance(data["train"], list) else [data["train"]]
    train = read_dataset(paths[0], fmt=data.get("format"), **kw)
    for more in paths[1:]:  # one training set from several files, in the first file's element order
        part = read_dataset(more, fmt=data.get("format"), **{**kw, **({"species": train.species} if train.species else {})})
        train = DataSet(train.configs + part.configs, train.species, f"{train.name}+{part.name}")
    if data.get("valid"):
        valid = read_dataset(data["valid"], fmt=data.get("format"),
                             **{**kw, **({"species": train.species} if train.species else {})})
    elif data.get("valid_fraction"):
        train, valid = split(train, float(data["valid_fraction"]), int(data.get("split_seed", 0)))
    else:
        valid = None
    rng = np.random.default_rng([int(data.get("split_seed", 0)), 7])
    for key in ("n_train", "n_valid"):
        n = data.get(key)
        which = train if key == "n_train" else valid
        if n is not None and which is not None and n < len(which):
            picked = which[np.sort(rng.choice(len(which), int(n), replace=False))]
            train, valid = (picked, valid) if key == "n_train" else (train, picked)
    return train, valid


def load_tests(data: dict, species: list[str] | None) -> dict[str, DataSet]:
    """The held-out test sets of a data dict ({label: DataSet}), read with the training
    set's element order `species`; {} when it has none."""
    kw = {"species": species} if species else {}
    return {label: read_dataset(path, fmt=data.get("format"), **kw) for label, path in (data.get("tests") or {}).items()}
