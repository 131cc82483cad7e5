"""Data in and out: the in-memory data model (`DataSet` of `Configuration`s, with their DFT
labels in A, eV, eV/A and PlusStress eV), one module per file format behind the registry
of `formats` (MLIP `.cfg`, MLIP-4 JSON, pymatgen JSON, extended XYZ), the generated Ag-Pd
EMT set (`generator`), a run's data dict -> training and validation sets (`sources`), data
hygiene checks (`hygiene`), safe writing of output files (`outputs`), and the flat arrays
the C engine takes (`DataSet.to_arrays`).

Nothing here knows about potentials, engines or optimizers: every other package reads its
data through this one.
"""

from optbench.io.cfg import read_cfg, write_cfg
from optbench.io.dataset import (
    Configuration,
    DataError,
    DataSet,
    cell_volume,
    map_species,
    species_count,
    split,
    to_arrays,
    validate,
)
from optbench.io.extxyz import read_extxyz
from optbench.io.formats import FORMATS, SUFFIXES, Format, read_dataset
from optbench.io.generator import generate_agpd, generate_agpd_split
from optbench.io.hygiene import (
    Finding,
    check_data,
    find_close_atoms,
    find_duplicates,
    find_outliers,
    find_overlap,
    same_configuration,
)
from optbench.io.mlip4_json import (
    STRESS_FORMATS,
    from_mlip4_records,
    mlip4_records,
    read_mlip4_json,
)
from optbench.io.outputs import atomic_output, check_writable, write_text_atomic
from optbench.io.pymatgen_json import read_pymatgen_json
from optbench.io.sources import DATA_KINDS, load_data, load_tests

__all__ = [
    "Configuration", "DataSet", "DataError", "cell_volume", "map_species", "species_count", "split", "validate",
    "read_dataset", "FORMATS", "SUFFIXES", "Format", "read_cfg", "write_cfg", "read_mlip4_json",
    "from_mlip4_records", "mlip4_records", "STRESS_FORMATS", "read_pymatgen_json", "read_extxyz", "to_arrays",
    "generate_agpd", "generate_agpd_split", "load_data", "load_tests", "DATA_KINDS", "atomic_output", "check_writable",
    "write_text_atomic",
    "Finding", "check_data", "same_configuration", "find_duplicates", "find_overlap", "find_outliers",
    "find_close_atoms",
]
