"""optbench.engine.etn_shape: the pure-Python ETN check agrees with the engine.

- the worked examples of engine/README.md ("Parameter vector and count") come out right;
- for valid specs, n_params, the core sizes and the radial size equal what the engine
  builds (Potential.n_params and the "coreK" / "radial" groups of info()["groups"]);
- for invalid specs, both the engine and check_etn refuse, naming the same problem;
- the module loads neither the engine nor NumPy (validation must not need them).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from optbench.engine.capi import Engine, EngineError
from optbench.engine.etn_shape import EtnShape, check_etn, etn_paths

MODULE = Path(__file__).resolve().parents[1] / "optbench" / "engine" / "etn_shape.py"


@pytest.fixture(scope="module")
def engine():
    return Engine()


def _lists(lists) -> str:
    return "[" + ",".join("[" + ",".join(str(x) for x in v) + "]" for v in lists) + "]"


def spec_of(shape, ranks=None, lmax=None, species=1, radial_basis_size=8, min_dist=None, max_dist=None) -> str:
    """The engine's spec string of check_etn's arguments (lists without spaces); words
    left at None are left out, so the engine applies its own defaults."""
    words = ["etn", f"species={species}"]
    if lmax is not None:
        words.append(f"lmax={lmax}")
    words.append(f"shape={_lists(shape)}")
    if ranks is not None:
        words.append(f"ranks={_lists(ranks)}")
    words.append(f"radial_basis_size={radial_basis_size}")
    if min_dist is not None:
        words.append(f"min_dist={min_dist}")
    if max_dist is not None:
        words.append(f"max_dist={max_dist}")
    return " ".join(words)


def call(kw: dict) -> EtnShape:
    return check_etn(**{k: v for k, v in kw.items() if v is not None})


# ---------------------------------------------------------------- README worked examples

def test_readme_example_660_with_core_sizes_4_69_9():
    s = check_etn([[1], [6], [3]], ranks=[[1], [1]], lmax=2, species=2, radial_basis_size=8)
    assert s.n_channels == 18 and s.n_radial == 576
    assert s.core_sizes == [4, 69, 9]
    assert s.n_params == 660
    assert s.shape == [[1, 1, 1], [6, 6, 6], [3, 3, 3]] and s.ranks == [[1, 1, 1], [1, 1, 1]]


def test_readme_example_ranks_2_gives_880():
    s = check_etn([[1], [6], [3]], ranks=[[2], [2]], lmax=2, species=2, radial_basis_size=8)
    assert s.core_sizes == [8, 276, 18]
    assert s.n_params == 880


def test_readme_example_shape_1_8_4_gives_877():
    s = check_etn([[1], [8], [4]], ranks=[[1], [1]], lmax=2, species=2, radial_basis_size=8)
    assert s.core_sizes == [4, 91, 12]
    assert s.n_params == 877


def test_readme_lists_eleven_paths_for_lmax_2():
    assert etn_paths(2) == [(0, 0, 0), (0, 1, 1), (0, 2, 2), (1, 0, 1), (1, 1, 0), (1, 1, 2), (1, 2, 1),
                            (2, 0, 2), (2, 1, 1), (2, 2, 0), (2, 2, 2)]


def test_defaults_ranks_one_and_lmax_two():
    """ranks default to 1 for every bond and L, lmax to 2 when every list has one value,
    else to the longest list's length minus one."""
    s = check_etn([[1], [6], [3]], species=2)
    assert s.lmax == 2 and s.ranks == [[1, 1, 1], [1, 1, 1]] and s.n_params == 660
    assert check_etn([[1], [6, 4, 2, 1], [3]]).lmax == 3
    assert check_etn([[1], [6], [3]], ranks=[[1], [1, 2]]).lmax == 1


# ---------------------------------------------------------------- parity: valid specs

VALID = [
    # K = 1
    dict(shape=[[1]], ranks=[], lmax=0, species=1, radial_basis_size=2),
    dict(shape=[[3]], ranks=[], lmax=2, species=2, radial_basis_size=8),
    dict(shape=[[1, 2]], ranks=[], species=1, radial_basis_size=5),  # lmax inferred: 1
    dict(shape=[[2, 4, 1, 3]], ranks=[], lmax=3, species=3, radial_basis_size=4),
    # K = 2
    dict(shape=[[1], [2]], ranks=[[1]], lmax=0, species=1, radial_basis_size=8),
    dict(shape=[[1], [6]], ranks=[[3]], lmax=1, species=2, radial_basis_size=6),
    dict(shape=[[1, 0], [1]], ranks=[[1, 1]], lmax=1, species=1, radial_basis_size=8),
    dict(shape=[[2], [0, 2, 2]], ranks=[[0, 1, 3]], lmax=2, species=2, radial_basis_size=3),
    dict(shape=[[1], [3]], ranks=None, lmax=4, species=1, radial_basis_size=7),  # ranks default
    # K = 3
    dict(shape=[[1], [6], [3]], ranks=[[1], [1]], lmax=2, species=2, radial_basis_size=8),
    dict(shape=[[1], [6], [3]], ranks=[[2], [2]], lmax=2, species=2, radial_basis_size=8),
    dict(shape=[[1], [8], [4]], ranks=[[1], [1]], lmax=2, species=2, radial_basis_size=8),
    dict(shape=[[1], [6, 4, 2], [3]], ranks=[[2], [1, 2, 1]], lmax=None, species=3, radial_basis_size=10),
    dict(shape=[[2, 1, 0, 1], [3, 0, 2, 1], [1, 1, 1, 1]], ranks=[[1, 2, 0, 1], [2, 1, 1, 0]], lmax=3,
         species=1, radial_basis_size=6),
    dict(shape=[[1], [2], [1]], ranks=[[2], [3]], lmax=4, species=2, radial_basis_size=4),
    dict(shape=[[0], [0], [1]], ranks=[[1], [1]], lmax=0, species=3, radial_basis_size=2),
    # the middle core couples only 0 x 1 -> 1 (its constant cannot reach L' = 1)
    dict(shape=[[1], [0, 1], [1]], ranks=[[1, 0], [0, 1]], lmax=1, species=1, radial_basis_size=8),
    # K = 4
    dict(shape=[[1], [3, 2], [3, 2], [4, 2]], ranks=[[2], [2], [4]], lmax=1, species=2, radial_basis_size=8),
    dict(shape=[[1], [2], [2], [1]], ranks=[[1], [2], [1]], lmax=3, species=1, radial_basis_size=5),
    dict(shape=[[1, 1, 0, 0, 1], [2], [1, 0, 1, 0, 1], [3, 1, 1, 1, 1]], ranks=[[1], [1, 0, 2, 0, 1], [2]],
         lmax=4, species=3, radial_basis_size=3),
    dict(shape=[[1], [1], [1], [1]], ranks=None, lmax=None, species=1, radial_basis_size=8),
]


@pytest.mark.parametrize("kw", VALID, ids=[spec_of(**kw) for kw in VALID])
def test_parity_with_engine(engine, kw):
    """n_params, every core size and the radial size equal the engine's."""
    pot = engine.potential_from_spec(spec_of(**kw))
    s = call(kw)
    assert s.n_params == pot.n_params
    groups = {g["name"]: g["size"] for g in pot.info()["groups"]}
    assert {k: v for k, v in groups.items() if k.startswith("core")} == {
        f"core{k + 1}": size for k, size in enumerate(s.core_sizes)}
    assert groups["radial"] == s.n_radial
    assert groups["species"] == s.species
    assert pot.info()["species_count"] == s.species


def test_parity_covers_the_range_the_brief_asks_for():
    cores = {len(kw["shape"]) for kw in VALID}
    lmaxes = {call(kw).lmax for kw in VALID}
    assert len(VALID) >= 15
    assert cores == {1, 2, 3, 4} and set(range(5)) <= lmaxes
    assert {kw["species"] for kw in VALID} == {1, 2, 3}
    assert any(max(max(r) for r in kw["ranks"] or [[1]]) > 1 for kw in VALID)
    assert any(any(len(v) > 1 for v in kw["shape"]) for kw in VALID)


# ---------------------------------------------------------------- parity: invalid specs

# (arguments, a phrase both the engine's message and check_etn's contain)
INVALID = [
    # a last core without any channel
    (dict(shape=[[1], [0]]), "core 2 couples nothing"),
    # the last core has only l > 0 channels, but its incoming bond carries only L = 0
    (dict(shape=[[1], [0, 2, 2]], ranks=[[1, 0, 0]], lmax=2), "core 2 couples nothing"),
    # one core, only l = 1 channels: h_0 and h_1 are scalars, so only l = 0 couples
    (dict(shape=[[0, 3]], ranks=[], lmax=1), "core 1 couples nothing"),
    # a bond with no copies at all
    (dict(shape=[[1], [3]], ranks=[[0]]), "core 1 couples nothing"),
    # core 1 has only the constant (l = 0) and sends only L' = 1: 0 + 0 + 1 is odd
    (dict(shape=[[1, 0], [1]], ranks=[[0, 1]], lmax=1), "core 1 couples nothing"),
    # a middle core that receives only L = 0, sends only L' = 1 and reads only l = 0 (the
    # constant and two channels): 0 + 0 + 1 is odd
    (dict(shape=[[1], [2, 0], [1]], ranks=[[1, 0], [0, 1]], lmax=1), "core 2 couples nothing"),
    (dict(shape=[[1], [6], [3]], ranks=[[1]]), "3 cores need 2 ranks, got 1"),
    (dict(shape=[[1], [6]], ranks=[[1], [1]]), "2 cores need 1 ranks, got 2"),
    (dict(shape=[[1, 2], [3]], lmax=2), "shape of core 1 has 2 entries"),
    (dict(shape=[[1], [3]], ranks=[[1, 1]], lmax=2), "ranks of bond 1 has 2 entries"),
    (dict(shape=[[]]), "shape of core 1 has 0 entries"),
    (dict(shape=[[1], [-1]]), "entries must be integers >= 0"),
    (dict(shape=[[1], [2]], ranks=[[1.5]]), "entries must be integers >= 0"),
    (dict(shape=[[2000000]]), "entries must be integers >= 0"),
    (dict(shape=[]), "shape must list at least one core"),
    (dict(shape=[[1]], lmax=9), "lmax must be in 0..8"),
    (dict(shape=[[1]], lmax=-1), "lmax must be in 0..8"),
    (dict(shape=[[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]]), "lmax must be in 0..8"),  # inferred lmax 9
    (dict(shape=[[1]], species=0), "species_count must be >= 1"),
    (dict(shape=[[1]], radial_basis_size=1), "radial_basis_size must be >= 2"),
    (dict(shape=[[1]], min_dist=3.0, max_dist=3.0), "need 0 <= min_dist < max_dist"),
    (dict(shape=[[1]], min_dist=4.0, max_dist=3.0), "need 0 <= min_dist < max_dist"),
    (dict(shape=[[1]], min_dist=-1.0), "need 0 <= min_dist < max_dist"),
]


@pytest.mark.parametrize("kw,phrase", INVALID, ids=[spec_of(**kw) for kw, _ in INVALID])
def test_both_refuse(engine, kw, phrase):
    """The engine refuses the spec (EngineFormatError is an EngineError) and check_etn
    raises ValueError; both messages name the same problem."""
    with pytest.raises(EngineError) as from_engine:
        engine.potential_from_spec(spec_of(**kw))
    with pytest.raises(ValueError) as from_check:
        call(kw)
    assert phrase in str(from_engine.value)
    assert phrase in str(from_check.value)
    assert str(from_check.value).startswith("ETN: ")


def test_invalid_cases_cover_the_brief():
    assert len(INVALID) >= 8
    assert sum("couples nothing" in phrase for _, phrase in INVALID) >= 5


# ---------------------------------------------------------------- Python-side inputs

@pytest.mark.parametrize("kw", [
    dict(shape="1;6;3"),
    dict(shape=[[1], ["6"]]),
    dict(shape=[[True], [6]]),
    dict(shape=[[1], [6]], ranks=[[None]]),
    dict(shape=[[1]], lmax=1.5),
    dict(shape=[[1]], species=2.5),
    dict(shape=[[1]], radial_basis_size="8"),
    dict(shape=[[1]], max_dist=float("inf")),
    dict(shape=[[1]], min_dist=float("nan")),
])
def test_values_of_the_wrong_type_are_a_value_error(kw):
    with pytest.raises(ValueError, match="^ETN: "):
        check_etn(**kw)


def test_single_values_and_integral_floats_pass_as_in_spec_strings(engine):
    """The engine reads shape=[1,6,3] as three one-value cores and 2.0 as 2."""
    assert check_etn([1, 6, 3]).n_params == engine.potential_from_spec("etn shape=[1,6,3]").n_params
    assert check_etn([[1.0], [6.0], [3.0]], lmax=2.0, species=2.0).n_params == 660


def test_result_is_frozen():
    s = check_etn([[1], [6], [3]])
    with pytest.raises(Exception):
        s.lmax = 3  # type: ignore[misc]
    assert s.n_cores == 3


# ---------------------------------------------------------------- no engine, no NumPy

def test_module_imports_only_the_standard_library():
    tree = ast.parse(MODULE.read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names <= set(sys.stdlib_module_names) | {"__future__"}, names
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree))
    assert ast.get_docstring(tree)
    assert ast.get_docstring(next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check_etn"))


def test_importing_it_loads_neither_the_engine_nor_numpy():
    code = ("import sys; from optbench.engine.etn_shape import check_etn; check_etn([[1],[6],[3]]); "
            "bad = [m for m in ('numpy', 'ctypes', 'optbench.engine.capi') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------- seeded sweep

def _random_kwargs(rng) -> dict:
    """Random hyperparameters, many of them invalid (wrong lengths, zero channels or
    ranks, lmax out of range, bad radial basis)."""
    K = rng.randint(1, 4)
    lmax = rng.choice([None, 0, 1, 2, 3, 4, rng.randint(-1, 9)])
    L = lmax if lmax is not None and 0 <= lmax <= 8 else rng.randint(0, 3)

    def per_l():
        if rng.random() < 0.4:
            return [rng.randint(0, 3)]
        n = L + 1 if rng.random() < 0.9 else rng.randint(0, L + 3)
        return [rng.randint(0, 3) if rng.random() > 0.3 else 0 for _ in range(n)]

    n_bonds = K - 1 if rng.random() < 0.9 else rng.randint(0, K + 1)
    return dict(shape=[per_l() for _ in range(K)],
                ranks=None if rng.random() < 0.2 else [per_l() for _ in range(n_bonds)],
                lmax=lmax, species=rng.choice([0, 1, 2, 3]) if rng.random() < 0.1 else rng.randint(1, 3),
                radial_basis_size=rng.choice([1, 2, 3, 8]),
                min_dist=rng.choice([None, 0.0, 2.0, 4.5, 6.0, -0.5]), max_dist=rng.choice([None, 5.0, 4.0]))


def test_seeded_sweep_agrees_with_engine(engine):
    """800 random specs: the engine builds one exactly when check_etn accepts it, with
    the same n_params; when both refuse, the messages start alike (the engine writes
    "ETN core k couples nothing", check_etn "ETN: core k couples nothing")."""
    import random
    rng = random.Random(20240611)
    accepted = refused = 0
    for _ in range(800):
        kw = _random_kwargs(rng)
        try:
            expected, engine_msg = engine.potential_from_spec(spec_of(**kw)).n_params, None
        except EngineError as err:
            expected, engine_msg = None, str(err)
        try:
            got, msg = call(kw).n_params, None
        except ValueError as err:
            got, msg = None, str(err)
        assert got == expected, (spec_of(**kw), engine_msg, msg)
        if engine_msg is not None:
            refused += 1
            assert engine_msg.replace("ETN core", "ETN: core")[:22] == msg[:22], (spec_of(**kw), engine_msg, msg)
        else:
            accepted += 1
    assert accepted > 100 and refused > 100
