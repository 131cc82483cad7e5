"""MLIP's output read back: the ``mlp train`` log (BFGS iterations, rescaling trials,
settings, pre-training) and the error report of ``mlp check_errors`` (also printed at the
end of ``mlp train``).

Units: the loss ``f`` exactly as MLIP prints it (mean over configurations of the weighted
energy / force / stress terms plus the small radial penalty); times are the seconds printed
at the start of each log line (since the start of the run); error-report values are MLIP's
(eV, eV/atom, eV/Angstrom, eV for "Stresses (in energy units)", GPa for "Virial stresses
(in pressure units)").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["BfgsIteration", "RescaleTrial", "TrainLog", "parse_train_log", "parse_error_report"]

# MLIP's logger starts each line with the seconds since the start ("404.399 text").
# Lines without one (other builds, stderr) are accepted with time None.
_TS = re.compile(r"^\s*(\d+\.\d+|\d+)(?: |\t)(.*)$")
_FLOAT = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf)"
# "BFGS iter 12: f=0.16486128" (MLIP-3); some builds print "BFGS iter   12:  1.6486128e-01 ..."
_ITER = re.compile(rf"^BFGS iter\s+(\d+):\s*(?:f\s*=\s*)?({_FLOAT})", re.IGNORECASE)
_SCALING = re.compile(rf"^scaling\s*=\s*({_FLOAT}),\s*condition number\s*=\s*({_FLOAT})")
_RESCALED = re.compile(rf"^Rescaling to ({_FLOAT})\.\.\. done")
_SETTING = re.compile(r"^([A-Za-z_][\w-]*)\s*=\s*(.*?)\s*$")
_LIMIT = re.compile(r"^Iteration limit is (\d+)")
_TOL = re.compile(rf"^Convergence tolerance is ({_FLOAT})")


def _split_ts(line: str) -> tuple[float | None, str]:
    m = _TS.match(line)
    if m:
        return float(m.group(1)), m.group(2).strip()
    return None, line.strip()


@dataclass(frozen=True)
class BfgsIteration:
    """One ``BFGS iter N: f=...`` line.

    ``stage`` is ``"pretrain"`` (MLIP's pre-training, 75 steps with species alike) or
    ``"train"`` (the main fit); ``iteration`` restarts at 0 in each stage; ``loss`` is
    ``f`` as printed; ``time_s`` the line's time stamp in seconds (None if absent).
    """

    stage: str
    iteration: int
    loss: float
    time_s: float | None


@dataclass(frozen=True)
class RescaleTrial:
    """One ``scaling = s, condition number = c`` line of a rescaling pass."""

    scaling: float
    condition_number: float
    time_s: float | None


@dataclass
class TrainLog:
    """What :func:`parse_train_log` extracts from an ``mlp train`` log.

    * ``iterations``: every BFGS iteration, both stages, in order;
    * ``rescale_trials``: every (scaling, condition number) tried; ``rescaled_to``: the
      scaling each rescaling pass chose ("Rescaling to X... done");
    * ``settings``: the option echo at the start (``iteration_limit`` -> ``"200"``, strings);
    * ``iteration_limit`` / ``tolerance``: from "Iteration limit is N" / "Convergence
      tolerance is T" (main stage), else from ``settings``;
    * ``stop_reason``: how the main BFGS stage ended: ``"tolerance"`` ("BFGS ended due to
      small decr. ..."), ``"iteration_limit"`` ("step limit reached") or None;
    * ``completed``: the log reached "training complete";
    * ``errors``: the final error report (:func:`parse_error_report`) or None;
    * ``saved_to``: the file named in "state saved to ..." if any.
    """

    iterations: list[BfgsIteration] = field(default_factory=list)
    rescale_trials: list[RescaleTrial] = field(default_factory=list)
    rescaled_to: list[float] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)
    iteration_limit: int | None = None
    tolerance: float | None = None
    stop_reason: str | None = None
    completed: bool = False
    errors: dict | None = None
    saved_to: str | None = None

    @property
    def train_iterations(self) -> list[BfgsIteration]:
        """The iterations of the main fit (stage ``"train"``)."""
        return [it for it in self.iterations if it.stage == "train"]

    @property
    def pretrain_iterations(self) -> list[BfgsIteration]:
        """The iterations of MLIP's pre-training (stage ``"pretrain"``)."""
        return [it for it in self.iterations if it.stage == "pretrain"]

    @property
    def converged(self) -> bool:
        """True when the main BFGS stage stopped by its tolerance (not its limit)."""
        return self.stop_reason == "tolerance"

    @property
    def final_loss(self) -> float | None:
        """The last printed loss ``f`` (None when no iteration was logged)."""
        return self.iterations[-1].loss if self.iterations else None


def parse_train_log(text: str) -> TrainLog:
    """Parse an ``mlp train`` log (MLIP-3 format, time stamps optional).

    Returns a :class:`TrainLog` with the BFGS iterations (iteration number, loss ``f``
    as MLIP prints it, time stamp in seconds), the rescaling records, the option echo,
    the stop reason of the main stage (tolerance vs iteration limit), whether it reached
    "training complete" and the final error report.  Unknown lines are ignored, so a
    truncated log (killed run) still gives the iterations reached so far.
    """
    out = TrainLog()
    # Without --init_random / --skip_preinit MLIP runs a pre-training BFGS stage first;
    # it ends with its own "step limit reached", which must not count as the final stop.
    stage = "train"
    in_settings_echo = True
    for raw in text.splitlines():
        t, line = _split_ts(raw)
        if not line:
            continue
        m = _ITER.match(line)
        if m:
            in_settings_echo = False
            out.iterations.append(BfgsIteration(stage, int(m.group(1)), float(m.group(2)), t))
            continue
        m = _SCALING.match(line)
        if m:
            out.rescale_trials.append(RescaleTrial(float(m.group(1)), float(m.group(2)), t))
            continue
        m = _RESCALED.match(line)
        if m:
            out.rescaled_to.append(float(m.group(1)))
            continue
        if line.startswith("Pre-training started"):
            stage = "pretrain"
        elif line.startswith("Pre-training ended"):
            stage = "train"
        elif line.startswith("step limit reached"):
            if stage == "train":
                out.stop_reason = "iteration_limit"
        elif line.startswith("BFGS ended due to small decr"):
            if stage == "train":
                out.stop_reason = "tolerance"
        elif line.startswith("training complete"):
            out.completed = True
        elif (m := _LIMIT.match(line)) is not None:
            out.iteration_limit = int(m.group(1))
        elif (m := _TOL.match(line)) is not None:
            out.tolerance = float(m.group(1))
        elif "state saved to" in line:
            out.saved_to = line.split("state saved to", 1)[1].strip().strip('"')
        elif line.endswith("configurations found in the training set"):
            # The option echo ("\tkey = value") comes before this line; later "key = value"
            # lines (the selection settings after the error report) are not training options.
            in_settings_echo = False
        elif in_settings_echo and raw.lstrip(" 0123456789.").startswith("\t"):
            m = _SETTING.match(line)
            if m:
                out.settings[m.group(1)] = m.group(2)
    if out.iteration_limit is None and "iteration_limit" in out.settings:
        out.iteration_limit = int(out.settings["iteration_limit"])
    if out.tolerance is None and "tolerance" in out.settings:
        out.tolerance = float(out.settings["tolerance"])
    if "Errors report" in text:
        out.errors = parse_error_report(text)
    return out


# Block headers of MLIP's error report -> keys of the returned dict.
_BLOCKS = {
    "Energy": "energy",
    "Energy per atom": "energy_per_atom",
    "Forces": "forces",
    "Stresses (in energy units)": "stress",
    "Virial stresses (in pressure units)": "virial_stress",
}
_FIELDS = [
    (re.compile(r"^Errors checked for (\d+) (configurations|atoms)"), None),
    (re.compile(rf"^Maximal absolute difference\s*=\s*({_FLOAT})"), "max"),
    (re.compile(rf"^Average absolute difference\s*=\s*({_FLOAT})"), "mae"),
    (re.compile(rf"^RMS\s+absolute difference\s*=\s*({_FLOAT})"), "rmse"),
    (re.compile(rf"^Max\(\w+Diff\)\s*/\s*Max\(\w+\)\s*=\s*({_FLOAT})"), "rel_max"),
    (re.compile(rf"^RMS\(\w+Diff\)\s*/\s*RMS\(\w+\)\s*=\s*({_FLOAT})"), "rel_rms"),
]


def parse_error_report(text: str) -> dict:
    """Parse MLIP's error report (``mlp check_errors`` output or the end of ``mlp train``).

    Returns ``{"energy": {...}, "energy_per_atom": {...}, "forces": {...},
    "stress": {...}, "virial_stress": {...}}`` (only the blocks present), each with
    ``"n"`` (configurations, or atoms for forces; int), ``"max"``, ``"mae"``, ``"rmse"``
    (max / average / RMS absolute difference, floats in MLIP's units: eV, eV/atom,
    eV/Angstrom, eV, GPa) and, where printed, ``"rel_max"`` / ``"rel_rms"``.
    MLIP's force errors are of the per-atom force-difference vector *norm*
    (optbench.metrics.Metrics.from_blocks derives the per-component RMSE from it).
    Time stamps at line starts are ignored; when the text holds several reports the last
    one is parsed.  Raises ValueError when no block is found.
    """
    lines = [_split_ts(raw)[1] for raw in text.splitlines()]
    starts = [i for i, ln in enumerate(lines) if "Errors report" in ln]
    if starts:
        lines = lines[starts[-1] + 1 :]
    report: dict[str, dict] = {}
    block: dict | None = None
    for line in lines:
        if not line:
            continue
        if line.startswith("____") and report:
            break  # closing rule of the report
        if line.endswith(":") and line[:-1] in _BLOCKS:
            block = report.setdefault(_BLOCKS[line[:-1]], {})
            continue
        if block is None:
            continue
        for rx, key in _FIELDS:
            m = rx.match(line)
            if m:
                if key is None:
                    block["n"] = int(m.group(1))
                else:
                    block[key] = float(m.group(1))
                break
    if not report:
        raise ValueError("no MLIP error report found in the text")
    return report
