"""Pretrained graph networks ("foundation models") as optbench fine-tunes them: one adapter
module per package behind the protocol of base.py (sevennet.py: the `sevenn` package,
SevenNet-0 offline; mace.py: `mace-torch`, from a model file the user supplies).

Nothing here imports torch at import time: the core installs and runs without the
optional extra ``optbench[foundation]``.
"""

from __future__ import annotations

from optbench.foundation.base import DTYPES, GROUPS, FoundationError, FoundationModel, train_group_names

#: Model kinds of experiment files and the command line, and the setting that names the weights.
FOUNDATION_KINDS = ("sevennet", "mace")

__all__ = ["DTYPES", "FOUNDATION_KINDS", "GROUPS", "FoundationError", "FoundationModel", "load_foundation",
           "train_group_names"]


def load_foundation(model: dict):
    """The adapter a model dict describes: kind "sevennet" (``model`` = "7net-0", the
    default, or a sevenn checkpoint path) or "mace" (``model`` = a MACE model file,
    required); ``dtype`` "float64" (default) or "float32". FoundationError naming the
    setting when the package or file is missing."""
    kind = model.get("kind")
    dtype = model.get("dtype", "float64")
    if kind == "sevennet":
        from optbench.foundation.sevennet import SevenNetModel

        return SevenNetModel(model.get("model") or "7net-0", dtype=dtype)
    if kind == "mace":
        if not model.get("model"):
            raise FoundationError("kind 'mace' needs model = PATH of a MACE model file (e.g. a MACE-MP .model)")
        from optbench.foundation.mace import MaceModel

        return MaceModel(model["model"], dtype=dtype)
    raise FoundationError(f"model kind {kind!r}: expected one of {', '.join(FOUNDATION_KINDS)}")
