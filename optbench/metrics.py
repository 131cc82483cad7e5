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
        sums, maxima = _block_sums(diff, reference)
        return cls.from_sums(sums, maxima, reference is not None)

    @classmethod
    def from_sums(cls, sums, maxima, relative: bool) -> "ErrorStats":
        """Statistics from the additive parts [count, sum |d|, sum d^2, sum ref^2] and the
        maxima [max |d|, max |ref|] of one or several sets of differences (the parts of
        several sets add up; their maxima take the maximum): how metrics of a data set
        spread over MPI ranks combine (error_sums). Relative errors when `relative`."""
        count, s_abs, s_sq, s_ref = (float(v) for v in sums)
        if count == 0:
            return cls()
        s = cls(int(count), float(maxima[0]), s_abs / count, float(np.sqrt(s_sq / count)))
        if relative:
            s.rel_max = float(maxima[0] / maxima[1]) if maxima[1] > 0 else float("nan")
            rms_ref = np.sqrt(s_ref / count)
            s.rel_rms = float(s.rmse / rms_ref) if rms_ref > 0 else float("nan")
        return s


def _block_sums(diff, reference=None) -> tuple[np.ndarray, np.ndarray]:
    """([count, sum |d|, sum d^2, sum ref^2], [max |d|, max |ref|]) of differences `diff`
    (maxima -inf for an empty set: the identity of a maximum)."""
    diff = np.abs(np.asarray(diff, dtype=float)).ravel()
    ref = np.abs(np.asarray(reference, dtype=float)).ravel() if reference is not None else np.zeros(0)
    sums = np.array([diff.size, diff.sum(), np.sum(diff ** 2), np.sum(ref ** 2)], dtype=float)
    maxima = np.array([diff.max(initial=-np.inf), ref.max(initial=-np.inf)])
    return sums, maxima


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


#: The blocks of error_sums, in order, and whether each has relative errors.
_BLOCKS = (("energy", False), ("energy_per_atom", False), ("forces", True), ("stress", True),
           ("virial_pressure", True))


def error_sums(configs, energies, forces, stresses) -> tuple[np.ndarray, np.ndarray]:
    """The additive parts and the maxima of the Metrics of predictions (energies (n,),
    forces (atoms, 3) concatenated in order, PlusStress (n, 6)) against the labels of
    `configs`: (sums, maxima), float arrays whose element-wise sums and maxima over
    disjoint sets of configurations are those of their union, so that ranks holding parts
    of a data set combine their metrics exactly (metrics_from_sums). sums = [n_configs,
    n_atoms, sum of squared force components, their count] then [count, sum |d|, sum d^2,
    sum ref^2] per block of _BLOCKS; maxima = [max |d|, max |ref|] per block (eV, eV/atom,
    eV/A, eV, GPa)."""
    configs = list(configs)
    n_at = np.array([c.n_atoms for c in configs], dtype=int)
    head = [float(len(configs)), float(n_at.sum()), 0.0, 0.0]
    blocks = {name: _block_sums(np.zeros(0), np.zeros(0)) for name, _ in _BLOCKS}
    have_e = np.array([c.energy is not None and np.isfinite(c.energy) for c in configs], dtype=bool)
    if have_e.any():
        ref = np.array([c.energy for c, h in zip(configs, have_e) if h], dtype=float)
        d = np.asarray(energies)[have_e] - ref
        blocks["energy"] = _block_sums(d)
        blocks["energy_per_atom"] = _block_sums(d / n_at[have_e])
    starts = np.concatenate([[0], np.cumsum(n_at)])
    fd, fr = [], []
    for k, c in enumerate(configs):
        if c.forces is not None and np.all(np.isfinite(c.forces)):
            fr.append(np.asarray(c.forces, dtype=float))
            fd.append(np.asarray(forces)[starts[k]:starts[k + 1]] - fr[-1])
    if fd:
        dvec, rvec = np.concatenate(fd), np.concatenate(fr)
        blocks["forces"] = _block_sums(np.linalg.norm(dvec, axis=1), np.linalg.norm(rvec, axis=1))
        head[2:] = [float(np.sum(dvec ** 2)), float(dvec.size)]
    sd, sr, vol = [], [], []
    for k, c in enumerate(configs):
        if c.stress is not None and np.all(np.isfinite(c.stress)):
            sr.append(np.asarray(c.stress, dtype=float))
            sd.append(np.asarray(stresses)[k] - sr[-1])
            vol.append(abs(np.linalg.det(c.cell)) if c.cell is not None else np.nan)
    if sd:
        dn = np.linalg.norm(_sym(np.array(sd)), axis=(1, 2))
        rn = np.linalg.norm(_sym(np.array(sr)), axis=(1, 2))
        blocks["stress"] = _block_sums(dn, rn)
        vol = np.array(vol)
        ok = np.isfinite(vol)
        if ok.any():
            blocks["virial_pressure"] = _block_sums(dn[ok] / vol[ok] * EV_PER_A3_IN_GPA,
                                                    rn[ok] / vol[ok] * EV_PER_A3_IN_GPA)
    sums = np.concatenate([head] + [blocks[name][0] for name, _ in _BLOCKS])
    maxima = np.concatenate([blocks[name][1] for name, _ in _BLOCKS])
    return sums, maxima


def metrics_from_sums(sums, maxima) -> Metrics:
    """The Metrics of error_sums' parts (summed and maximised over sets of configurations)."""
    sums, maxima = np.asarray(sums, dtype=float), np.asarray(maxima, dtype=float)
    m = Metrics(n_configs=int(sums[0]), n_atoms=int(sums[1]))
    for j, (name, relative) in enumerate(_BLOCKS):
        setattr(m, name, ErrorStats.from_sums(sums[4 + 4 * j:8 + 4 * j], maxima[2 * j:2 * j + 2], relative))
    if sums[3] > 0:
        m.force_component_rmse = float(np.sqrt(sums[2] / sums[3]))
    return m


def compute_metrics(configs, energies, forces, stresses) -> Metrics:
    """Metrics of predictions (energies (n,), forces (atoms, 3) concatenated in order,
    PlusStress (n, 6)) against the labels of `configs` (Configuration objects)."""
    return metrics_from_sums(*error_sums(configs, energies, forces, stresses))


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
