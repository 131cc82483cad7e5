"""Contracts of optbench.io (readers, writers, conventions) and of the default
data set generator (optbench.io.generator).

Sign convention under test: ``Configuration.stress`` is MLIP's PlusStress, the virial
``-dE/d(strain)`` in eV, order xx yy zz yz xz xy; NEGATIVE for a stretched cell.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import optbench.io as D
from optbench.io import Configuration, DataError, DataSet
from optbench.io import generator as G

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATASETS = SHARED / "datasets"
ROSEN = DATASETS / "agpd_rosenbrock"
VASP_KEYS = dict(energy_key="vasp_energy", forces_key="vasp_force", virial_key="vasp_virial")


@pytest.fixture(scope="module")
def datasets() -> Path:
    """../shared/datasets beside the repository; the test is skipped when it is absent."""
    if not DATASETS.is_dir():
        pytest.skip("../shared/datasets not present next to the repository (reference DFT data; present in CI)")
    return DATASETS


def _full(v: np.ndarray) -> np.ndarray:
    """Voigt (xx yy zz yz xz xy) -> symmetric 3x3."""
    xx, yy, zz, yz, xz, xy = v
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


# ------------------------------------------------------------------ .cfg reading


CFG_CARTES = """BEGIN_CFG
 Size
    2
 Supercell
    4.0 0.0 0.0
    0.5 4.0 0.0
    0.0 0.0 4.0
 AtomData:  id type       cartes_x      cartes_y      cartes_z           fx          fy          fz
    1 0 0.0 0.0 0.0 0.1 -0.2 0.3
    2 1 2.25 2.0 2.0 -0.1 0.2 -0.3
 Energy
    -7.5
 PlusStress:  xx          yy          zz          yz          xz          xy
    1.0 2.0 3.0 0.4 0.5 0.6
 Feature   conf_id  test
END_CFG
"""

CFG_DIRECT_LEGACY = """
BEGIN_CFG
Size
 2
  SuperCell
4.0 0.0 0.0
0.5 4.0 0.0
0.0 0.0 4.0
      AtomData:  id type direct_x direct_y direct_z fx fy fz site_en charge
  1    0   0.0 0.0 0.0    0.1 -0.2 0.3   0.0 1.0
  2    1   0.5 0.5 0.5   -0.1 0.2 -0.3   0.0 -1.0
   Energy
        -7.5
 Stress:   xx yy zz yz xz xy
      -1.0 -2.0 -3.0 -0.4 -0.5 -0.6
 Feature   conf_id  test
END_CFG
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_cartes_and_direct_give_same_positions_and_legacy_stress_is_negated(tmp_path):
    """direct_* columns are fractional (converted with the Supercell rows); a legacy
    ``Stress:`` block is minus PlusStress; extra columns (site_en, charge), ``SuperCell``
    spelling and indentation do not matter."""
    a = D.read_cfg(_write(tmp_path, "a.cfg", CFG_CARTES))[0]
    b = D.read_cfg(_write(tmp_path, "b.cfg", CFG_DIRECT_LEGACY))[0]
    np.testing.assert_allclose(b.positions, a.positions, atol=1e-12)
    np.testing.assert_allclose(a.positions[1], [2.25, 2.0, 2.0])
    np.testing.assert_allclose(b.stress, a.stress)
    np.testing.assert_allclose(a.stress, [1, 2, 3, 0.4, 0.5, 0.6])
    np.testing.assert_allclose(b.forces, a.forces)
    assert a.energy == b.energy == -7.5
    assert a.types.dtype == np.int32 and list(a.types) == [0, 1]
    assert a.features == b.features == {"conf_id": "test"}
    assert a.source.endswith("a.cfg:1")


def test_cfg_molecule_and_unlabelled(tmp_path):
    """No Supercell = molecule (cell None); missing Energy/forces/stress give None."""
    text = "BEGIN_CFG\n Size\n 1\n AtomData: id type cartes_x cartes_y cartes_z\n 1 0 0 0 0\nEND_CFG\n"
    cfg = D.read_cfg(_write(tmp_path, "m.cfg", text))[0]
    assert cfg.cell is None and cfg.energy is None and cfg.forces is None and cfg.stress is None
    assert cfg.n_atoms == 1


def _sample_configs(rng) -> list[Configuration]:
    periodic = Configuration(
        positions=rng.normal(size=(5, 3)) + 3.0,
        types=np.array([0, 1, 2, 1, 0], np.int32),
        cell=np.diag([6.0, 6.5, 7.0]) + rng.normal(scale=0.1, size=(3, 3)),
        energy=-12.345678901234,
        forces=rng.normal(size=(5, 3)),
        stress=rng.normal(size=6) * 10,
        features={"conf_id": "abc", "note": "line one\nline two"},
    )
    molecule = Configuration(positions=rng.normal(size=(3, 3)) * 2, types=np.array([2, 2, 0], np.int32))
    return [periodic, molecule]


def test_write_read_cfg_round_trip(tmp_path):
    """write_cfg then read_cfg reproduces positions, types, cell, energy, forces,
    PlusStress and string features (to the 12 printed decimals)."""
    configs = _sample_configs(np.random.default_rng(1))
    path = tmp_path / "rt.cfg"
    D.write_cfg(DataSet(configs), path)
    back = D.read_cfg(path)
    assert len(back) == 2
    for c, r in zip(configs, back):
        np.testing.assert_allclose(r.positions, c.positions, atol=1e-11)
        np.testing.assert_array_equal(r.types, c.types)
        for name in ("cell", "forces", "stress"):
            x, y = getattr(c, name), getattr(r, name)
            assert (x is None) == (y is None), name
            if x is not None:
                np.testing.assert_allclose(y, x, atol=1e-11)
        assert (c.energy is None and r.energy is None) or abs(r.energy - c.energy) < 1e-11
        assert r.features == c.features
    assert "PlusStress" in path.read_text() and "-12.345678901234" in path.read_text()
    D.write_cfg(back.configs, tmp_path / "rt2.cfg")  # a plain list is accepted too
    assert (tmp_path / "rt2.cfg").read_text() == path.read_text()


# --------------------------------------------------------------- malformed input


BAD_CFGS = {
    # name: (text, line number that the message must name, words in the message)
    "truncated": (CFG_CARTES.replace("END_CFG\n", ""), 1, "END_CFG"),
    "column_count": (CFG_CARTES.replace("2 1 2.25 2.0 2.0 -0.1 0.2 -0.3", "2 1 2.25 2.0 2.0 -0.1 0.2"), 10, "columns"),
    "non_numeric": (CFG_CARTES.replace("2 1 2.25 2.0", "2 1 2.25 abc"), 10, "abc"),
    "nan_energy": (CFG_CARTES.replace("-7.5", "nan"), 12, "NaN"),
    "inf_stress": (CFG_CARTES.replace("1.0 2.0 3.0", "1.0 inf 3.0"), 14, "NaN or inf"),
    "size_mismatch": (CFG_CARTES.replace("Size\n    2", "Size\n    3"), 8, "Size"),
    "negative_type": (CFG_CARTES.replace("2 1 2.25", "2 -1 2.25"), 10, "negative"),
    "short_cell_row": (CFG_CARTES.replace("0.5 4.0 0.0", "0.5 4.0"), 6, "Supercell"),
    "stray_text": ("hello\n" + CFG_CARTES, 1, "BEGIN_CFG"),
}


@pytest.mark.parametrize("case", sorted(BAD_CFGS))
def test_malformed_cfg_raises_with_file_and_line(tmp_path, case):
    """Each malformed .cfg raises DataError whose message names the file and the line."""
    text, line, word = BAD_CFGS[case]
    path = _write(tmp_path, f"bad_{case}.cfg", text)
    with pytest.raises(DataError) as err:
        D.read_cfg(path)
    msg = str(err.value)
    assert f"bad_{case}.cfg:{line}:" in msg, msg
    assert word in msg, msg


def _mlip4_record(energy=-1.0):
    return {"sim": {"cfg": {"cell": [[3, 0, 0], [0, 3, 0], [0, 0, 3]], "pos": [[0, 0, 0], [1.5, 1.5, 1.5]],
                            "types": [0, 1]},
                    "energy": energy, "forces": [[0, 0, 0], [0, 0, 0]], "stress": [1, 1, 1, 0, 0, 0]},
            "weights": [0.5] + [0.001] * 6 + [0.01] * 6}


def test_malformed_json_raises_with_file_and_record(tmp_path):
    """NaN energy, non-numeric forces, and broken JSON name the file and record/line."""
    rec = [_mlip4_record(), _mlip4_record(energy=float("nan"))]
    path = _write(tmp_path, "nan.json", json.dumps(rec))  # json writes NaN, and reads it back
    with pytest.raises(DataError, match=r"nan\.json\[1\]: energy is NaN"):
        D.read_mlip4_json(path)
    rec = [_mlip4_record()]
    rec[0]["sim"]["forces"] = [[0, 0, "x"], [0, 0, 0]]
    with pytest.raises(DataError, match=r"str\.json\[0\]: forces is not numeric"):
        D.read_dataset(_write(tmp_path, "str.json", json.dumps(rec)))
    with pytest.raises(DataError, match=r"broken\.json:2: invalid JSON"):
        D.read_dataset(_write(tmp_path, "broken.json", "[\n{\"sim\": }]"))


def test_unknown_species_raises(tmp_path):
    """An element outside the requested species list raises DataError naming it and
    the file/record (extxyz reader, and map_species)."""
    xyz = '2\nLattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 energy=-1.0 pbc="T T T"\nAg 0 0 0\nPd 2 2 2\n'
    path = _write(tmp_path, "two.xyz", xyz)
    with pytest.raises(DataError, match=r"two\.xyz\[0\]: unknown species Pd"):
        D.read_extxyz(path, species=["Ag"])
    ds = D.read_extxyz(path)
    assert ds.species == ["Ag", "Pd"] and ds[0].energy == -1.0
    with pytest.raises(DataError, match=r"two\.xyz\[0\]: unknown species Pd"):
        D.map_species(ds, ["Ag", "Cu"])


def test_validate_rejects_bad_data(tmp_path):
    """validate: empty set, species index >= n_species, NaN label, forces shape,
    zero-volume cell and coincident atoms (also through a periodic image) all raise
    DataError naming the configuration source."""
    path = _write(tmp_path, "ok.cfg", CFG_CARTES)
    good = D.read_cfg(path)
    D.validate(good)
    with pytest.raises(DataError, match=r"'empty\.cfg' is empty"):
        D.validate(D.read_cfg(_write(tmp_path, "empty.cfg", "\n")))
    with pytest.raises(DataError, match=r"ok\.cfg:1: species index 1 of atom 2 >= n_species 1"):
        D.validate(good, n_species=1)

    def bad(**change):
        cfg = D.read_cfg(path)[0]
        for k, v in change.items():
            setattr(cfg, k, v)
        return DataSet([cfg])

    cases = {
        "NaN": bad(forces=np.array([[0, 0, np.nan], [0, 0, 0]])),
        "forces shape": bad(forces=np.zeros((3, 3))),
        "degenerate cell": bad(cell=np.array([[4.0, 0, 0], [8.0, 0, 0], [0, 0, 4.0]])),
        "same position": bad(positions=np.array([[0.0, 0, 0], [4.0, 0, 0]])),  # x + a = image of x
    }
    for word, ds in cases.items():
        with pytest.raises(DataError, match=r"ok\.cfg:1: .*" + word):
            D.validate(ds)


# ------------------------------------------------------- data set utilities


def test_split_to_arrays_and_species_mapping():
    """split is deterministic and partitions; to_arrays gives the C engine's flat
    C-contiguous arrays with NaN for missing labels; species remapping by element."""
    ds = DataSet(_sample_configs(np.random.default_rng(2)) * 5, species=["Ag", "Pd", "Cu"], name="s")
    tr, va = D.split(ds, 0.4, seed=3)
    tr2, va2 = D.split(ds, 0.4, seed=3)
    assert len(va) == 4 and len(tr) == 6
    assert [id(c) for c in va] == [id(c) for c in va2]
    assert sorted(map(id, tr.configs + va.configs)) == sorted(map(id, ds.configs))

    a = D.to_arrays(ds)
    n = ds.n_atoms
    expect = dict(n_atoms=(np.int64, 10), cells=(np.float64, 90), periodic=(np.int32, 10),
                  positions=(np.float64, 3 * n), types=(np.int32, n), energies=(np.float64, 10),
                  forces=(np.float64, 3 * n), stresses=(np.float64, 60))
    for key, (dtype, size) in expect.items():
        assert a[key].dtype == dtype and a[key].shape == (size,) and a[key].flags.c_contiguous, key
    assert list(a["periodic"][:2]) == [1, 0] and np.all(a["cells"][9:18] == 0)
    assert np.isnan(a["energies"][1]) and np.isnan(a["stresses"][6:12]).all()
    assert np.isnan(a["forces"][15:24]).all() and not np.isnan(a["forces"][:15]).any()

    m = D.map_species(ds, ["Cu", "Ag", "Pd"])
    assert m.species == ["Cu", "Ag", "Pd"]
    np.testing.assert_array_equal(m[0].types, [1, 2, 0, 2, 1])
    assert D.map_species(ds, ["Cu", "Ag", "Pd"])[0].types.tolist() == [1, 2, 0, 2, 1]
    r = D.map_species(ds, {0: 1, 1: 2, 2: 0})
    assert r.species == ["Cu", "Ag", "Pd"] and r[0].types.tolist() == [1, 2, 0, 2, 1]
    assert ds[1:3].species == ds.species and len(ds[np.array([0, 2])]) == 2
    assert ds.n_species == 3 and DataSet(ds.configs).n_species == 3


# ----------------------------------------------------------------- real data sets


def test_read_all_real_formats(datasets):
    """Every reference file reads with the documented configuration/atom counts."""
    expected = {
        "pdag_study/PdAg_train.json": (1191, 38112),
        "pdag_study/PdAg_valid.json": (240, 7680),
        "monbtavw_study/MoNbTaVW_valid.json": (213, 13115),
        "monbtaw_study/MoNbTaW_valid.json": (546, 13220),
        "agpd_rosenbrock/mtp_train.cfg": (774, 3117),
        "agpd_rosenbrock/data_fcc.xyz": (775, None),
        "agpd_rosenbrock/data_bcc.xyz": (775, None),
        "agpd_rosenbrock/data_pathway.xyz": (11, None),  # lowercase "properties=" key
        "agpd_rosenbrock/data_relaxed.xyz": (65, None),
        "agpd_rosenbrock/data_unrelaxed.xyz": (65, None),
    }
    for rel, (n_cfg, n_atoms) in expected.items():
        kw = VASP_KEYS if rel.endswith(".xyz") else {}
        ds = D.read_dataset(datasets / rel, **kw)
        assert len(ds) == n_cfg, rel
        assert n_atoms is None or ds.n_atoms == n_atoms, rel
        D.validate(ds)
    snap = [D.read_dataset(p) for p in sorted((datasets / "nbmotaw_snap").glob("*.json"))]
    assert sum(len(s) for s in snap) == 5658 and sum(s.n_atoms for s in snap) == 118912
    assert D.read_dataset(datasets / "nbmotaw_snap/Multinary_Test.json").species == ["Mo", "Nb", "Ta", "W"]
    rosen = D.read_extxyz(ROSEN / "data_fcc.xyz", **VASP_KEYS)
    assert rosen.species == ["Ag", "Pd"]
    assert sum(c.energy is not None for c in rosen) == 751  # 24 frames carry no labels


def test_mlip4_weights_and_all_zero_stress(datasets):
    """File weights are used only on request; an all-zero stress is kept and flagged."""
    path = datasets / "monbtavw_study/MoNbTaVW_valid.json"
    plain = D.read_mlip4_json(path)
    assert all("weights" not in c.features for c in plain)
    assert all(c.features.get("stress_all_zero") for c in plain)
    weighted = D.read_mlip4_json(path, use_file_weights=True)
    c = weighted[0]
    assert c.features["weights"].shape == (7 + 3 * c.n_atoms,)


def _cfg_matches(xyz: DataSet, cfg: DataSet):
    """Pairs (xyz frame, cfg frame) of the same structure: same atom count, energy within
    2e-4 eV, volume within 1e-3 A^3 and equal sorted |force| components (1e-3 eV/A).
    The two files hold different cell settings of the same lattices (rotated axes), so
    the tensors agree only up to rotation: compare eigenvalues."""
    keys = [(c.n_atoms, c.energy, D.cell_volume(c.cell), np.sort(np.abs(c.forces.ravel()))) for c in cfg]
    pairs = []
    for x in xyz:
        if x.energy is None:
            continue
        vx = D.cell_volume(x.cell)
        fx = np.sort(np.abs(x.forces.ravel()))
        for k, (n, e, v, f) in enumerate(keys):
            if n == x.n_atoms and abs(e - x.energy) < 2e-4 and abs(v - vx) < 1e-3 and np.abs(f - fx).max() < 1e-3:
                pairs.append((x, cfg[k]))
    return pairs


def test_extxyz_virial_equals_cfg_plus_stress(datasets):
    """vasp_virial (ase/extxyz virial, eV) read as PlusStress agrees with the PlusStress
    of the same structure in mtp_train.cfg (stored there as legacy Stress = -PlusStress):
    the read-in tensors have equal eigenvalues, while the opposite sign would be off by
    several eV.  Stretched cells come out negative."""
    xyz = D.read_extxyz(ROSEN / "data_bcc.xyz", **VASP_KEYS)
    cfg = D.read_cfg(ROSEN / "mtp_train.cfg")
    pairs = _cfg_matches(xyz, cfg)
    assert len(pairs) >= 10
    for x, c in pairs:
        ex, ec = np.linalg.eigvalsh(_full(x.stress)), np.linalg.eigvalsh(_full(c.stress))
        tol = 1e-3 if x.n_atoms == 1 else 0.03  # one-atom cells: identical calculations
        assert np.abs(ex - ec).max() < tol, (x.source, c.source, ex, ec)
        assert np.abs(ex + ec).max() > 0.5  # the sign is decidable for these frames
    # bcc Pd at 30.3 A^3/atom (equilibrium ~15): strongly stretched -> negative PlusStress
    pd = [x for x, c in pairs if x.n_atoms == 1 and D.cell_volume(x.cell) > 30]
    assert pd and np.all(pd[0].stress[:3] < -3.0)


def test_pymatgen_stress_order_sign_and_units(datasets):
    """SNAP stress (kBar, VASP order xx yy zz xy yz zx, positive = compressed) becomes
    PlusStress eV: a cell stretched along k gets a negative PlusStress component k; a
    positive shear strain gives a negative PlusStress in the matching Voigt slot; the
    magnitude is kBar * V / 1602.1766208."""
    path = datasets / "nbmotaw_snap/Mo_Elastic.json"
    records = json.loads(path.read_text())
    ds = D.read_pymatgen_json(path)
    slot = {1: 0, 2: 1, 3: 2, 4: 5, 5: 3, 6: 4}  # Strain_new component (VASP order) -> Voigt slot
    checked = 0
    for rec, cfg in zip(records, ds):
        comp, _, value = rec["notes"]["Strain_new"].partition("--")
        strain = float(value)
        if abs(strain) < 0.02:
            continue
        s = cfg.stress[slot[int(comp)]]
        assert np.sign(s) == -np.sign(strain), (rec["notes"], cfg.stress)
        if int(comp) >= 4:
            assert np.argmax(np.abs(cfg.stress[3:])) + 3 == slot[int(comp)]
        checked += 1
    assert checked > 50
    raw = np.array(records[0]["outputs"]["stress"])
    vol = D.cell_volume(ds[0].cell)
    np.testing.assert_allclose(ds[0].stress, raw[[0, 1, 2, 4, 5, 3]] * vol / 1602.1766208)


def test_monbtaw_study_json_holds_snap_kbar(datasets):
    """monbtaw_study/MoNbTaW_valid.json copied the SNAP stress verbatim (kBar, VASP
    order); read with stress_format="kbar_vasp" it equals the SNAP PlusStress."""
    study = D.read_mlip4_json(datasets / "monbtaw_study/MoNbTaW_valid.json", stress_format="kbar_vasp")
    snap = D.read_pymatgen_json(datasets / "nbmotaw_snap/Mo_AIMD.json")
    by_energy = {round(c.energy, 6): c for c in snap}
    pairs = [(c, by_energy[round(c.energy, 6)]) for c in study if round(c.energy, 6) in by_energy]
    assert len(pairs) >= 5
    for a, b in pairs:
        np.testing.assert_allclose(a.stress, b.stress, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-8)


def test_pdag_study_stress_is_plus_stress(datasets):
    """Plausibility of the MLIP-4 sign (stress = PlusStress) on PdAg_train: the cell
    (17.6 A^3/atom) is larger than the Ag-Pd DFT equilibrium, so near-lattice (lowest
    energy) frames are under tension -> negative PlusStress; hotter frames add thermal
    pressure -> PlusStress rises with energy."""
    ds = D.read_mlip4_json(datasets / "pdag_study/PdAg_train.json")
    e = np.array([c.energy for c in ds])
    tr = np.array([c.stress[:3].sum() for c in ds])
    low = np.argsort(e)[: len(e) // 20]
    assert tr[low].mean() < 0
    assert np.corrcoef(e, tr)[0, 1] > 0.9


# --------------------------------------------------------------------- generator


def test_generator_deterministic_and_sized():
    """Same seed -> identical arrays; a shorter set is a prefix of a longer one; train
    and valid streams differ; sizes are 16/32/48 atoms in the ratio 1:1:2."""
    a = G.generate_agpd(8, seed=5)
    b = G.generate_agpd(8, seed=5)
    c = G.generate_agpd(4, seed=5)
    for key, arr in D.to_arrays(a).items():
        np.testing.assert_array_equal(arr, D.to_arrays(b)[key], err_msg=key)
    np.testing.assert_array_equal(D.to_arrays(c)["positions"], D.to_arrays(a[:4])["positions"])
    assert [x.n_atoms for x in a] == [48, 16, 48, 32] * 2 and a.n_atoms == 288
    assert a.species == ["Ag", "Pd"]
    tr, va = G.generate_agpd_split(2, 2, seed=5)
    np.testing.assert_array_equal(tr[0].positions, a[0].positions)
    assert not np.allclose(va[0].positions[:16], a[0].positions[:16])
    assert not np.allclose(G.generate_agpd(1, seed=6)[0].positions, a[0].positions)
    D.validate(a)


def test_generator_stress_sign_and_finite_differences():
    """EMT labels: a uniformly stretched cell has negative PlusStress (compressed:
    positive); PlusStress_xx = -dE/d(strain_xx); forces = -dE/dx (central differences)."""
    ideal = G.generate_agpd(1, seed=0, lattice_jitter=0.0, strain=0.0, displacement=0.0)[0]
    for factor, sign in ((1.05, -1), (0.95, 1)):
        _, _, s = G._emt_labels(ideal.positions * factor, ideal.types, ideal.cell * factor)
        assert np.all(np.sign(s[:3]) == sign), (factor, s)

    cfg = G.generate_agpd(2, seed=1)[1]  # 16 atoms
    h = 1e-4
    for i, k in ((0, 0), (3, 2), (7, 1)):
        ep, em = [], []
        for d, out in ((h, ep), (-h, em)):
            pos = cfg.positions.copy()
            pos[i, k] += d
            out.append(G._emt_labels(pos, cfg.types, cfg.cell)[0])
        assert abs(-(ep[0] - em[0]) / (2 * h) - cfg.forces[i, k]) < 1e-5
    energies = []
    for d in (h, -h):
        deform = np.eye(3)
        deform[0, 0] += d
        energies.append(G._emt_labels(cfg.positions @ deform, cfg.types, cfg.cell @ deform)[0])
    assert abs(-(energies[0] - energies[1]) / (2 * h) - cfg.stress[0]) < 1e-4


def test_extxyz_standard_ase_keys(tmp_path):
    """A file written by ase with energy/forces/stress (moved into a SinglePointCalculator
    on reading) gives PlusStress = -stress * volume; a 3x3 ``virial`` in atoms.info is
    taken as PlusStress unchanged and wins over the stress."""
    import ase.io
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    cfg = G.generate_agpd(2, seed=2)[1]
    atoms = Atoms(numbers=np.where(cfg.types == 0, 47, 46), positions=cfg.positions, cell=cfg.cell, pbc=True)
    ase_stress = -cfg.stress / abs(np.linalg.det(cfg.cell))
    atoms.calc = SinglePointCalculator(atoms, energy=cfg.energy, forces=cfg.forces, stress=ase_stress)
    ase.io.write(tmp_path / "std.xyz", atoms, format="extxyz")
    back = D.read_extxyz(tmp_path / "std.xyz")[0]
    assert abs(back.energy - cfg.energy) < 1e-7  # ase writes 8 decimals
    np.testing.assert_allclose(back.forces, cfg.forces, atol=1e-7)
    np.testing.assert_allclose(back.stress, cfg.stress, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(back.types, cfg.types)

    atoms.calc = None
    atoms.info["virial"] = _full(cfg.stress)
    atoms.info["stress"] = np.zeros((3, 3))
    ase.io.write(tmp_path / "vir.xyz", atoms, format="extxyz")
    np.testing.assert_allclose(D.read_extxyz(tmp_path / "vir.xyz")[0].stress, cfg.stress, atol=1e-7)


def test_overlap_check_is_exact_in_sheared_cells():
    """validate's close-pair check agrees with brute force for random sheared cells (where
    rounding fractional coordinates can pick the wrong image) and orthorhombic ones (the
    k-d tree path), threshold 1 A. The brute force tries every lattice image that can be
    that close: with fractional differences in (-1, 1), |n_k| <= 1 + r |b_k| (b the
    reciprocal vectors, r the threshold)."""
    rng = np.random.default_rng(5)
    disagreements, flagged, r = 0, 0, 1.0
    for trial in range(60):
        cell = np.diag(rng.uniform(3.0, 5.0, 3))
        if trial % 2:
            cell[1, 0], cell[2, 0], cell[2, 1] = rng.uniform(-4.0, 4.0, 3)  # strongly sheared
        pos = rng.uniform(0.0, 1.0, (4, 3)) @ cell + rng.normal(0.0, 3.0, (4, 3))  # not wrapped into the cell
        inv = np.linalg.inv(cell)
        frac = np.mod(pos @ inv, 1.0)
        reach = np.ceil(1 + r * np.linalg.norm(inv.T, axis=1)).astype(int)
        n = np.array(np.meshgrid(*[np.arange(-k, k + 1) for k in reach], indexing="ij")).reshape(3, -1).T
        best = np.inf
        for i in range(4):
            for j in range(4):
                d = np.linalg.norm((frac[i] - frac[j] + n) @ cell, axis=1)
                if i == j:
                    d = d[(n != 0).any(axis=1)]
                best = min(best, d.min())
        cfg = Configuration(positions=pos, types=np.zeros(4, np.int32), cell=cell, source=f"trial{trial}")
        try:
            D.validate(DataSet([cfg]), min_distance=r)
            found = False
        except DataError as err:
            assert "same position" in str(err)
            found = True
        disagreements += found != (best < r)
        flagged += found
    assert disagreements == 0
    assert 5 < flagged < 55  # both outcomes occur
    # A pair the minimum-image shortcut misses: in a cell with a short a + b, the second
    # atom sits at fractional (0.45, -0.45, 0), which rounds to the 3.5 A image, while
    # the image through +b is 0.40 A away.
    cell = np.array([[4.0, 0.0, 0.0], [-3.8, 0.5, 0.0], [0.0, 0.0, 4.0]])
    pos = np.array([[0.0, 0.0, 0.0], [0.45, -0.45, 0.0]]) @ cell
    cfg = Configuration(positions=pos, types=np.zeros(2, np.int32), cell=cell, source="skewed")
    with pytest.raises(DataError, match=r"skewed: atoms 1 and 2 are at the same position \(distance 4\.00e-01 A\)"):
        D.validate(DataSet([cfg]), min_distance=1.0)


def test_extxyz_label_keys_default_and_named(tmp_path):
    """Without keys named, read_extxyz takes the first of DEFAULT_KEYS the file has
    (vasp_energy, vasp_force, vasp_virial here); a named key is used as given, and one that
    no frame has is a DataError listing the keys found."""
    path = tmp_path / "v.xyz"
    path.write_text('2\nLattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:vasp_force:R:3 '
                    'vasp_energy=-3.5 my_energy=-1.25 vasp_virial="1 0 0 0 2 0 0 0 3" pbc="T T T"\n'
                    "Ag 0 0 0 0.1 0 0\nPd 2 2 2 -0.1 0 0\n")
    cfg = D.read_extxyz(path)[0]
    assert cfg.energy == -3.5
    np.testing.assert_allclose(cfg.forces, [[0.1, 0, 0], [-0.1, 0, 0]])
    np.testing.assert_allclose(cfg.stress, [1, 2, 3, 0, 0, 0])
    assert D.read_extxyz(path, energy_key="my_energy")[0].energy == -1.25
    with pytest.raises(DataError, match=r"v\.xyz: no frame has the energy key 'nope'; keys found: .*vasp_energy"):
        D.read_extxyz(path, energy_key="nope")
    assert D.read_dataset(path, energy_key="my_energy")[0].energy == -1.25
    with pytest.raises(ValueError, match=r"energy_key .* do not apply to this format"):
        D.read_dataset(tmp_path / "x.cfg", energy_key="E")


@pytest.mark.requires_shared
def test_rosenbrock_relaxed_set_reads_its_vasp_labels():
    """data_relaxed.xyz (vasp_energy / vasp_force / vasp_virial) gives 65 labelled
    configurations with no key named: the README's promise that such keys are understood."""
    if not ROSEN.is_dir():
        pytest.skip(f"reference data not found at {ROSEN}")
    ds = D.read_dataset(ROSEN / "data_relaxed.xyz")
    assert len(ds) == 65
    assert all(c.energy is not None and c.forces is not None and c.stress is not None for c in ds)
