"""The MLIP-4 shim (mlip4_patches/mlip4_capi.cpp) against the C ABI it implements.

MLIP-4 is not public, so the shim cannot be built here as it ships. Three checks instead:

* Header check. Each exported function of the shim is a definition whose line begins
  with ``MLIPC_API``; its signature is the text from there to the ``{`` that opens its
  body (``EXPORTED`` below; a signature may span lines). A generated C++ file includes
  engine/include/mlipc.h, takes ``&::name`` of every exported name (a compile error
  when the header does not declare it) and then redeclares every extracted signature
  inside ``extern "C"`` (a C-linkage declaration that conflicts with the header's is a
  compile error). ``g++ -std=c++17 -fsyntax-only`` must accept it, and the exported names
  must be exactly the functions mlipc.h declares (parsed with its comments removed).
* Documentation. Every call marked ``// MLIP-4: <name>`` lies inside the shim's one
  MLIP-4 section, and the marked names are exactly the list under "## MLIP-4 calls relied
  on" in mlip4_patches/README.md.
* The shim's own code. Its MLIP-4 section is replaced by a small stand-in (STANDIN
  below: a fake potential, loss objects that record the JSON they are built from), the
  result is compiled into a library and driven through optbench.engine.capi like any
  mlipc.h implementation: the same bad input gives the same status code and message as
  the embedded engine, neighbour-pair counts agree, the data records are the MLIP-4 JSON
  that optbench.io.mlip4_records writes, batches reuse their loss objects, and what
  MLIP-4 cannot serve says so with MLIPC_ERR_UNSUPPORTED.
"""

from __future__ import annotations

import ctypes
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT

from optbench.engine import capi
from optbench.io import mlip4_records
from optbench.objective import LossWeights

SHIM = REPO_ROOT / "mlip4_patches" / "mlip4_capi.cpp"
README = REPO_ROOT / "mlip4_patches" / "README.md"
INCLUDE = REPO_ROOT / "engine" / "include"
GXX = shutil.which("g++")
needs_gxx = pytest.mark.skipif(GXX is None, reason="g++ is not on PATH: the shim checks compile C++")

EXPORTED = re.compile(r"^MLIPC_API\s+([^{;]*?\b(mlipc_\w+)\s*\([^{;]*?\))\s*\{", re.M | re.S)
DECLARED = re.compile(r"\b(mlipc_[a-z_]+)\s*\(")
COMMENTS = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
MARK = re.compile(r"//\s*MLIP-4:\s*([A-Za-z_]\w*)")
SECTION = re.compile(r"^// =+ BEGIN MLIP-4 SECTION =+$.*?^// =+ END MLIP-4 SECTION =+$", re.M | re.S)


# ---------------------------------------------------------------- header check

def exported_signatures(source: str) -> dict[str, str]:
    """name -> signature (return type, name, parameters) of every MLIPC_API definition."""
    return {m.group(2): " ".join(m.group(1).split()) for m in EXPORTED.finditer(source)}


def header_functions() -> set[str]:
    """Functions declared in mlipc.h (comments removed first: they mention names too)."""
    return set(DECLARED.findall(COMMENTS.sub("", (INCLUDE / "mlipc.h").read_text())))


def header_check(source: str, workdir: Path) -> subprocess.CompletedProcess:
    """Compile the header check of `source`'s exported signatures; the result's returncode
    is 0 when every one is declared by mlipc.h with the same C-linkage signature."""
    sigs = exported_signatures(source)
    lines = ['#include "mlipc.h"', '#include "mlipc_export.h"', ""]
    lines += [f"[[maybe_unused]] static const auto declared_{n} = &::{n};" for n in sigs]
    lines += ['extern "C" {'] + [f"MLIPC_API {s};" for s in sigs.values()] + ["}"]
    check = workdir / "header_check.cpp"
    check.write_text("\n".join(lines) + "\n")
    return subprocess.run([GXX, "-std=c++17", "-fsyntax-only", "-Wall", f"-I{INCLUDE}", str(check)],
                          capture_output=True, text=True)


@needs_gxx
def test_shim_exports_exactly_the_header(tmp_path):
    source = SHIM.read_text()
    result = header_check(source, tmp_path)
    assert result.returncode == 0, result.stderr
    assert set(exported_signatures(source)) == header_functions()


def test_extraction_sees_every_exported_definition():
    """The regex misses none: as many signatures as lines that begin with MLIPC_API."""
    source = SHIM.read_text()
    assert len(exported_signatures(source)) == len(re.findall(r"^MLIPC_API\b", source, re.M))
    assert len(header_functions()) >= 20


@needs_gxx
def test_checker_rejects_a_wrong_signature(tmp_path):
    source = SHIM.read_text()
    wrong = source.replace("mlipc_potential_set_params(mlipc_potential* pot, const double* x, int64_t n)",
                           "mlipc_potential_set_params(mlipc_potential* pot, const double* x, int n)")
    assert wrong != source
    result = header_check(wrong, tmp_path)
    assert result.returncode != 0
    assert "mlipc_potential_set_params" in result.stderr


@needs_gxx
def test_checker_rejects_a_wrong_return_type_and_an_extra_export(tmp_path):
    source = SHIM.read_text()
    wrong = source.replace("MLIPC_API void mlipc_dataset_free(", "MLIPC_API int mlipc_dataset_free(")
    assert wrong != source
    assert header_check(wrong, tmp_path).returncode != 0
    extra = source + '\nextern "C" {\nMLIPC_API int mlipc_extra(void) { return 0; }\n}\n'
    result = header_check(extra, tmp_path)
    assert result.returncode != 0 and "mlipc_extra" in result.stderr


def test_checker_sees_a_missing_function():
    source = SHIM.read_text()
    start = source.index("MLIPC_API int mlipc_predict(")
    without = source[:start] + source[source.index("MLIPC_API int mlipc_loss_grad("):]
    assert header_functions() - set(exported_signatures(without)) == {"mlipc_predict"}


# ---------------------------------------------------------------- documented MLIP-4 calls

def documented_calls(readme: str) -> set[str]:
    """Backticked names of the bullets under "## MLIP-4 calls relied on"."""
    section = readme.split("## MLIP-4 calls relied on", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\s*[-*]\s*`([A-Za-z_]\w*)`", section, re.M))


def test_marked_calls_are_in_the_section_and_documented():
    source = SHIM.read_text()
    sections = SECTION.findall(source)
    assert len(sections) == 1, "the shim must have exactly one marked MLIP-4 section"
    marked = set(MARK.findall(source))
    assert marked, "no `// MLIP-4: <name>` marks found"
    assert set(MARK.findall(sections[0])) == marked, "MLIP-4 calls outside the MLIP-4 section"
    assert marked == documented_calls(README.read_text())


def test_documentation_check_can_fail():
    readme = "intro\n## MLIP-4 calls relied on\n- `calc` - the loss\n- `params`\n## Next\n- `other`\n"
    assert documented_calls(readme) == {"calc", "params"}
    assert set(MARK.findall("x(); // MLIP-4: calc\ny(); // MLIP-4: attach_pot")) - documented_calls(readme) \
        == {"attach_pot"}


def assumed_surface(readme: str) -> str:
    """The C++ block under "## Assumed C++ surface" in the README."""
    section = readme.split("## Assumed C++ surface", 1)[1]
    return section.split("```cpp\n", 1)[1].split("```", 1)[0]


@needs_gxx
def test_section_compiles_against_the_documented_surface(tmp_path):
    """The shim as it ships, its MLIP-4 headers replaced by the README's assumed surface:
    the section uses MLIP-4 exactly as documented (and the whole file is valid C++)."""
    headers = tmp_path / "mlip4"
    headers.mkdir()
    (headers / "mtp.h").write_text(assumed_surface(README.read_text()))
    for name in ("etn.h", "loss_function.h", "radial_basis.h"):
        (headers / name).write_text('#include "mtp.h"\n')
    result = subprocess.run([GXX, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", f"-I{INCLUDE}",
                             f"-I{tmp_path}", str(SHIM)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- the shim with a stand-in MLIP-4

STANDIN = r"""
// Stand-in for MLIP-4 (tests/test_mlip4_shim.py): a potential is a parameter vector,
// a loss object contributes params[0] to the loss and 1 to gradient entry 0.
namespace m4 {
struct Error : std::runtime_error { using std::runtime_error::runtime_error; };
struct Potential { std::string kind; int species; double lo, hi; std::vector<double> params; };
struct LossFunction { const Potential* pot = nullptr; };
std::string g_records;
int g_builds = 0, g_attaches = 0;

std::unique_ptr<Potential> make_mtp(int level, int species, int funcs, double lo, double hi, int basis) {
    if (level < 2) throw Error("level " + std::to_string(level) + " is too low");
    const size_t n = size_t(level) + size_t(species) * species * funcs * basis;
    return std::make_unique<Potential>(Potential{"mtp", species, lo, hi, std::vector<double>(n, 0.5)});
}
std::unique_ptr<Potential> make_etn(const IntLists& shape, const IntLists& ranks, int species, double lo,
                                    double hi, int basis) {
    size_t n = size_t(species + basis);
    for (const auto& l : shape) n += l.size();
    for (const auto& l : ranks) n += 10 * l.size();
    return std::make_unique<Potential>(Potential{"etn", species, lo, hi, std::vector<double>(n, 0.25)});
}
Meta describe(const Potential& p) { return {p.kind, p.species, p.lo, p.hi}; }
const std::vector<double>& params(const Potential& p) { return p.params; }
void set_params(Potential& p, const double* x) { std::copy(x, x + p.params.size(), p.params.begin()); }
std::string to_json(const Potential& p) {
    std::ostringstream o;
    o.precision(17);
    o << "standin " << p.kind << " " << p.species << " " << p.lo << " " << p.hi << " " << p.params.size();
    for (double v : p.params) o << " " << v;
    return o.str();
}
std::unique_ptr<Potential> from_json(const std::string& bytes) {
    std::istringstream in(bytes);
    std::string tag;
    auto p = std::make_unique<Potential>();
    size_t n = 0;
    if (!(in >> tag >> p->kind >> p->species >> p->lo >> p->hi >> n) || tag != "standin")
        throw Error("not a stand-in potential");
    p->params.resize(n);
    for (double& v : p->params) in >> v;
    return p;
}
std::unique_ptr<LossFunction> make_loss(const std::string& records) {
    ++g_builds;
    g_records = records;
    return std::make_unique<LossFunction>();
}
void attach_pot(LossFunction& l, Potential& p) { ++g_attaches; l.pot = &p; }
double calc(LossFunction& l) { return l.pot->params[0]; }
void accumulate_grads(LossFunction&, std::vector<double>& g) { g[0] += 1.0; }
void calc_efs(const Potential& p, const std::string&, int n, double* e, double* f, double* s) {
    *e = n * p.params[0];
    for (int i = 0; i < 3 * n; ++i) f[i] = i / 3 + 0.1 * (i % 3);
    for (int c = 0; c < 6; ++c) s[c] = c;
}
}  // namespace m4
extern "C" MLIPC_API const char* standin_records(void) { return m4::g_records.c_str(); }
extern "C" MLIPC_API int standin_builds(void) { return m4::g_builds; }
extern "C" MLIPC_API int standin_attaches(void) { return m4::g_attaches; }
"""

SPEC = "mtp level=8 species=2 min_dist=1.8 max_dist=5.0"


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    """The shim with the stand-in section, compiled and loaded through capi.Engine."""
    if GXX is None:
        pytest.skip("g++ is not on PATH: the shim checks compile C++")
    work = tmp_path_factory.mktemp("shim")
    source, n = SECTION.subn(lambda _: STANDIN, SHIM.read_text())
    assert n == 1
    (work / "shim.cpp").write_text(source)
    lib = work / "libshim_standin.so"
    result = subprocess.run([GXX, "-std=c++17", "-O1", "-Wall", "-Wextra", "-shared", "-fPIC", "-fvisibility=hidden",
                             f"-I{INCLUDE}", str(work / "shim.cpp"), "-o", str(lib)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    eng = capi.Engine(lib)
    for name, res in (("standin_records", ctypes.c_char_p), ("standin_builds", ctypes.c_int),
                      ("standin_attaches", ctypes.c_int)):
        getattr(eng.lib, name).restype = res
    return eng


def _failure(fn):
    """(code, message) of the EngineError that fn() raises."""
    with pytest.raises(capi.EngineError) as info:
        fn()
    return info.value.code, str(info.value)


def _cells(n_cfg, a=4.0):
    return np.tile((a * np.eye(3)).ravel(), n_cfg)


def _dataset(eng, cutoff=5.0, **over):
    """Two periodic 2-atom configurations (override any dataset_from_arrays argument)."""
    args = dict(n_atoms=[2, 2], cells=_cells(2), periodic=[1, 1],
                positions=[0, 0, 0, 2, 2, 2, 0, 0, 0, 1, 2, 2], types=[0, 1, 1, 0], cutoff=cutoff)
    args.update(over)
    return eng.dataset_from_arrays(**args)


BAD_INPUT = {
    "threads": lambda e: e.set_num_threads(0),
    "empty set": lambda e: _dataset(e, n_atoms=[], cells=[], periodic=[], positions=[], types=[]),
    "no atoms": lambda e: _dataset(e, n_atoms=[0, 4]),
    "zero volume": lambda e: _dataset(e, cells=np.r_[np.zeros(9), _cells(1)]),
    "non-finite cell": lambda e: _dataset(e, cells=np.r_[np.full(9, np.nan), _cells(1)]),
    "negative type": lambda e: _dataset(e, types=[0, 1, -1, 0]),
    "non-finite position": lambda e: _dataset(e, positions=[0, 0, 0, 2, 2, np.inf, 0, 0, 0, 1, 2, 2]),
    "overlap": lambda e: _dataset(e, positions=[0, 0, 0, 4, 4, 4, 0, 0, 0, 1, 2, 2]),
    "molecule overlap": lambda e: _dataset(e, periodic=[0, 1], positions=[1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 2, 2]),
    "bad cutoff": lambda e: _dataset(e, cutoff=-1.0),
}


def _loss_case(kind):
    def run(e):
        pot = e.potential_from_spec(SPEC)
        ds = _dataset(e, cutoff=4.0 if kind == "small cutoff" else 5.0,
                      types=[0, 2, 1, 0] if kind == "species" else [0, 1, 1, 0])
        ds.set_labels(energies=[-1.0, np.nan], forces=np.zeros(12), stresses=None)
        w = np.tile([1.0, 0.01, 0.0], (2, 1))
        idx = None
        if kind == "index":
            idx = [0, 5]
        elif kind == "weight":
            w[0, 1] = -1
        elif kind == "energy label":
            idx = [1]
        elif kind == "stress label":
            w[0, 2] = 1.0
        return e.loss_grad(pot, ds, w, idx=[0] if kind in ("weight", "stress label") else idx)
    return run


for _kind in ("index", "weight", "energy label", "stress label", "small cutoff", "species"):
    BAD_INPUT[f"loss: {_kind}"] = _loss_case(_kind)
BAD_INPUT["params: length"] = lambda e: e.potential_from_spec(SPEC).set_params(np.zeros(3))
BAD_INPUT["params: non-finite"] = lambda e: (lambda p: p.set_params(np.full(p.n_params, np.nan)))(
    e.potential_from_spec(SPEC))
BAD_INPUT["scalar: unknown"] = lambda e: e.potential_from_spec(SPEC).get_scalar("colour")
BAD_INPUT["spec: not a number"] = lambda e: e.potential_from_spec("mtp level=8 min_dist=x")
BAD_INPUT["spec: not key=value"] = lambda e: e.potential_from_spec("mtp level=8 species")
BAD_INPUT["load: missing file"] = lambda e: e.load_potential("/nonexistent/pot.json")


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_standin_shim_fails_like_the_embedded_engine(shim, engine, case):
    """Same status code and message as the embedded engine for the same bad input (the
    stand-in's parameter count is its own)."""
    got, want = (_failure(lambda: BAD_INPUT[case](e)) for e in (shim, engine))
    count = re.compile(r"has \d+ parameters")
    assert (got[0], count.sub("has N parameters", got[1])) == (want[0], count.sub("has N parameters", want[1]))


def test_standin_shim_counts_the_pairs_of_the_embedded_engine(shim, engine, agpd_small):
    """Neighbour pairs within the cutoff, periodic images of small cells included."""
    small = dict(n_atoms=[1, 3], cells=np.r_[(2.1 * np.eye(3)).ravel(), [3, 0, 0, 1, 3.5, 0, 0.5, 0.2, 2.8]],
                 periodic=[1, 0], positions=[0.1, 0.2, 0.3, 0, 0, 0, 1.2, 0, 0, 0, 1.9, 0.4], types=[0, 1, 0, 1])
    for cutoff in (3.0, 5.0, 6.5):
        assert shim.dataset_from_arrays(cutoff=cutoff, **small).size() == \
            engine.dataset_from_arrays(cutoff=cutoff, **small).size()
    assert shim.dataset(agpd_small, 5.0).size() == engine.dataset(agpd_small, 5.0).size()


def test_standin_shim_writes_mlip4_json_records(shim, agpd_small):
    """The records a loss object is built from are optbench.io.mlip4_records' JSON."""
    pot = shim.potential_from_spec(SPEC)
    ds = shim.dataset(agpd_small, 5.0)
    w = LossWeights(energy=1.0, forces=0.01, stress=0.001).per_config(agpd_small)
    shim.loss_grad(pot, ds, w)
    assert json.loads(shim.lib.standin_records()) == mlip4_records(agpd_small, w)
    shim.loss_grad(pot, ds, w, idx=[2])
    assert json.loads(shim.lib.standin_records()) == mlip4_records(agpd_small.configs[2:3], w[2:3])


def test_standin_shim_sums_batches_and_reuses_loss_objects(shim, agpd_small):
    pot = shim.potential_from_spec(SPEC)
    ds = shim.dataset(agpd_small, 5.0)
    w = LossWeights().per_config(agpd_small)
    builds = shim.lib.standin_builds
    loss, g = shim.loss_grad(pot, ds, w, idx=[0, 2, 2])  # three objects' contributions (two built)
    assert loss == pytest.approx(3 * 0.5) and g[0] == 3 and not g[1:].any()
    before = builds()
    shim.loss_grad(pot, ds, w, idx=[2, 0])
    assert builds() == before, "a batch of known configurations must reuse their loss objects"
    w2 = w.copy()
    w2[0, 0] *= 2
    shim.loss_grad(pot, ds, w2, idx=[2, 0])
    assert builds() == before + 1, "new weights for configuration 0 rebuild its object only"
    ds.set_labels(energies=np.zeros(len(agpd_small)))
    shim.loss_grad(pot, ds, np.tile([1.0, 0, 0], (len(agpd_small), 1)), idx=[2])
    assert builds() == before + 2, "new labels rebuild"
    attaches = shim.lib.standin_attaches()
    other = shim.potential_from_spec(SPEC)
    other.set_params(np.r_[2.0, other.get_params()[1:]])
    loss, _ = shim.loss_grad(other, ds, np.tile([1.0, 0, 0], (len(agpd_small), 1)), idx=[2], grad=False)
    assert loss == 2.0 and shim.lib.standin_attaches() == attaches + 1


def test_standin_shim_predicts_in_idx_order(shim, agpd_small):
    pot = shim.potential_from_spec(SPEC)
    ds = shim.dataset(agpd_small, 5.0)
    e, f, s = shim.predict(pot, ds, idx=[2, 0])
    n = [agpd_small.configs[k].n_atoms for k in (2, 0)]
    assert e.tolist() == [0.5 * n[0], 0.5 * n[1]]
    rows = np.r_[np.arange(n[0]), np.arange(n[1])]
    assert np.allclose(f, rows[:, None] + [0, 0.1, 0.2])
    assert (s == np.arange(6)).all()


def test_standin_shim_potential_round_trip(shim, tmp_path):
    pot = shim.potential_from_spec("etn shape=[[1],[4],[2]] ranks=[[2],[2]] species=3 max_dist=5.5")
    info = pot.info()
    assert (info["kind"], info["species_count"], info["cutoff"]) == ("etn", 3, 5.5)
    assert info["groups"] == [{"name": "params", "offset": 0, "size": pot.n_params}]
    x = np.linspace(-1, 1, pot.n_params)
    pot.set_params(x)
    assert (pot.default_params() == 0.25).all(), "defaults: the parameters as created"
    pot.save(tmp_path / "p.json")
    again = shim.load_potential(tmp_path / "p.json")
    assert (again.get_params() == x).all() and again.info()["kind"] == "etn"
    assert (again.default_params() == x).all(), "defaults: the parameters as loaded"
    (tmp_path / "p.mtp").write_text("MTP\n")
    code, msg = _failure(lambda: shim.load_potential(tmp_path / "p.mtp"))
    assert code == 7 and "MLIP-4 JSON potentials (.json)" in msg
    (tmp_path / "bad.json").write_text("{}")
    code, msg = _failure(lambda: shim.load_potential(tmp_path / "bad.json"))
    assert code == 3 and "bad.json': MLIP-4: not a stand-in potential" in msg


UNSUPPORTED = {
    "linear_system": lambda e, p, ds: e.linear_system(p, ds, np.ones((2, 3))),
    "save .mtp": lambda e, p, ds: p.save("/tmp/x.mtp"),
    "template spec": lambda e, p, ds: e.potential_from_spec("mtp template=/x/16.almtp species=2"),
    "scaling spec": lambda e, p, ds: e.potential_from_spec("mtp level=8 scaling=0.02"),
    "get scaling": lambda e, p, ds: p.get_scalar("scaling"),
    "set max_dist": lambda e, p, ds: p.set_scalar("max_dist", 6.0),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_standin_shim_says_what_mlip4_cannot_serve(shim, case):
    pot = shim.potential_from_spec(SPEC)
    code, msg = _failure(lambda: UNSUPPORTED[case](shim, pot, _dataset(shim)))
    assert code == 7 and "MLIP-4" in msg


def test_standin_shim_rejects_malformed_specs(shim):
    for spec, text in (("lj sigma=1", "must start with 'mtp' or 'etn'"),
                       ("mtp species=2", "give level=N"),
                       ("mtp level=8 shape=[[1]]", "unknown key 'shape'"),
                       ("etn shape=[[1],[4]] species=2", "an etn needs ranks"),
                       ("etn shape=[1,4] ranks=[[2]]", "'shape=[1,4]' is not a list of integer lists"),
                       ("etn shape=[[1]][[2]] ranks=[[2]]", "is not a list of integer lists"),
                       ("mtp level=1", "MLIP-4: level 1 is too low")):
        code, msg = _failure(lambda: shim.potential_from_spec(spec))
        assert code == 3 and text in msg, (spec, msg)


def test_standin_shim_drives_the_harness_objective(shim, agpd_small, tmp_path):
    """The harness's EngineObjective runs on the shim as on the embedded engine: starting
    point, batch loss and gradient, metrics from predict, a saved MLIP-4 JSON potential."""
    from optbench.objective import EngineObjective

    obj = EngineObjective(shim, shim.potential_from_spec(SPEC), agpd_small, agpd_small)
    x = obj.initial_params(seed=1, interval=0.1)
    loss, g = obj.loss_grad(x, batch=np.array([0, 1]))
    assert loss == pytest.approx(x[0]) and g[0] == 1.0  # mean of the batch's objects
    assert obj.evaluate(x, "valid").n_configs == len(agpd_small)
    obj.save(x, tmp_path / "fit.json")
    assert (shim.load_potential(tmp_path / "fit.json").get_params() == x).all()
