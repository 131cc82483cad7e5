"""MACE models (the `mace-torch` package) behind optbench's `FoundationModel` protocol.

The weights come from a `.model` file the user supplies: a whole module pickled with
`torch.save(model)`, as the MACE-MP / MACE-OMAT downloads and `mace_run_train` write.
Inputs are built with mace's own data code (`mace.data.AtomicData.from_config`) and
collated with its vendored torch_geometric `Batch`, exactly as `MACECalculator` does, so
that the adapter and the package's calculator see the same graph.

Units are mace's: A, eV, eV/A. MACE's `virials` output is -dE/d(strain) in eV (verified
against finite differences in tests/test_foundation_mace.py), which is MLIP's
PlusStress; its `stress` is +dE/d(strain)/V, ASE's sign, which is not used here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optbench.foundation.base import DTYPES, FoundationError, default_dtype, import_torch

# Top-level submodules of mace.modules.MACE by group; anything else (node_embedding,
# radial_embedding, spherical_harmonics, pair_repulsion_fn, joint_embedding, ...) acts
# before message passing and counts as embedding.
_INTERACTIONS = ("interactions", "products")
_READOUT = ("readouts", "embedding_readout", "scale_shift", "atomic_energies_fn")
# (xx yy zz yz xz xy): MLIP's Voigt order
_VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def _import_mace():
    """The mace package (its data, tools and torch_geometric), or FoundationError."""
    import_torch("mace")
    try:
        import mace.data
        import mace.modules  # unpickling a model needs its classes
        import mace.tools
        from mace.tools import torch_geometric
    except ImportError as err:
        raise FoundationError(f"model kind 'mace' needs mace-torch: pip install mace-torch ({err})") from None
    return mace, torch_geometric


def _symbol(z: int) -> str:
    from ase.data import chemical_symbols

    return chemical_symbols[z] if 0 < z < len(chemical_symbols) else f"Z={z}"


class MaceModel:
    """A MACE model loaded from a `.model` file, computing in `dtype` on `device`.

    kind "mace"; module the torch module; cutoff its r_max (A); elements the atomic
    numbers it knows (sorted); dtype the torch dtype; suffix ".model"; source the path."""

    kind = "mace"
    suffix = ".model"

    def __init__(self, path, dtype: str = "float64", device: str = "cpu"):
        """Load the pickled MACE module at `path` and convert it to `dtype` ("float64" or
        "float32") on `device`; FoundationError naming the path when the file is missing
        or holds no MACE model, or naming the setting when dtype or device is wrong."""
        torch = import_torch("mace")
        self._mace, self._tg = _import_mace()
        name = str(dtype).removeprefix("torch.")
        if name not in DTYPES:
            raise FoundationError(f"mace model dtype {dtype!r}: use one of {', '.join(DTYPES)}")
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise FoundationError(f"mace model device {device!r}: {err}") from None
        path = Path(path)
        if not path.is_file():
            raise FoundationError(f"mace model file {str(path)!r} does not exist")
        try:
            model = torch.load(path, weights_only=False, map_location="cpu")
        except Exception as err:  # noqa: BLE001  (pickle, zip and unpickling errors have no common base)
            raise FoundationError(f"mace model file {str(path)!r} cannot be read by torch.load "
                                  f"({type(err).__name__}: {err}); give the plain .model file (a "
                                  "TorchScript-compiled one cannot be fine-tuned) written with the "
                                  "installed mace-torch and e3nn versions") from None
        if not (isinstance(model, torch.nn.Module)
                and all(hasattr(model, a) for a in ("atomic_numbers", "r_max", "atomic_energies_fn"))):
            raise FoundationError(f"mace model file {str(path)!r} holds a {type(model).__name__}, "
                                  "not a MACE model (a module with atomic_numbers and r_max); "
                                  "a training checkpoint or state dict is not enough")
        self.dtype = getattr(torch, name)
        self.module = model.to(device=self.device, dtype=self.dtype)
        self.source = str(path)
        self.cutoff = float(model.r_max)
        # The z table's order (not the sorted one) indexes the one-hot node attributes
        # and the reference energies.
        self._zs = [int(z) for z in model.atomic_numbers]
        self._z_table = self._mace.tools.utils.AtomicNumberTable(self._zs)
        self.elements = tuple(sorted(self._zs))
        self._heads = list(getattr(model, "heads", None) or ["Default"])
        self._head = self._pick_head(self._heads)

    def _pick_head(self, heads: list[str]) -> str:
        # The head MACECalculator picks without a `head` argument, so that a saved model
        # computes in the calculator what it computed here.
        if len(heads) == 1:
            return heads[0]
        default = [h for h in heads if h.lower() == "default"]
        if not default:
            raise FoundationError(f"mace model {self.source!r} has heads {heads} and none is "
                                  "'default'; optbench cannot tell which one to fine-tune")
        return default[0]

    def graph(self, numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray | None):
        """mace's AtomicData of one configuration: atomic numbers (n,), positions (n, 3) A,
        cell (3, 3) A with lattice vectors as rows (periodic in all three directions) or
        None (a molecule); edges are the neighbour pairs within `cutoff` A.
        FoundationError names an element the model does not know."""
        numbers = np.asarray(numbers, dtype=int).reshape(-1)
        positions = np.asarray(positions, dtype=float).reshape(len(numbers), 3)
        unknown = sorted(set(numbers.tolist()) - set(self._zs))
        if unknown:
            raise FoundationError(
                f"mace model {self.source!r} does not know {', '.join(_symbol(z) for z in unknown)}; "
                f"it knows {', '.join(_symbol(z) for z in self.elements)}")
        periodic = cell is not None
        config = self._mace.data.Configuration(
            atomic_numbers=numbers, positions=positions, properties={}, property_weights={},
            cell=np.asarray(cell, dtype=float).reshape(3, 3) if periodic else None,
            pbc=(periodic,) * 3, head=self._head)
        # AtomicData's float tensors take torch's default dtype.
        with default_dtype(self.dtype):
            return self._mace.data.AtomicData.from_config(
                config, z_table=self._z_table, cutoff=self.cutoff, heads=self._heads)

    def n_edges(self, graph) -> int:
        """Number of directed neighbour pairs (i, j) of a graph (both directions count)."""
        return int(graph.edge_index.shape[1])

    def forward(self, graphs: list, training: bool):
        """Energies (n,) eV, forces (sum of atoms, 3) eV/A and virials (n, 6) eV of the
        configurations; the virial is -dE/d(strain) (MLIP's PlusStress, -V times ASE's
        stress), Voigt order xx yy zz yz xz xy; for a molecule it is the same derivative
        with the positions scaled. With `training` the outputs keep their graph to the
        parameters (forces built with create_graph); without it they are detached."""
        torch = import_torch("mace")
        if not graphs:
            raise FoundationError("mace forward: no configurations")
        batch = self._tg.Batch.from_data_list(list(graphs)).to(self.device)
        data = {}
        for key in batch.keys:
            value = batch[key]
            if torch.is_tensor(value) and torch.is_floating_point(value):
                value = value.to(dtype=self.dtype)
            data[key] = value
        # The batch is new on every call: mace's forward sets requires_grad on the
        # positions and replaces them in the dict, which must not touch the stored graphs.
        # Forces and virials are gradients, so autograd stays on even inside no_grad.
        with torch.enable_grad():
            out = self.module(data, training=training, compute_force=True, compute_virials=True,
                              compute_stress=False)
        energy, forces = out["energy"], out["forces"]
        n = energy.shape[0]
        virials = out.get("virials")
        # mace returns one (1, 3, 3) zero virial when the energy does not depend on the
        # strain at all (no edges in any configuration).
        if virials is None or virials.numel() != 9 * n:
            virials = torch.zeros((n, 3, 3), dtype=energy.dtype, device=energy.device)
        virial = torch.stack([virials.reshape(n, 3, 3)[:, i, j] for i, j in _VOIGT], dim=1)
        if not training:
            energy, forces, virial = energy.detach(), forces.detach(), virial.detach()
        return energy, forces, virial

    def groups(self) -> dict[str, list[str]]:
        """Names of module.named_parameters() by group: "embedding" (node and radial
        embedding, anything before message passing), "interactions" (interaction and
        product blocks), "readout" (readout blocks); every parameter in exactly one."""
        out: dict[str, list[str]] = {"embedding": [], "interactions": [], "readout": []}
        for name, _ in self.module.named_parameters():
            top = name.split(".", 1)[0]
            group = "interactions" if top in _INTERACTIONS else "readout" if top in _READOUT else "embedding"
            out[group].append(name)
        return out

    def shift_energies(self, shift: dict[int, float]) -> None:
        """Add `shift[Z]` eV to the reference energy E0 of element Z (per atom) in the
        module's atomic_energies_fn, in place, for the head in use; FoundationError for an
        element the model does not know (nothing is changed then)."""
        torch = import_torch("mace")
        unknown = sorted(int(z) for z in shift if int(z) not in self._zs)
        if unknown:
            raise FoundationError(f"mace model {self.source!r} has no reference energy for "
                                  f"{', '.join(_symbol(z) for z in unknown)}")
        energies = self.module.atomic_energies_fn.atomic_energies
        # (elements,) for one head, (heads, elements) for several
        row = energies if energies.ndim == 1 else energies[self._heads.index(self._head)]
        with torch.no_grad():
            for z, value in shift.items():
                row[self._zs.index(int(z))] += float(value)

    def save(self, path) -> None:
        """Write the whole module (in its dtype) with torch.save, a `.model` file that
        `mace.calculators.MACECalculator(model_paths=path)` loads."""
        torch = import_torch("mace")
        torch.save(self.module, str(path))
