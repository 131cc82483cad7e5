"""Error metrics of a potential on labelled data, as MLIP's ``check_errors`` reports them.

Definitions (MLIP-2/3 ``ErrorMonitor``), each over the configurations or atoms that carry
the label:

- energy: |E - E*| per configuration (eV): max, mean absolute, RMS;
- energy per atom (EPA): |E - E*| / N (eV/atom);
- forces: the NORM of the per-atom force difference |F_i - F*_i| (eV/A): max, mean, RMS,
  plus the relative errors max|dF|/max|F*| and RMS|dF|/RMS|F*|.  MLIP's "force RMSE" is
  this per-atom norm RMS; the per-component RMSE (= norm RMSE / sqrt 3 on average) is
  reported beside it as ``force_component_rmse``;
- stresses in energy units: the Frobenius norm of the 3x3 virial difference (eV);
- virial stresses in pressure units: that difference divided by the cell volume, in GPa.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from ase import units

#: GPa per eV/A^3 (ase.units, CODATA 2014: 160.21766208).
EV_PER_A3_IN_GPA = 1.0 / units.GPa


@dataclass
class ErrorStats:
    """Max, mean absolute and RMS of a set of absolute differences (and how many)."""
    count: int = 0
    max: float = float("nan")
    mae: float = float("nan")
    rmse: float = float("nan")
    rel_max: float | None = None   # max(diff) / max(|reference|)
    rel_rms: float | None = None   # rms(diff) / rms(|reference|)

    @classmethod
    def of(cls, diff: np.ndarray, reference: np.ndarray | None = None) -> "ErrorStats":
        """Statistics of absolute differences `diff`; relative ones when `reference` given."""
        diff = np.abs(np.asarray(diff, dtype=float))
        if diff.size == 0:
            return cls()
        s = cls(int(diff.size), float(diff.max()), float(diff.mean()), float(np.sqrt(np.mean(diff ** 2))))
        if reference is not None:
            ref = np.abs(np.asarray(reference, dtype=float))
            s.rel_max = float(diff.max() / ref.max()) if ref.max() > 0 else float("nan")
            rms_ref = np.sqrt(np.mean(ref ** 2))
            s.rel_rms = float(s.rmse / rms_ref) if rms_ref > 0 else float("nan")
        return s


@dataclass
class Metrics:
    """Errors of predicted energies (eV), forces (eV/A) and stresses (eV, GPa)."""
    n_configs: int = 0
    n_atoms: int = 0
    energy: ErrorStats = field(default_factory=ErrorStats)
    energy_per_atom: ErrorStats = field(default_factory=ErrorStats)
    forces: ErrorStats = field(default_factory=ErrorStats)
    force_component_rmse: float = float("nan")
    stress: ErrorStats = field(default_factory=ErrorStats)
    virial_pressure: ErrorStats = field(default_factory=ErrorStats)

    @property
    def epa_rmse(self) -> float:
        """Energy-per-atom RMSE, eV/atom."""
        return self.energy_per_atom.rmse

    @property
    def force_rmse(self) -> float:
        """RMS of the per-atom force-difference norm, eV/A (MLIP's definition)."""
        return self.forces.rmse

    def to_dict(self) -> dict:
        """Plain nested dict (JSON-serialisable)."""
        return asdict(self)

    @classmethod
    def from_blocks(cls, blocks: dict, n_configs: int, n_atoms: int, count_key: str = "count") -> "Metrics":
        """Metrics from another code's error report as blocks {"energy", "energy_per_atom",
        "forces", "stress", "virial_stress": {count_key, "max", "mae", "rmse"}} (missing
        blocks and values NaN; units as ours: eV, eV/atom, eV/A, eV, GPa). The force
        per-component RMSE is derived as the norm RMSE / sqrt(3)."""

        def stats(block: str) -> ErrorStats:
            e = blocks.get(block) or {}
            return ErrorStats(count=int(e.get(count_key, 0)), max=float(e.get("max", np.nan)),
                              mae=float(e.get("mae", np.nan)), rmse=float(e.get("rmse", np.nan)))

        forces = stats("forces")
        return cls(n_configs=n_configs, n_atoms=n_atoms, energy=stats("energy"),
                   energy_per_atom=stats("energy_per_atom"), forces=forces,
                   force_component_rmse=forces.rmse / np.sqrt(3.0), stress=stats("stress"),
                   virial_pressure=stats("virial_stress"))

    def summary(self) -> str:
        """One line: EPA RMSE in meV/atom, force RMSE (norm and component) in meV/A."""
        return (f"EPA RMSE {1e3 * self.epa_rmse:.3f} meV/atom, force RMSE {1e3 * self.force_rmse:.2f} meV/A "
                f"(per component {1e3 * self.force_component_rmse:.2f}), energy RMSE {self.energy.rmse:.4g} eV")


def _sym(s6: np.ndarray) -> np.ndarray:
    """(n, 6) xx yy zz yz xz xy -> (n, 3, 3)."""
    xx, yy, zz, yz, xz, xy = np.moveaxis(np.asarray(s6, dtype=float), -1, 0)
    return np.stack([np.stack([xx, xy, xz], -1), np.stack([xy, yy, yz], -1), np.stack([xz, yz, zz], -1)], -2)


def compute_metrics(configs, energies, forces, stresses) -> Metrics:
    """Metrics of predictions (energies (n,), forces (atoms, 3) concatenated in order,
    PlusStress (n, 6)) against the labels of `configs` (Configuration objects)."""
    configs = list(configs)
    n_at = np.array([c.n_atoms for c in configs])
    m = Metrics(n_configs=len(configs), n_atoms=int(n_at.sum()))
    have_e = np.array([c.energy is not None and np.isfinite(c.energy) for c in configs], dtype=bool)
    if have_e.any():
        ref = np.array([c.energy for c, h in zip(configs, have_e) if h], dtype=float)
        d = np.asarray(energies)[have_e] - ref
        m.energy = ErrorStats.of(d)
        m.energy_per_atom = ErrorStats.of(d / n_at[have_e])
    starts = np.concatenate([[0], np.cumsum(n_at)])
    fd, fr = [], []
    for k, c in enumerate(configs):
        if c.forces is not None and np.all(np.isfinite(c.forces)):
            fr.append(np.asarray(c.forces, dtype=float))
            fd.append(np.asarray(forces)[starts[k]:starts[k + 1]] - fr[-1])
    if fd:
        dvec, rvec = np.concatenate(fd), np.concatenate(fr)
        m.forces = ErrorStats.of(np.linalg.norm(dvec, axis=1), np.linalg.norm(rvec, axis=1))
        m.force_component_rmse = float(np.sqrt(np.mean(dvec ** 2)))
    sd, sr, vol = [], [], []
    for k, c in enumerate(configs):
        if c.stress is not None and np.all(np.isfinite(c.stress)):
            sr.append(np.asarray(c.stress, dtype=float))
            sd.append(np.asarray(stresses)[k] - sr[-1])
            vol.append(abs(np.linalg.det(c.cell)) if c.cell is not None else np.nan)
    if sd:
        dn = np.linalg.norm(_sym(np.array(sd)), axis=(1, 2))
        rn = np.linalg.norm(_sym(np.array(sr)), axis=(1, 2))
        m.stress = ErrorStats.of(dn, rn)
        vol = np.array(vol)
        ok = np.isfinite(vol)
        if ok.any():
            m.virial_pressure = ErrorStats.of(dn[ok] / vol[ok] * EV_PER_A3_IN_GPA, rn[ok] / vol[ok] * EV_PER_A3_IN_GPA)
    return m


def format_mlip_report(m: Metrics) -> str:
    """The text of MLIP's ``check_errors`` report (same headings and order)."""
    def block(title: str, what: str, s: ErrorStats, rel: str | None = None) -> list[str]:
        lines = [f"{title}:", f"\tErrors checked for {s.count} {what}",
                 f"\tMaximal absolute difference = {s.max:.6g}",
                 f"\tAverage absolute difference = {s.mae:.6g}",
                 f"\tRMS     absolute difference = {s.rmse:.6g}"]
        if rel and s.rel_max is not None and s.rel_rms is not None:  # reports from other codes may lack them
            lines += [f"\tMax({rel}Diff) / Max({rel}) = {s.rel_max:.6g}",
                      f"\tRMS({rel}Diff) / RMS({rel}) = {s.rel_rms:.6g}"]
        return lines + [""]
    out = ["_________________Errors report_________________"]
    out += block("Energy", "configurations", m.energy)
    out += block("Energy per atom", "configurations", m.energy_per_atom)
    out += block("Forces", "atoms", m.forces, "Force")
    out += block("Stresses (in energy units)", "configurations", m.stress, "Stres")
    out += block("Virial stresses (in pressure units)", "configurations", m.virial_pressure, "Stres")
    out[-1] = "_______________________________________________"
    return "\n".join(out) + "\n"
