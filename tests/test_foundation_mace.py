"""The MACE adapter (optbench.foundation.mace) against mace-torch's own ASE calculator and
against finite differences of its own energy.

A small random MACE (2 interactions, 16x0e+16x1o, Mo and W, r_max 5 A) is built once,
saved with torch.save like the MACE-MP files, and loaded by the adapter and by
MACECalculator. Everything is float64, so the tolerances are those of finite differences
(central, step chosen so that truncation and round-off stay below 1e-8) or of summation
order (1e-10)."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))  # xx yy zz yz xz xy
MO, W, CU = 42, 74, 29
# MACECalculator's own torch.load, made weights_only=False by mace through the environment
pytestmark = pytest.mark.filterwarnings("ignore:Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")


@pytest.fixture(scope="module")
def mace_file(tmp_path_factory):
    """The path of a small random ScaleShiftMACE for Mo and W (E0 -10 and -12 eV),
    written with torch.save."""
    torch = pytest.importorskip("torch", reason="the MACE adapter needs PyTorch (extra 'foundation')")
    pytest.importorskip("mace", reason="the MACE adapter needs mace-torch")
    from e3nn import o3
    from mace import modules

    from optbench.foundation.base import default_dtype

    with default_dtype(torch.float64):
        torch.manual_seed(0)
        block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        model = modules.ScaleShiftMACE(
            r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=2,
            interaction_cls=block, interaction_cls_first=block, num_interactions=2,
            num_elements=2, hidden_irreps=o3.Irreps("16x0e+16x1o"), MLP_irreps=o3.Irreps("16x0e"),
            atomic_energies=np.array([-10.0, -12.0]), avg_num_neighbors=10.0,
            atomic_numbers=[MO, W], correlation=3, gate=torch.nn.functional.silu,
            atomic_inter_scale=1.0, atomic_inter_shift=0.0)
    path = tmp_path_factory.mktemp("mace") / "small.model"
    torch.save(model, path)
    return path


def _adapter(path, **kw):
    from optbench.foundation.mace import MaceModel

    return MaceModel(path, **kw)


def _calculator(path):
    from mace.calculators import MACECalculator

    return MACECalculator(model_paths=str(path), device="cpu", default_dtype="float64")


def _mo_cell(seed=1, repeat=2, tungsten=()):
    """bcc Mo (a = 3.16 A, cubic cell) repeated, rattled by 0.05 A and sheared by a random
    symmetric strain of 2 % (so that the off-diagonal virial is not small); the atoms
    with indices in `tungsten` made W."""
    import ase.build

    atoms = ase.build.bulk("Mo", "bcc", a=3.16, cubic=True).repeat(repeat)
    atoms.rattle(0.05, seed=seed)
    strain = np.random.default_rng(seed).normal(scale=0.02, size=(3, 3))
    atoms.set_cell(np.array(atoms.cell) @ (np.eye(3) + (strain + strain.T) / 2), scale_atoms=True)
    numbers = atoms.numbers
    numbers[list(tungsten)] = W
    atoms.numbers = numbers
    return atoms


def _energy(model, numbers, positions, cell):
    return float(model.forward([model.graph(numbers, positions, cell)], False)[0][0])


def _strain_fd(model, numbers, positions, cell, h=1e-5):
    """-dE/d(strain) (eV, Voigt xx yy zz yz xz xy) by central differences: positions and
    cell deformed by I +- e, e symmetric with e_ij = e_ji = h/2 for i != j."""
    out = []
    for i, j in VOIGT:
        e = np.zeros((3, 3))
        e[i, j] += h / 2
        e[j, i] += h / 2
        plus, minus = np.eye(3) + e, np.eye(3) - e
        ep = _energy(model, numbers, positions @ plus, None if cell is None else cell @ plus)
        em = _energy(model, numbers, positions @ minus, None if cell is None else cell @ minus)
        out.append(-(ep - em) / (2 * h))
    return np.array(out)


def _relmax(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.abs(a - b).max() / np.abs(b).max()


def test_imports_without_torch():
    """optbench.foundation.mace imports where torch cannot be imported, and loading a
    model there is a FoundationError that says how to install PyTorch."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from optbench.foundation.base import FoundationError\n"
            "from optbench.foundation.mace import MaceModel\n"
            "try:\n    MaceModel('x.model')\nexcept FoundationError as e:\n    print(e)\n")
    run = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "PyTorch" in run.stdout


def test_agrees_with_calculator_and_finite_differences(mace_file):
    """On a rattled, sheared 16-atom bcc Mo cell: the adapter's energy and forces equal
    MACECalculator's on the same file (1e-10 relative); its forces are minus a central
    difference of its energy (step 1e-4 A, 1e-7 eV/A, three components); its virial is
    -V times the calculator's ASE stress (1e-10 relative) and minus a central difference
    of the energy with respect to a symmetric strain (step 1e-5, 1e-6 relative): MACE's
    `virials` are MLIP's PlusStress, -dE/d(strain)."""
    import torch

    from optbench.foundation.base import FoundationModel

    model = _adapter(mace_file)
    assert isinstance(model, FoundationModel)
    assert (model.kind, model.suffix, model.source) == ("mace", ".model", str(mace_file))
    assert model.cutoff == 5.0 and model.elements == (MO, W) and model.dtype == torch.float64

    atoms = _mo_cell()
    numbers, positions, cell = atoms.numbers, atoms.positions, np.array(atoms.cell)
    graph = model.graph(numbers, positions, cell)
    assert model.n_edges(graph) == graph.edge_index.shape[1] > 16 * 8
    energy, forces, virial = model.forward([graph], False)
    assert energy.shape == (1,) and forces.shape == (16, 3) and virial.shape == (1, 6)
    assert energy.dtype == forces.dtype == virial.dtype == torch.float64

    atoms.calc = _calculator(mace_file)
    assert abs(energy.item() - atoms.get_potential_energy()) <= 1e-10 * abs(atoms.get_potential_energy())
    assert _relmax(forces.numpy(), atoms.get_forces()) <= 1e-10
    assert _relmax(virial[0].numpy(), -atoms.get_volume() * atoms.get_stress()) <= 1e-10

    h = 1e-4
    for a, k in ((0, 0), (7, 2), (13, 1)):
        p = positions.copy()
        p[a, k] += h
        ep = _energy(model, numbers, p, cell)
        p[a, k] -= 2 * h
        em = _energy(model, numbers, p, cell)
        assert abs(-(ep - em) / (2 * h) - forces[a, k].item()) <= 1e-7, (a, k)

    assert _relmax(virial[0].numpy(), _strain_fd(model, numbers, positions, cell)) <= 1e-6


def test_molecule(mace_file):
    """A 5-atom Mo-W cluster (cell None): energy and forces equal MACECalculator's on the
    non-periodic Atoms (1e-10 relative), and the virial is minus a central difference of
    the energy with respect to a symmetric strain of the positions (1e-6 relative)."""
    import ase

    model = _adapter(mace_file)
    positions = np.array([[0, 0, 0], [2.7, 0.1, 0], [0.2, 2.6, 0.3], [1.4, 1.3, 2.2], [-1.5, 1.2, 1.9]])
    numbers = np.array([MO, MO, W, MO, W])
    energy, forces, virial = model.forward([model.graph(numbers, positions, None)], False)
    atoms = ase.Atoms(numbers=numbers, positions=positions, pbc=False)
    atoms.calc = _calculator(mace_file)
    assert abs(energy.item() - atoms.get_potential_energy()) <= 1e-10 * abs(energy.item())
    assert _relmax(forces.numpy(), atoms.get_forces()) <= 1e-10
    assert _relmax(virial[0].numpy(), _strain_fd(model, numbers, positions, None)) <= 1e-6


def test_batch_equals_single(mace_file):
    """forward of [4-atom Mo cell, 8-atom Mo-W cell] equals forward of each alone:
    energies, forces (stacked in order) and virials to 1e-12 relative."""
    import torch

    model = _adapter(mace_file)
    configs = [_mo_cell(seed=2, repeat=(2, 1, 1)), _mo_cell(seed=3, repeat=(2, 2, 1), tungsten=(1, 2, 6))]
    graphs = [model.graph(a.numbers, a.positions, np.array(a.cell)) for a in configs]
    joint = model.forward(graphs, False)
    alone = [model.forward([g], False) for g in graphs]
    assert joint[0].shape == (2,) and joint[1].shape == (12, 3) and joint[2].shape == (2, 6)
    for got, parts in zip(joint, zip(*alone)):
        want = torch.cat(parts)
        assert _relmax(got.numpy(), want.numpy()) <= 1e-12


def test_training_gradients(mace_file):
    """With training=True a loss of the forces (sum of squares, eV^2/A^2) back-propagates
    to the parameters, and its gradient with respect to one interaction and one readout
    weight (the entry of largest gradient in each) is a central difference of the loss
    (step 1e-5, 1e-5 relative, evaluated inside torch.no_grad, where forward still
    computes forces); with training=False nothing requires grad."""
    import torch

    model = _adapter(mace_file)
    atoms = _mo_cell(seed=4, repeat=(2, 2, 1), tungsten=(0, 5))
    graph = model.graph(atoms.numbers, atoms.positions, np.array(atoms.cell))
    assert not any(t.requires_grad for t in model.forward([graph], False))

    def loss(training):
        return (model.forward([graph], training)[1] ** 2).sum()

    model.module.zero_grad(set_to_none=True)
    value = loss(True)
    assert value.requires_grad
    value.backward()
    params = dict(model.module.named_parameters())
    for name in ("interactions.1.linear.weight", "readouts.1.linear_1.weight"):
        p = params[name]
        k = int(p.grad.abs().argmax())
        grad = p.grad.reshape(-1)[k].item()
        assert abs(grad) > 1e-6, name
        h, flat = 1e-5, p.data.reshape(-1)
        original = flat[k].item()
        with torch.no_grad():
            flat[k] = original + h
            lp = loss(False).item()
            flat[k] = original - h
            lm = loss(False).item()
            flat[k] = original
        assert abs((lp - lm) / (2 * h) - grad) <= 1e-5 * abs(grad), name


def test_groups_shift_save_and_errors(mace_file, tmp_path):
    """groups() puts every parameter in exactly one of "embedding", "interactions",
    "readout"; shift_energies({Mo: 0.5}) raises the energy of a 16-Mo cell by 8 eV and
    of a Mo-W cell by 0.5 eV per Mo (1e-10 eV), forces unchanged (1e-12), and the file
    save() writes gives the shifted energy in MACECalculator (1e-10 relative); Cu in
    graph() or shift_energies(), a missing file, a file without a model and dtype
    float16 are FoundationErrors naming the element, path or setting."""
    import torch

    from optbench.foundation.base import GROUPS, FoundationError

    model = _adapter(mace_file)
    groups = model.groups()
    assert tuple(groups) == GROUPS and all(groups.values())
    names = [n for group in groups.values() for n in group]
    assert sorted(names) == sorted(n for n, _ in model.module.named_parameters())
    assert len(names) == len(set(names))
    assert all(n.startswith("readouts.") for n in groups["readout"])

    mo, mow = _mo_cell(seed=5), _mo_cell(seed=6, repeat=(2, 2, 1), tungsten=(0, 3, 4))
    graphs = [model.graph(a.numbers, a.positions, np.array(a.cell)) for a in (mo, mow)]
    e0, f0, _ = model.forward(graphs, False)
    model.shift_energies({MO: 0.5})
    e1, f1, _ = model.forward(graphs, False)
    assert np.allclose((e1 - e0).numpy(), [0.5 * 16, 0.5 * 5], rtol=0, atol=1e-10)
    assert _relmax(f1.numpy(), f0.numpy()) <= 1e-12
    saved = tmp_path / f"shifted{model.suffix}"
    model.save(saved)
    mo.calc = _calculator(saved)
    assert abs(mo.get_potential_energy() - e1[0].item()) <= 1e-10 * abs(e1[0].item())

    with pytest.raises(FoundationError, match=r"\bCu\b.*\bMo\b"):
        model.graph(np.array([MO, CU]), np.array([[0, 0, 0], [2.5, 0, 0.0]]), None)
    with pytest.raises(FoundationError, match=r"\bCu\b"):
        model.shift_energies({CU: 1.0, MO: 1.0})
    assert torch.equal(model.forward(graphs[:1], False)[0], e1[:1])  # nothing changed
    missing = tmp_path / "nowhere" / "mace-mp.model"
    with pytest.raises(FoundationError, match=re.escape(str(missing))):
        _adapter(missing)
    not_model = tmp_path / "state.model"
    torch.save({"weights": torch.zeros(3)}, not_model)
    with pytest.raises(FoundationError, match=re.escape(str(not_model))):
        _adapter(not_model)
    with pytest.raises(FoundationError, match="float16"):
        _adapter(mace_file, dtype="float16")


def test_float32(mace_file):
    """dtype="float32" converts the module; energies and forces agree with float64 to
    1e-5 relative and come back as float32."""
    import torch

    atoms = _mo_cell(seed=7)
    out = {}
    for dtype in ("float32", "float64"):
        model = _adapter(mace_file, dtype=dtype)
        graph = model.graph(atoms.numbers, atoms.positions, np.array(atoms.cell))
        out[dtype] = model.forward([graph], False)
    assert all(p.dtype == torch.float32 for p in _adapter(mace_file, dtype="float32").module.parameters())
    assert out["float32"][0].dtype == out["float32"][1].dtype == torch.float32
    for got, want in zip(out["float32"][:2], out["float64"][:2]):
        assert _relmax(got.double().numpy(), want.numpy()) <= 1e-5
