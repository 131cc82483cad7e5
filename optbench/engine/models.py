"""A model, as a RunSpec or the command line describes it, turned into an engine potential.

The model dict (experiments/runspec.py): ``kind`` ("mtp" or "etn"); for an MTP ``level``
or ``template`` (an .mtp/.almtp file whose basis is kept, coefficients the engine's
defaults), for an ETN ``shape``, ``ranks``, ``lmax`` or ``template`` (an ETN JSON file);
``min_dist`` / ``max_dist`` (Angstrom), ``radial_basis_size``. The command line adds two
ways: ``file`` (a potential file loaded with its coefficients) and ``spec`` (an engine
spec string such as "mtp level=8" or "etn shape=1;6;3", species filled in).
"""

from __future__ import annotations

from optbench.engine.etn_shape import check_etn

MODEL_KINDS = ("mtp", "etn")


def _lists(lists: list[list[int]]) -> str:
    return "[" + ",".join("[" + ",".join(str(int(v)) for v in row) + "]" for row in lists) + "]"


def etn_spec(model: dict, n_species: int) -> str:
    """The engine's spec string of an ETN model dict (shape, ranks, lmax, radial basis)
    for `n_species` species, in the study's list notation (engine/README.md, "ETN")."""
    words = ["etn", f"species={n_species}", f"shape={_lists(model['shape'])}", f"ranks={_lists(model['ranks'])}"]
    for key in ("lmax", "radial_basis_size", "min_dist", "max_dist"):
        if model.get(key) is not None:
            words.append(f"{key}={model[key]}")
    return " ".join(words)


def check_etn_model(model: dict):
    """The ETN a model dict describes, checked without the engine (etn_shape.check_etn:
    the engine's rules and parameter count); ValueError saying what is wrong."""
    kw = {k: model[k] for k in ("lmax", "radial_basis_size", "min_dist", "max_dist") if model.get(k) is not None}
    return check_etn(model["shape"], model.get("ranks"), **kw)


def spec_with_species(text: str, n_species: int) -> str:
    """An engine spec string ("mtp level=8", "etn shape=1;6;3") with species=n_species
    added unless it names the species itself; ValueError when it is not a spec."""
    text = text.strip()
    if text.split(" ", 1)[0] not in MODEL_KINDS:
        raise ValueError(f"potential {text!r}: no such file, and not a spec such as 'mtp level=8' or 'etn shape=1;6;3'")
    return text if "species=" in text else f"{text} species={n_species}"


def build_potential(engine, model: dict, n_species: int):
    """The C-ABI potential a model dict describes, for `n_species` species: a potential
    file (``file``, with its coefficients), a spec string (``spec``), an MTP level or
    template, an ETN shape and ranks or ETN JSON template."""
    if model.get("file"):
        return engine.load_potential(model["file"])
    if model.get("spec"):
        return engine.potential_from_spec(spec_with_species(model["spec"], n_species))
    kind = model.get("kind", "mtp")
    if kind not in MODEL_KINDS:
        raise ValueError(f"model kind {kind!r}: expected 'mtp' or 'etn'")
    if kind == "etn":
        if model.get("template"):
            pot = engine.load_potential(model["template"])
            if pot.info()["species_count"] != n_species:
                raise ValueError(f"{model['template']}: {pot.info()['species_count']} species, the data have {n_species}")
            return pot
        return engine.potential_from_spec(etn_spec(model, n_species))
    words = [kind]
    if model.get("template"):
        if any(ch.isspace() for ch in str(model["template"])):
            raise ValueError(f"template path {model['template']!r} contains whitespace, which the engine's spec cannot hold")
        words.append(f"template={model['template']}")
    else:
        words.append(f"level={int(model['level'])}")
    words.append(f"species={n_species}")
    for key in ("min_dist", "max_dist", "radial_basis_size"):
        if model.get(key) is not None:
            words.append(f"{key}={model[key]}")
    return engine.potential_from_spec(" ".join(words))
