"""What optbench needs of a pretrained graph network (a "foundation model"): the protocol
every adapter (sevennet.py, mace.py) implements, in the package's own units.

An adapter wraps one torch module and the package code that builds its inputs. It knows
nothing of optbench's data classes: configurations arrive as atomic numbers, positions
(A) and a cell (A, rows are lattice vectors; None for a molecule), and predictions leave
as energies (eV), forces (eV/A) and the virial in MLIP's PlusStress convention (eV,
-dE/d(strain), Voigt order xx yy zz yz xz xy), so that optbench's loss is the engine's.
"""

from __future__ import annotations

import contextlib
from typing import Protocol, runtime_checkable

import numpy as np

#: Parameter groups every adapter names (``train_groups = "readout"`` trains only the last).
GROUPS = ("embedding", "interactions", "readout")
#: The float types a model may compute in (the optimizers' vector is float64 either way).
DTYPES = ("float64", "float32")


def train_group_names(value) -> tuple[str, ...] | None:
    """The groups a ``train_groups`` setting names: None for "all" (every parameter), else
    the tuple of one or more GROUPS; ValueError naming an unknown group (or "all" in a list)."""
    if value in (None, "all"):
        return None
    names = (value,) if isinstance(value, str) else tuple(value)
    for g in names:
        if g not in GROUPS:
            raise ValueError(f"unknown parameter group {g!r}: give \"all\" or some of {', '.join(GROUPS)}")
    if not names:
        raise ValueError(f"no parameter group: give \"all\" or some of {', '.join(GROUPS)}")
    return names


class FoundationError(ValueError):
    """A model that cannot be loaded or used as asked (missing package or file, unknown
    element, wrong kind of file); the message names the setting or file."""


@runtime_checkable
class FoundationModel(Protocol):
    """One pretrained torch model, ready to be fine-tuned.

    kind      "sevennet" or "mace".
    module    the torch.nn.Module whose parameters are trained.
    cutoff    the model's radial cutoff, A.
    elements  atomic numbers the model knows (sorted).
    dtype     the torch dtype the module computes in (torch.float64 where the model allows).
    suffix    the extension of the files `save` writes (".pth", ".model").
    source    where the weights came from (a package's model name or a path)."""

    kind: str
    cutoff: float
    elements: tuple[int, ...]
    suffix: str
    source: str

    def graph(self, numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray | None):
        """The model's input for one configuration (neighbour list within `cutoff`),
        built once and reused every step."""

    def n_edges(self, graph) -> int:
        """Number of directed neighbour pairs of a graph."""

    def forward(self, graphs: list, training: bool):
        """Energies (n,) eV, forces (sum of atoms, 3) eV/A and virials (n, 6) eV (PlusStress,
        xx yy zz yz xz xy) of the configurations, as torch tensors in `dtype`. With
        `training` the forces keep their graph (create_graph) so that a loss of them can
        be differentiated with respect to the parameters."""

    def groups(self) -> dict[str, list[str]]:
        """Names of the module's parameters (module.named_parameters()) by group:
        "embedding", "interactions", "readout"; every parameter in exactly one."""

    def shift_energies(self, shift: dict[int, float]) -> None:
        """Add `shift[Z]` eV to the reference energy of every atom of element Z, in the
        module itself (so that `save` writes it)."""

    def save(self, path) -> None:
        """Write the module as a file the package's own ASE calculator loads."""


@contextlib.contextmanager
def default_dtype(dtype):
    """torch's default dtype set to `dtype` inside the block (package code that creates
    tensors with the default dtype then matches the module's)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def import_torch(kind: str):
    """torch, or FoundationError saying how to install the optional extra."""
    try:
        import torch
    except ImportError:
        raise FoundationError(f"model kind {kind!r} needs PyTorch: pip install 'mlip-optbench[foundation]' "
                              "(torch==2.13.0, the CPU build)") from None
    return torch
