"""Reading MLIP's potential files as `mlp train` leaves them (issue 13).

Every potential a real MLIP-3 `mlp train` saves ends with a `#MVS_v1.1` section: MLIP's
maxvol active-learning selection state, a few text lines and then binary data (about
490 kB for a level-8 MTP on 240 configurations). The engine's reader stops at a line
beginning with `#MVS`, as MLIP's own reader does, and skips any other `#` line as a
comment; both leave a note in the potential's info ("notes"), which `optbench errors` /
`efs` print to stderr and the native optimizer copies into the run's notes.

Contracts: a file with comment lines and an `#MVS` section gives exactly the parameters of
the same file without them, whatever bytes follow `#MVS`; garbage NOT behind `#MVS` is
still a FILE:LINE error; notes are valid JSON whatever the path holds; saving writes no
selection section; MLIP-3's real trained potential (../shared) loads and its errors on
its training set are the report `mlp train` printed.
"""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest

from conftest import random_potential, requires_shared, shared_dir
from optbench.engine import capi

NATIVE_RUN = shared_dir() / "reference" / "mlip3" / "native_run"
TRAIN_CFG = shared_dir() / "reference" / "mlip3" / "configs" / "emt_train.cfg"

# What follows `#MVS_v1.1` in MLIP-3's files: text lines, "#", then binary data. The
# binary part here also holds lines a reader that went on would take for keys.
MVS_HEAD = (b"#MVS_v1.1\nenergy_weight 1.0000000000000000e+00\nforce_weight 0.0000000000000000e+00\n"
            b"stress_weight 0.0000000000000000e+00\nsite_en_weight 0.0000000000000000e+00\nweight_scaling 2\n#")


def _binary(seed: int, size: int = 6000) -> bytes:
    rng = random.Random(seed)
    return (b"\x00" * 64 + rng.randbytes(size // 2) + b"\n\xff\xff\x00\n"
            + b"scaling = 9.9e+01\nmoment_coeffs = {1, 2}\ncolour = blue\n" + rng.randbytes(size // 2))


def _with_comments(text: str) -> tuple[str, list[int]]:
    """The file text with comment lines after the header, inside the radial block,
    between keys and at the end; and the 1-based numbers of those lines."""
    out, at = [], []
    for line in text.splitlines():
        out.append(line)
        s = line.strip()
        if s in ("MTP", "radial_coeffs", "0-1") or s.startswith(("species_count", "alpha_index_times =")):
            out.append("# a comment" if s != "0-1" else "\t\t\t# indented comment, \"quoted\" \\ too")
            at.append(len(out))
    out.append("#")
    at.append(len(out))
    return "\n".join(out) + "\n", at


@pytest.fixture
def saved(engine, tmp_path):
    """A level-8 two-species MTP with random coefficients, as the engine saves it."""
    path = tmp_path / "plain.almtp"
    random_potential(engine, level=8, seed=4).save(path)
    return path


def test_mvs_section_and_comments_are_passed_over(engine, saved, tmp_path):
    """Comment lines (after the header, in the radial block, between keys) and an
    #MVS_v1.1 section of random bytes (NUL, 0xFF, newlines, and lines shaped like
    `key = value`) give the same parameters and scalars as the plain file, and two notes:
    the comment lines (how many, where) and the selection section (its line)."""
    plain = engine.load_potential(saved)
    assert plain.info()["notes"] == []
    text, comment_at = _with_comments(saved.read_text())
    path = tmp_path / "trained.almtp"
    path.write_bytes(text.encode() + MVS_HEAD + _binary(1))
    mvs_line = text.count("\n") + 1
    pot = engine.load_potential(path)
    np.testing.assert_array_equal(pot.get_params(), plain.get_params())
    for name in ("scaling", "min_dist", "max_dist"):
        assert pot.get_scalar(name) == plain.get_scalar(name)
    info, ref = pot.info(), plain.info()
    assert {k: v for k, v in info.items() if k != "notes"} == {k: v for k, v in ref.items() if k != "notes"}
    comments, mvs = info["notes"]
    assert len(comment_at) == 6
    assert comments == (f"{path}:{comment_at[0]}: 6 comment lines skipped (lines "
                        + ", ".join(map(str, comment_at[:5])) + ", ...)")
    assert mvs.startswith(f"{path}:{mvs_line}: MLIP's #MVS_v1.1 active-learning selection state follows; not read")


@pytest.mark.parametrize("seed", range(5))
def test_any_bytes_behind_mvs_are_ignored(engine, saved, tmp_path, seed):
    """Whatever follows the #MVS line (random bytes, no header lines at all) is not read."""
    path = tmp_path / "p.mtp"
    path.write_bytes(saved.read_bytes() + b"#MVS_v1.1\n" + random.Random(seed).randbytes(20000))
    np.testing.assert_array_equal(engine.load_potential(path).get_params(),
                                  engine.load_potential(saved).get_params())
    assert [n for n in engine.load_potential(path).info()["notes"] if "#MVS_v1.1" in n]


def test_one_comment_line_note(engine, saved, tmp_path):
    path = tmp_path / "one.mtp"
    lines = saved.read_text().splitlines()
    path.write_text("\n".join(lines[:3] + ["# made by hand"] + lines[3:]) + "\n")
    assert engine.load_potential(path).info()["notes"] == [f"{path}:4: comment line skipped"]


@pytest.mark.parametrize("garbage, line_offset", [
    (b"\x00\xff\x01 junk \xfe\n" + bytes(range(256)), 1),     # binary, no #MVS line before it
    (b"\n\n x #MVS_v1.1\n" + bytes(range(256)), 3),           # #MVS not at the start of the line
    (b"energy_weight 1.0000000000000000e+00\n", 1),           # MVS text without its header
])
def test_garbage_not_behind_mvs_is_a_file_line_error(engine, saved, tmp_path, garbage, line_offset):
    """Garbage after the coefficients with no `#MVS` line before it is still an error
    naming FILE:LINE, the bytes shown printable (\\xNN), never cut at a NUL."""
    text = saved.read_bytes()
    path = tmp_path / "bad.almtp"
    path.write_bytes(text + garbage)
    with pytest.raises(capi.EngineFormatError) as err:
        engine.load_potential(path)
    line = text.count(b"\n") + line_offset
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line}: expected 'key = value', got '"), msg
    assert msg.isprintable()
    if garbage.startswith(b"\x00"):
        assert "\\x00\\xFF\\x01 junk \\xFE" in msg


def test_notes_are_json_whatever_the_path(engine, saved, tmp_path):
    """A path with quotes, a backslash, a tab and a newline comes back intact in the
    info JSON's notes."""
    odd = tmp_path / 'we"ird\\ na\tme\n.almtp'
    odd.write_bytes(saved.read_bytes() + MVS_HEAD + _binary(2))
    (note,) = engine.load_potential(odd).info()["notes"]
    assert note.startswith(f"{odd}:") and "#MVS_v1.1" in note


def test_saving_writes_no_selection_section(engine, saved, tmp_path):
    """A potential read from a file with an #MVS section is saved in the engine's format,
    without it, and reads back with no notes and the same parameters."""
    src = tmp_path / "mlip.almtp"
    src.write_bytes(saved.read_bytes() + MVS_HEAD + _binary(3))
    pot = engine.load_potential(src)
    out = tmp_path / "again.almtp"
    pot.save(out)
    assert out.read_bytes() == saved.read_bytes()
    again = engine.load_potential(out)
    assert again.info()["notes"] == []
    np.testing.assert_array_equal(again.get_params(), pot.get_params())


def test_spec_potentials_have_no_notes(engine):
    assert engine.potential_from_spec("mtp level=6 species=2").info()["notes"] == []


# ---------------------------------------------------------------- MLIP-3's real file

def _log() -> str:
    return (NATIVE_RUN / "mlp_train.log").read_text()


@requires_shared
def test_mlip3_trained_potential_loads():
    """MLIP-3's trained.almtp (a 2697-byte potential, then 490 kB of selection state)
    loads with the parameter count of the start.almtp it was trained from, the scaling
    MLIP's rescaling chose (the log's "Rescaling to 0.10281027"), and a note on the #MVS
    line (34)."""
    from optbench.engine.capi import Engine

    eng = Engine()
    trained = eng.load_potential(NATIVE_RUN / "trained.almtp")
    start = eng.load_potential(NATIVE_RUN / "start.almtp")
    assert trained.n_params == start.n_params == 75
    chosen = float(re.search(r"Rescaling to ([0-9.eE+-]+)\.\.\. done", _log()).group(1))
    assert trained.get_scalar("scaling") == pytest.approx(chosen, rel=1e-7)
    (note,) = trained.info()["notes"]
    assert note.startswith(f"{NATIVE_RUN / 'trained.almtp'}:34: MLIP's #MVS_v1.1 ")
    assert start.info()["notes"] == []


@requires_shared
def test_mlip3_trained_potential_errors_equal_mlips_report(engine):
    """Our engine's errors of MLIP-3's trained potential on the set it was trained on
    (emt_train.cfg, 240 configurations, 8640 atoms) equal the error report `mlp train`
    printed at the end of mlp_train.log.

    That report is of the training set at the saved parameters: in the log it comes after
    the last step of training ("Rescaling to 0.10281027... done", the scaling of the saved
    file, with the linear coefficients re-solved for it) and right before "Selection:
    state saved" (the file), and it counts the 240 configurations and 8640 atoms of
    emt_train.cfg. So the comparison is tight: rel 1e-5, MLIP's printed digits (%g, 6
    significant digits, so up to 5e-6 relative rounding), for every block (energy, per
    atom, forces as the per-atom norm, stress, virial pressure) and every figure (max,
    average, RMS, and the relative ones)."""
    from optbench.io import read_cfg
    from optbench.metrics import compute_metrics
    from optbench.mlip.logs import parse_error_report

    log = _log()
    order = [log.index(s) for s in ("Rescaling to", "Errors report", "Selection: state saved")]
    assert order == sorted(order), "the report is no longer the last thing before saving"
    mlip = parse_error_report(log)
    pot = engine.load_potential(NATIVE_RUN / "trained.almtp")
    data = read_cfg(TRAIN_CFG)
    ours = compute_metrics(data.configs, *engine.predict(pot, engine.dataset(data, pot.cutoff))).to_dict()
    assert mlip["energy_per_atom"]["n"] == ours["n_configs"] == 240
    assert mlip["forces"]["n"] == ours["n_atoms"] == 8640
    assert ours["energy_per_atom"]["rmse"] == pytest.approx(mlip["energy_per_atom"]["rmse"], rel=1e-5)
    assert ours["forces"]["rmse"] == pytest.approx(mlip["forces"]["rmse"], rel=1e-5)
    blocks = {"energy": "energy", "energy_per_atom": "energy_per_atom", "forces": "forces", "stress": "stress",
              "virial_stress": "virial_pressure"}
    for theirs, mine in blocks.items():
        for figure, value in mlip[theirs].items():
            if figure != "n":
                assert ours[mine][figure] == pytest.approx(value, rel=1e-5), (theirs, figure)


@requires_shared
def test_cli_errors_prints_the_note_and_mlips_numbers(capsys):
    """`optbench errors trained.almtp emt_train.cfg` prints `note: ...#MVS_v1.1...` to
    stderr and, on stdout, MLIP's report figures (rel 1e-5); `optbench info` carries the
    note in its JSON."""
    from optbench.cli import main
    from optbench.mlip.logs import parse_error_report

    trained = NATIVE_RUN / "trained.almtp"
    assert main(["errors", str(trained), str(TRAIN_CFG), "--threads", "2"]) == 0
    out, err = capsys.readouterr()
    assert f"note: {trained}:34: MLIP's #MVS_v1.1" in err
    ours, mlip = parse_error_report(out), parse_error_report(_log())
    for block in ("energy_per_atom", "forces"):
        assert ours[block]["rmse"] == pytest.approx(mlip[block]["rmse"], rel=1e-5)
    assert main(["info", str(trained)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert len(info["notes"]) == 1 and "#MVS_v1.1" in info["notes"][0]

