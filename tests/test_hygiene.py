"""Data hygiene (optbench.io.hygiene): duplicate configurations within a set and between
a training and a validation set, outlying energies and forces, atoms too close, and the
study split whose validation set is wholly inside its training set.

Each test plants known cases in generated Ag-Pd sets (`generate_agpd_split`) and checks
that exactly those are found, none more."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import replace

import numpy as np
import pytest
from conftest import shared_dir

import optbench.io as D
from optbench.io import Configuration, DataSet, generate_agpd_split, read_dataset
from optbench.io.dataset import closest_pair
from optbench.io.hygiene import robust_z

# the public names, through optbench.io's exports
check_data, same_configuration, Finding = D.check_data, D.same_configuration, D.Finding
find_duplicates, find_overlap, find_outliers, find_close_atoms = (
    D.find_duplicates, D.find_overlap, D.find_outliers, D.find_close_atoms)

STUDY = shared_dir() / "datasets" / "pdag_study"


@pytest.fixture(scope="module")
def split():
    """16 training and 6 validation Ag-Pd configurations (16-48 atoms, sheared cells)."""
    return generate_agpd_split(16, 6, seed=3)


def _frac(cfg: Configuration) -> np.ndarray:
    return cfg.positions @ np.linalg.inv(cfg.cell)


def _copy(cfg: Configuration, source: str, **changes) -> Configuration:
    """A copy with its own arrays, `source` and `changes` (Configuration fields)."""
    fresh = {"positions": np.array(cfg.positions, dtype=float), "types": np.array(cfg.types),
             "cell": None if cfg.cell is None else np.array(cfg.cell)}
    return replace(cfg, **{**fresh, **changes}, source=source)


def _permuted(cfg: Configuration, seed: int = 0) -> Configuration:
    p = np.random.default_rng(seed).permutation(cfg.n_atoms)
    return _copy(cfg, "permuted", positions=cfg.positions[p], types=cfg.types[p], forces=cfg.forces[p])


def _jittered(cfg: Configuration, length: float, seed: int = 0) -> Configuration:
    """Every atom moved by exactly `length` A in a random direction."""
    d = np.random.default_rng(seed).normal(size=(cfg.n_atoms, 3))
    d *= length / np.linalg.norm(d, axis=1, keepdims=True)
    return _copy(cfg, f"jitter {length}", positions=cfg.positions + d)


# ------------------------------------------------------------------- same configuration


def test_same_configuration_invariances(split):
    """What counts as the same configuration: atom order, a lattice vector added to any
    atom or to all, wrapping into the cell, moves below 1e-3 A and a cell change below
    1e-3 A do not matter; a move or cell change above it, two atoms' species swapped, a
    molecule against a crystal do."""
    train, _ = split
    cfg = train[0]
    cell = cfg.cell
    shifts = np.random.default_rng(1).integers(-2, 3, size=(cfg.n_atoms, 3))
    f = _frac(cfg)
    same = {
        "permuted": _permuted(cfg),
        "shifted by a lattice vector": _copy(cfg, "", positions=cfg.positions + cell[0] - 2 * cell[2]),
        "each atom by its own lattice vector": _copy(cfg, "", positions=cfg.positions + shifts @ cell),
        "wrapped into the cell": _copy(cfg, "", positions=(f - np.floor(f)) @ cell),
        "jittered 0.9e-3 A": _jittered(cfg, 0.9e-3),
        "cell entry changed by 0.5e-3 A": _copy(cfg, "", cell=cell + np.diag([5e-4, 0, 0])),
    }
    assert (f < 0).any()  # the generator's atoms stick out of the cell: wrapping moves some
    for what, other in same.items():
        assert same_configuration(cfg, other), what
        assert same_configuration(other, cfg), what
    one_atom = _copy(cfg, "")
    one_atom.positions[5] += [2e-3, 0, 0]
    swapped = _copy(cfg, "")
    i, j = np.flatnonzero(cfg.types == 0)[0], np.flatnonzero(cfg.types == 1)[0]
    swapped.types[[i, j]] = swapped.types[[j, i]]
    different = {
        "one atom moved by 2e-3 A": one_atom,
        "jittered 1.1e-3 A": _jittered(cfg, 1.1e-3),
        "cell entry changed by 2e-3 A (same Cartesian positions)": _copy(cfg, "", cell=cell + np.diag([2e-3, 0, 0])),
        "two atoms' species swapped": swapped,
        "a molecule": _copy(cfg, "", cell=None),
        "another configuration": train[4],
    }
    assert cfg.types[i] != cfg.types[j]
    for what, other in different.items():
        assert not same_configuration(cfg, other), what
    assert same_configuration(cfg, _jittered(cfg, 3e-3), tol=4e-3)  # the tolerance is the argument
    with pytest.raises(ValueError, match="positive length"):
        same_configuration(cfg, cfg, tol=0.0)


def test_molecules_compare_without_the_centroid():
    """Molecules (cell None): a rigid translation and a permutation are the same
    molecule; one atom moved by 2e-3 A is not."""
    rng = np.random.default_rng(7)
    pos = rng.uniform(0, 6, size=(12, 3))
    pos += np.arange(12)[:, None] * 0.8  # no two atoms close
    mol = Configuration(positions=pos, types=np.array([0, 1] * 6, dtype=np.int32), source="mol")
    p = rng.permutation(12)
    moved = replace(mol, positions=pos[p] + [10.0, -3.0, 0.5], types=mol.types[p], source="moved")
    assert same_configuration(mol, moved)
    bent = replace(mol, positions=pos.copy(), source="bent")
    bent.positions[3] += [0, 2e-3, 0]
    assert not same_configuration(mol, bent)
    assert find_overlap(DataSet([mol, bent]), DataSet([moved])) == [(0, 0)]


def test_boundary_atoms_and_rounding_boundaries():
    """The cases a rounding key gets wrong, through the fast search (find_overlap and
    find_duplicates, not only the pairwise check): an atom at fractional 0.0 against
    0.9999999 and against -1e-17 (which wraps to 1 - 1e-17 = 1.0 in floating point), and
    copies whose every coordinate sits 1e-5 A either side of a rounding boundary of
    0.001, 0.01 and 0.1 A, and of 1e-3 in fractional coordinates."""
    cell = np.array([[8.0, 0.0, 0.0], [0.3, 8.2, 0.0], [0.1, -0.2, 7.9]])
    base = np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0],
                     [0.25, 0.25, 0.25], [0.75, 0.75, 0.25]])
    types = np.array([0, 0, 1, 1, 0, 1], dtype=np.int32)

    def cfg(frac, source):
        return Configuration(positions=np.asarray(frac) @ cell, types=types.copy(), cell=cell.copy(), source=source)

    originals, copies = [], []
    for k, edge in enumerate((1.0 - 1e-7, -1e-17, 1.0)):
        f = base + 0.01 * k
        f[0] = 0.0
        g = f.copy()
        g[0] = edge
        originals.append(cfg(f, f"at 0.0 ({k})"))
        copies.append(cfg(g, f"at {edge!r}"))
    for k, grid in enumerate((1e-3, 1e-2, 1e-1)):
        pos = (base + 0.02 * (k + 3)) @ cell
        pos = np.round(pos / grid) * grid + grid / 2  # every coordinate on a rounding boundary
        originals.append(Configuration(positions=pos - 1e-5, types=types.copy(), cell=cell.copy(), source=f"-{grid}"))
        copies.append(Configuration(positions=pos + 1e-5, types=types.copy(), cell=cell.copy(), source=f"+{grid}"))
    f = np.round(base + 0.2, 3) + 0.0005  # fractional coordinates on a 1e-3 boundary
    originals.append(cfg(f - 1e-6, "frac -"))
    copies.append(cfg(f + 1e-6, "frac +"))
    n = len(originals)
    assert find_overlap(DataSet(originals), DataSet(copies)) == [(i, i) for i in range(n)]
    assert find_duplicates(DataSet(originals + copies)) == [(i, n + i) for i in range(n)]
    # -1e-17 really is the case it claims: naive wrapping gives 1.0, outside [0, 1)
    assert (-1e-17) - np.floor(-1e-17) == 1.0


# ------------------------------------------------------------------- planted duplicates


def _planted(train: DataSet, valid: DataSet):
    """A validation set of valid's own configurations and altered copies of training
    ones; -> (the set, the expected (valid index, train index) overlap)."""
    f = _frac(train[3])
    one_atom = _copy(train[6], "one atom 2e-3 A off")
    one_atom.positions[0] += [0, 0, 2e-3]
    variants = [
        (0, _permuted(train[0])),
        (1, _copy(train[1], "lattice shift", positions=train[1].positions - train[1].cell[1])),
        (2, _copy(train[2], "wrapped", positions=(_frac(train[2]) % 1.0) @ train[2].cell)),
        (3, _copy(train[3], "unwrapped", positions=(f + (f > 0.5)) @ train[3].cell)),
        (4, _jittered(_permuted(train[4], 2), 0.8e-3)),
        (None, _jittered(train[5], 1.5e-3)),
        (None, one_atom),
        (None, _copy(train[7], "cell 1 % larger", cell=1.01 * train[7].cell)),
        (None, _copy(train[8], "cell 1 % larger, same fractions", positions=1.01 * train[8].positions,
                     cell=1.01 * train[8].cell)),
    ]
    configs = list(valid.configs) + [c for _, c in variants]
    expected = [(len(valid) + k, t) for k, (t, _) in enumerate(variants) if t is not None]
    return DataSet(configs, list(valid.species), "planted_valid"), expected


def test_planted_duplicates_found_exactly(split):
    """Copies of training configurations permuted, shifted by a lattice vector, wrapped,
    unwrapped and jittered below the tolerance are found in the validation set; copies
    jittered above it, with one atom off, or with another cell are not; the original
    validation configurations (another random stream) match nothing; a permuted copy
    inside the training set is its only duplicate; check_data says so."""
    train, valid = split
    planted, expected = _planted(train, valid)
    assert find_overlap(train, valid) == []
    assert find_overlap(train, planted) == expected
    assert find_duplicates(planted) == []
    doubled = DataSet(list(train.configs) + [_permuted(train[9], 5)], list(train.species), "doubled")
    assert find_duplicates(doubled) == [(9, len(train))]
    findings = check_data(doubled, planted)
    kinds = [(x.kind, x.dataset) for x in findings]
    assert kinds[0] == ("overlap", "planted_valid") and ("duplicate", "doubled") in kinds
    assert not [x for x in findings if x.kind == "close atoms"]
    overlap = findings[0]
    assert overlap.severity == "error" and len(overlap.sources) == len(expected)
    assert overlap.message.startswith(f"validation set planted_valid: {len(expected)} of {len(planted)} "
                                      "configurations also occur in the training set doubled (positions within "
                                      "0.001 A): their validation errors are in-sample (e.g. ")
    assert overlap.pairs[0] == (planted[expected[0][0]].source, train[0].source)
    dup = next(x for x in findings if x.kind == "duplicate")
    assert dup.severity == "warning" and dup.sources == (train[9].source, "permuted")
    assert "1 of 17 configurations repeat another one of the same set" in dup.message
    with pytest.raises(dataclasses.FrozenInstanceError):
        overlap.kind = "x"
    assert str(overlap) == overlap.message and isinstance(overlap, Finding)


def test_species_matched_by_element_name(split):
    """A validation set that numbers the species the other way round (["Pd", "Ag"])
    still overlaps by element; with unknown elements the indices are compared."""
    train, _ = split
    flipped = _copy(train[2], "flipped", types=1 - train[2].types)
    assert find_overlap(train, DataSet([flipped], ["Pd", "Ag"])) == [(0, 2)]
    assert find_overlap(train, DataSet([flipped], None)) == []
    assert find_overlap(train, DataSet([train[2]], None)) == [(0, 2)]


@pytest.mark.skipif(not STUDY.is_dir(), reason=f"{STUDY} absent (the study's Ag-Pd split; present in CI)")
def test_study_split_validation_is_inside_training(capsys):
    """The study's split (MLIP-4 JSON, 1191 training and 240 validation configurations of
    32 atoms): every validation configuration also occurs in the training set, so its
    validation errors are in-sample; the training set repeats 3 configurations. The
    whole check_data takes well under a few seconds (timing printed)."""
    train = read_dataset(STUDY / "PdAg_train.json")
    valid = read_dataset(STUDY / "PdAg_valid.json")
    start = time.perf_counter()
    findings = check_data(train, valid)
    seconds = time.perf_counter() - start
    with capsys.disabled():
        print(f"\ncheck_data on the study split ({len(train)} + {len(valid)} configurations): {seconds:.2f} s")
    overlap = findings[0]
    assert overlap.kind == "overlap" and len(overlap.sources) == 240
    assert overlap.message.startswith(
        "validation set PdAg_valid.json: 240 of 240 configurations also occur in the training set "
        "PdAg_train.json (positions within 0.001 A): validation errors are in-sample (e.g. PdAg_valid.json[0] = ")
    assert len(find_duplicates(train)) == 3
    assert seconds < 5.0, f"check_data took {seconds:.1f} s"


# --------------------------------------------------------------- outliers, close atoms


def test_planted_outliers(split):
    """Energies per atom spread evenly over 0.1 eV/atom and largest forces over 1-1.2
    eV/A give no outlier; one configuration at +1 eV/atom and another with a 30 eV/A
    force are the only ones found, with their values (eV/atom, eV/A); a configuration
    without labels is skipped. robust_z is report.stats' rule."""
    train, _ = split
    configs = []
    for k, c in enumerate(train.configs):
        forces = np.zeros_like(c.positions)
        forces[0] = [1.0 + 0.0125 * k, 0, 0]
        configs.append(_copy(c, f"c{k}", energy=c.n_atoms * (-2.0 + 0.1 * k / 15), forces=forces))
    clean = DataSet(configs, list(train.species), "clean")
    assert find_outliers(clean) == []
    configs[4] = _copy(configs[4], "c4", energy=configs[4].n_atoms * 1.0, forces=configs[4].forces)
    big = configs[9].forces.copy()
    big[3] = [0, 18.0, 24.0]
    configs[9] = _copy(configs[9], "c9", energy=configs[9].energy, forces=big)
    configs.append(_copy(train[0], "unlabelled", energy=None, forces=None))
    found = find_outliers(DataSet(configs, list(train.species), "planted"))
    assert [(i, q) for i, q, _, _ in found] == [(4, "energy per atom"), (9, "largest force norm")]
    assert found[0][2] == pytest.approx(1.0) and found[1][2] == pytest.approx(30.0)
    assert all(abs(z) > 3.5 for *_, z in found)
    messages = [x.message for x in check_data(DataSet(configs, list(train.species), "planted")) if x.kind == "outlier"]
    assert len(messages) == 2 and "c4 1 eV/atom" in messages[0] and "c9 30 eV/A" in messages[1]

    from optbench.report import stats

    values = [1.0, 2.0, 2.5, np.nan, 40.0, None, 3.0]
    np.testing.assert_allclose(robust_z(values), stats.robust_z(values), equal_nan=True)
    np.testing.assert_allclose(robust_z([1.0, 1.0, 1.0, 5.0]), stats.robust_z([1.0, 1.0, 1.0, 5.0]))


def test_close_atoms(split):
    """Atoms 0.3 A apart only through a periodic image (orthorhombic cell: the k-d tree
    path), 0.3997 A apart through an image in a sheared cell (ase's neighbour list) and
    0.45 A apart in a molecule are found with their atoms and distance; the generated
    configurations (nearest neighbours near 2.8 A) are not."""
    train, _ = split
    ortho = Configuration(positions=np.array([[0.1, 1.0, 1.0], [4.8, 1.0, 1.0], [2.5, 2.5, 2.5]]),
                          types=np.zeros(3, np.int32), cell=np.diag([5.0, 5.0, 5.0]), source="ortho")
    sheared_cell = np.array([[4.0, 0.0, 0.0], [-3.8, 0.5, 0.0], [0.0, 0.0, 4.0]])
    sheared = Configuration(positions=np.array([[0.0, 0.0, 0.0], [0.45, -0.45, 0.0]]) @ sheared_cell,
                            types=np.zeros(2, np.int32), cell=sheared_cell, source="sheared")
    mol = Configuration(positions=np.array([[0.0, 0, 0], [3.0, 0, 0], [3.0, 0.45, 0]]),
                        types=np.zeros(3, np.int32), source="mol")
    data = DataSet(list(train.configs[:3]) + [ortho, sheared, mol], list(train.species), "close")
    found = find_close_atoms(data)
    assert [(k, i, j) for k, i, j, _ in found] == [(3, 0, 1), (4, 0, 1), (5, 1, 2)]
    through_b = np.array([0.45, 0.55, 0.0]) @ sheared_cell  # (-0.29, 0.275, 0): 0.3997 A
    np.testing.assert_allclose([d for *_, d in found], [0.3, np.linalg.norm(through_b), 0.45], atol=1e-9)
    assert find_close_atoms(data, min_distance=0.35)[0][:3] == (3, 0, 1)
    msg = [x.message for x in check_data(data) if x.kind == "close atoms"]
    assert msg == [("training set close: 3 of 6 configurations have atoms closer than 0.5 A (closest: atoms 1 and "
                    "2 of ortho, 0.3 A; e.g. ortho, sheared, mol)")]


def test_closest_pair_is_the_closest():
    """closest_pair (which validate uses) gives the nearest of several close pairs, and
    None when none is within the cutoff."""
    cfg = Configuration(positions=np.array([[0.0, 0, 0], [0.4, 0, 0], [3.0, 0, 0], [3.1, 0, 0]]),
                        types=np.zeros(4, np.int32), cell=np.diag([6.0, 6.0, 6.0]))
    a, b, d = closest_pair(cfg, 0.5)
    assert (a, b) == (2, 3) and d == pytest.approx(0.1)
    assert closest_pair(cfg, 0.05) is None


@pytest.mark.skipif(not STUDY.is_dir(), reason=f"{STUDY} absent (the study's Ag-Pd split; present in CI)")
def test_validate_and_report_flag_the_study_split(tmp_path, capsys):
    """`optbench validate experiments/task1.toml` (the study's PdAg split) warns that 240 of
    240 validation configurations are in the training set, and `optbench report` of that
    experiment lists it first under "What is missing or suspect"."""
    from optbench.cli import main
    from pathlib import Path

    from optbench.experiments import Store, load_experiment

    toml = Path(__file__).resolve().parents[1] / "experiments" / "task1.toml"
    datasets = ["--set", f"datasets={STUDY.parent}"]
    assert main(["validate", str(toml), *datasets]) == 0
    err = capsys.readouterr().err
    assert "warning: data pdag: validation set PdAg_valid.json: 240 of 240 configurations also occur in the " \
           "training set PdAg_train.json" in err
    # A copy of the experiment with its store here and one finished run, then its report.
    copy = tmp_path / "task1.toml"
    copy.write_text(toml.read_text().replace('name = "task1"', 'name = "task1"\nstore = "store.sqlite"'))
    exp = load_experiment(copy, variables={"datasets": str(STUDY.parent)})
    run = exp.runs[0]
    with Store(exp.store_path) as st:
        st.claim(run.key(), run.to_dict(), "test")
        st.finish(run.key(), {"status": "budget", "message": "", "steps": 1,
                              "history": {"step": [1], "loss": [1.0], "configs": [1], "seconds": [0.1], "evals": []}})
    assert main(["report", str(copy), *datasets, "-o", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    suspect = md[md.index("## What is missing or suspect"):]
    first = suspect.splitlines()[2]
    assert first.startswith("- data pdag: validation set PdAg_valid.json: 240 of 240 configurations"), first
