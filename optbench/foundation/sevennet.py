"""SevenNet through the `sevenn` package: SevenNet-0 ("7net-0", shipped inside the wheel,
so it loads with no network) or a SevenNet checkpoint file.

The module computes in float64 by default. sevenn builds and ships its models in float32;
two of its pieces hard-code that (the checkpoint's compatibility patch compares float32
tensors, and the one-hot embedding casts with ``.float()``, sevenn 0.13
nn/node_embedding.py), so the model is built in float32 as sevenn does, converted with
``.to(float64)``, and the one-hot output is cast by a forward hook; results agree with the
float32 model to its rounding (tests/test_foundation_sevennet.py).

Forces and the virial come from sevenn's own ForceStressOutputFromEdge (derivatives with
respect to the edge vectors): its stress is -(dE/d strain)/V in the order xx yy zz xy yz
zx, so the PlusStress virial is V times it, reordered.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from optbench.foundation.base import DTYPES, FoundationError, default_dtype, import_torch

#: Models shipped inside the sevenn wheel that load offline.
PRETRAINED = ("7net-0",)
#: sevenn's stress order xx yy zz xy yz zx -> PlusStress order xx yy zz yz xz xy
_TO_PLUS_ORDER = [0, 1, 2, 4, 5, 3]


def cast_onehot(module, dtype) -> None:
    """Make every one-hot embedding of a sevenn module give `dtype` (sevenn 0.13's
    OnehotEmbedding casts with .float()): a forward hook on each."""
    from sevenn.nn.node_embedding import OnehotEmbedding

    def cast(_mod, _inp, out):
        for key, value in out.items():
            if hasattr(value, "is_floating_point") and value.is_floating_point() and value.dtype != dtype:
                out[key] = value.to(dtype)
        return out

    for sub in module.modules():
        if isinstance(sub, OnehotEmbedding):
            sub.register_forward_hook(cast)


class SevenNetModel:
    """A SevenNet model ready to be fine-tuned (optbench.foundation.base.FoundationModel).

    source: "7net-0" (the pretrained SevenNet-0 in the sevenn wheel: 842 623 parameters,
    cutoff 5 A, 89 elements of MPtrj) or the path of a sevenn checkpoint (.pth), such as
    one `save` wrote. dtype: "float64" (default) or "float32"."""

    kind = "sevennet"
    suffix = ".pth"

    def __init__(self, source: str | os.PathLike = "7net-0", dtype: str = "float64"):
        torch = import_torch(self.kind)
        try:
            from sevenn.util import load_checkpoint, pretrained_name_to_path
        except ImportError:
            raise FoundationError("model kind 'sevennet' needs the sevenn package: "
                                  "pip install 'mlip-optbench[foundation]'") from None
        if dtype not in DTYPES:
            raise FoundationError(f"dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
        self.source = str(source)
        if self.source in PRETRAINED:
            path = pretrained_name_to_path(self.source)
        else:
            path = Path(self.source)
            if not path.is_file():
                raise FoundationError(f"{self.source}: no such SevenNet checkpoint (or give a model shipped "
                                      f"with sevenn: {', '.join(PRETRAINED)})")
        try:
            self._checkpoint = load_checkpoint(str(path))
            with default_dtype(torch.float32):
                module = self._checkpoint.build_model()
        except Exception as err:  # sevenn raises many kinds for a file that is not its checkpoint
            raise FoundationError(f"{self.source}: not a SevenNet checkpoint ({type(err).__name__}: {err})") from None
        self.dtype = getattr(torch, dtype)
        module = module.to(self.dtype)
        module.set_is_batch_data(True)
        cast_onehot(module, self.dtype)
        self.module = module
        config = self._checkpoint.config
        self.cutoff = float(config["cutoff"])
        self.type_map = dict(module.type_map)
        self.elements = tuple(sorted(int(z) for z in self.type_map))
        self._torch = torch

    def graph(self, numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray | None):
        """sevenn's AtomGraphData of one configuration: the neighbour pairs within the
        cutoff (sevenn's own graph builder), positions and edge vectors in A."""
        from ase import Atoms
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph
        from sevenn.util import dtype_correct

        unknown = sorted({int(z) for z in numbers} - set(self.elements))
        if unknown:
            from ase.data import chemical_symbols
            raise FoundationError(f"SevenNet model {self.source} does not know element(s) "
                                  f"{', '.join(chemical_symbols[z] for z in unknown)}")
        atoms = Atoms(numbers=numbers, positions=positions, cell=cell if cell is not None else np.zeros((3, 3)),
                      pbc=cell is not None)
        # AtomGraphData.from_numpy_dict rounds the edge vectors to float32 (sevenn's
        # dtype_correct default), which puts 1e-8 eV of noise on the energy: the same
        # conversion, in the model's dtype.
        raw = unlabeled_atoms_to_graph(atoms, self.cutoff)
        return AtomGraphData(**{k: dtype_correct(v, float_dtype=self.dtype) for k, v in raw.items()})

    def n_edges(self, graph) -> int:
        """Directed neighbour pairs of a graph."""
        return int(graph["edge_index"].shape[1])

    def forward(self, graphs: list, training: bool):
        """Energies (n,) eV, forces (atoms, 3) eV/A and PlusStress virials (n, 6) eV of the
        configurations; with `training`, differentiable in the parameters."""
        import sevenn._keys as KEY
        from torch_geometric.data import Batch

        torch = self._torch
        # The model writes its outputs into the batch: collation makes a fresh one every
        # call (it copies every tensor, even of one graph), so the stored graphs stay clean.
        batch = Batch.from_data_list(graphs)
        self.module.train(training)
        with default_dtype(self.dtype):
            out = self.module(batch)
        energy = out[KEY.PRED_TOTAL_ENERGY].reshape(-1)
        forces = out[KEY.PRED_FORCE]
        volume = batch[KEY.CELL_VOLUME].reshape(-1, 1)
        periodic = torch.tensor([g[KEY.CELL_VOLUME] > 0 for g in graphs]).reshape(-1, 1)
        virial = torch.where(periodic, out[KEY.PRED_STRESS][:, _TO_PLUS_ORDER] * volume, 0.0)
        if not training:
            energy, forces, virial = energy.detach(), forces.detach(), virial.detach()
        return energy, forces, virial

    def groups(self) -> dict[str, list[str]]:
        """Parameter names by group: "embedding" (edge basis, one-hot to features),
        "interactions" (the numbered interaction blocks), "readout" (the energy MLP and
        the per-element rescaling)."""
        out: dict[str, list[str]] = {"embedding": [], "interactions": [], "readout": []}
        for name, _ in self.module.named_parameters():
            top = name.split(".", 1)[0]
            if top[:1].isdigit():
                out["interactions"].append(name)
            elif top in ("edge_embedding", "onehot_to_feature_x"):
                out["embedding"].append(name)
            else:
                out["readout"].append(name)
        return out

    def shift_energies(self, shift: dict[int, float]) -> None:
        """Add shift[Z] eV to every atom of element Z: into the per-element shift of
        sevenn's SpeciesWiseRescale, after which the atomic energies are summed."""
        rescale = self.module._modules.get("rescale_atomic_energy")
        if rescale is None or getattr(rescale, "shift", None) is None or rescale.shift.ndim != 1:
            raise FoundationError(f"SevenNet model {self.source} has no per-element energy shift to adjust")
        with self._torch.no_grad():
            for z, value in shift.items():
                if int(z) not in self.type_map:
                    raise FoundationError(f"element Z={z} is not one of the model's")
                rescale.shift[self.type_map[int(z)]] += float(value)

    def save(self, path) -> None:
        """A sevenn checkpoint (the file SevenNetCalculator(model=path) loads): the
        pretrained checkpoint's configuration with this module's weights, in float32 as
        sevenn keeps them."""
        torch = self._torch
        state = {k: (v.detach().to(torch.float32) if v.is_floating_point() else v.detach())
                 for k, v in self.module.state_dict().items()}
        # The version of the sevenn that wrote the weights: an older one in the config
        # would make load_checkpoint re-apply its layout patch to weights already patched.
        import sevenn

        config = {**self._checkpoint.config, "version": sevenn.__version__}
        config.pop("_flash_lammps", None)
        payload = {"model_state_dict": state, "config": config,
                   "optimizer_state_dict": None, "scheduler_state_dict": None, "epoch": 0}
        torch.save(payload, str(path))
