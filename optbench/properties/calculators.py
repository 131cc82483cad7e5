"""The ASE calculator of a potential file, whatever made it.

- ``.mtp`` / ``.almtp`` / ETN ``.json``: the embedded engine's calculator
  (optbench.engine.calculator.EngineCalculator, with a neighbour skin);
- ``.pth`` (a sevenn checkpoint, e.g. a fine-tuned SevenNet) and ``7net-0``: sevenn's own
  SevenNetCalculator;
- ``.model`` (a MACE model file): mace-torch's own MACECalculator, in float64;
- ``emt``: ASE's EMT, the exact reference of the generated Ag-Pd data.

The torch packages are imported only when their file is asked for (optional extra
optbench[foundation]).
"""

from __future__ import annotations

from pathlib import Path

from optbench.properties.base import PropertyError

__all__ = ["ENGINE_SUFFIXES", "calculator_for"]

ENGINE_SUFFIXES = (".mtp", ".almtp", ".json")


def calculator_for(potential: str, species: list[str] | None = None, *, threads: int = 1):
    """An ASE calculator for `potential` (a file path, "7net-0" or "emt"; module
    docstring). `species`: the element of each species index of an engine potential
    (the training data's species list); `threads`: the engine's threads. PropertyError
    naming the file when it cannot be loaded."""
    text = str(potential)
    if text.lower() == "emt":
        from ase.calculators.emt import EMT

        return EMT()
    if text in ("7net-0", "sevennet", "SevenNet-0"):
        return _sevennet("7net-0")
    path = Path(text)
    if not path.is_file():
        raise PropertyError(f"{text}: no such potential file")
    suffix = path.suffix.lower()
    if suffix in ENGINE_SUFFIXES:
        if not species:
            raise PropertyError(f"{text}: an engine potential needs the element of each species index "
                                "(--species Ag,Pd: the training data's order)")
        from optbench.engine.calculator import EngineCalculator

        try:
            return EngineCalculator(path, species=list(species), num_threads=threads)
        except (OSError, ValueError, RuntimeError) as err:
            raise PropertyError(f"{text}: cannot load as an engine potential: {err}") from None
    if suffix == ".pth":
        return _sevennet(str(path))
    if suffix == ".model":
        try:
            from mace.calculators import MACECalculator
        except ImportError as err:
            raise PropertyError(f"{text}: a MACE model needs mace-torch (pip install 'mlip-optbench[mace]'): "
                                f"{err}") from None
        return MACECalculator(model_paths=str(path), device="cpu", default_dtype="float64")
    raise PropertyError(f"{text}: unknown potential format {suffix!r}; expected .mtp, .almtp, .json (engine), "
                        ".pth (sevenn), .model (MACE), or 'emt' / '7net-0'")


def _sevennet(model: str):
    try:
        from sevenn.calculator import SevenNetCalculator
    except ImportError as err:
        raise PropertyError(f"{model}: SevenNet needs sevenn (pip install 'mlip-optbench[foundation]'): {err}") from None
    return SevenNetCalculator(model=model, device="cpu")
