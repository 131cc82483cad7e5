"""Molecular-dynamics stability of a potential: does it hold a crystal at temperature?

A supercell of the given structure gets Maxwell-Boltzmann velocities from a seeded RNG, runs
NVT with ASE's Langevin integrator and then NVE with velocity Verlet from the NVT end state.
The centre of mass is held fixed with ``ase.constraints.FixCom`` (ASE 3.28+ deprecates
Langevin's own ``fixcm``), so the temperature counts 3N - 3 degrees of freedom and the
mean-square displacement has no drift of the whole cell.

Every step is checked: non-finite energy or forces, two atoms closer than `min_distance`, or
a jump of the total energy per atom above `max_energy_jump` stop the run and make the
result UNSTABLE (not an exception), keeping the traces up to that step. Errors the
calculator raises itself propagate.

Positions are unwrapped by accumulating minimum-image displacements between steps, which is
exact whatever the integrator or calculator does with the cell (ASE's integrators do not
wrap). The RDF is histogrammed by hand over all pairs and all periodic images within
`rdf_rmax` (vectorised; faster than a neighbour list here), so `rdf_rmax` may exceed half
the cell.

Units: K, fs for settings, ps for traces, eV/atom for energies, meV/atom/ps for the drift,
A^2/ps for the diffusion coefficient, A for distances.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms, units
from ase.constraints import FixCom
from ase.geometry import find_mic
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet
from ase.neighborlist import neighbor_list

from optbench.properties.base import (
    OK,
    UNSTABLE,
    PropertyError,
    PropertyResult,
    jsonable,
    structure_label,
)

try:  # ASE >= 3.29; MaxwellBoltzmannDistribution is deprecated there
    from ase.md.velocitydistribution import thermalize_momenta as _thermalize
except ImportError:  # pragma: no cover - older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    def _thermalize(atoms, temperature_K, *, rng=None):
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)

__all__ = ["default_md_supercell", "md_stability", "plot_rdf", "plot_temperature"]

_MAX_TRACE = 500  # points kept per stored trace


def default_md_supercell(atoms: Atoms, min_atoms: int = 100) -> tuple[int, int, int]:
    """The smallest n x n x n repetition of `atoms` with at least `min_atoms` atoms (108 for
    a conventional fcc cell, 128 for bcc): enough for temperature fluctuations of ~10% and
    a meaningful RDF, still cheap."""
    n = 1
    while n ** 3 * len(atoms) < min_atoms:
        n += 1
    return (n, n, n)


def _nearest_neighbour_distance(atoms: Atoms) -> float:
    cutoff = 3.0
    while cutoff < 50:
        d = neighbor_list("d", atoms, cutoff)
        if d.size:
            return float(d.min())
        cutoff *= 2
    raise PropertyError(f"md of {structure_label(atoms)}: no two atoms within 50 A; give min_distance")


class _CloseContacts:
    """Minimum interatomic distance below a bound, checked every step at O(N) cost: pairs
    within `rmin` + skin are listed once, and the list is rebuilt only when an atom has
    moved more than skin/2 since (then no unlisted pair can have come closer than rmin)."""

    def __init__(self, atoms: Atoms, rmin: float):
        self.rmin, self.skin = rmin, 0.5 * rmin
        self._build(atoms)

    def _build(self, atoms):
        i, j, shifts = neighbor_list("ijS", atoms, self.rmin + self.skin)
        keep = i < j
        self.i, self.j, self.shift = i[keep], j[keep], shifts[keep] @ np.array(atoms.cell)
        self.ref = atoms.positions.copy()

    def min_distance(self, atoms: Atoms) -> float:
        """The smallest listed pair distance (A), or +inf when none is within rmin."""
        if np.max(np.linalg.norm(atoms.positions - self.ref, axis=1)) > 0.5 * self.skin:
            self._build(atoms)
        if self.i.size == 0:
            return float("inf")
        d = atoms.positions[self.j] - atoms.positions[self.i] + self.shift
        return float(np.sqrt(np.min(np.einsum("ij,ij->i", d, d))))


def _positive(name, setting, value, *, integer=False, allow_zero=False):
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) if integer else \
        isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        kind = "an integer" if integer else "a finite number"
        raise PropertyError(f"md of {name}: {setting} must be {kind} {'>=' if allow_zero else '>'} 0, got {value!r}")


def _downsample(*arrays):
    n = len(arrays[0])
    stride = max(1, int(np.ceil(n / _MAX_TRACE)))
    return [np.asarray(a)[::stride] for a in arrays]


def _linear_slope(x, y) -> float:
    return float(np.polyfit(x, y, 1)[0]) if len(x) >= 3 else float("nan")


def _msd(positions: np.ndarray, dt_ps: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean-square displacement (A^2) vs lag time (ps) up to half the samples, averaged over
    atoms and over (at most ~200) time origins, centre-of-mass motion removed."""
    pos = positions - positions.mean(axis=1, keepdims=True)
    m = len(pos)
    lags = np.arange(0, m // 2 + 1)
    msd = np.empty(len(lags))
    for k, lag in enumerate(lags):
        origins = np.arange(0, m - lag, max(1, (m - lag) // 200))
        diff = pos[origins + lag] - pos[origins]
        msd[k] = np.mean(np.sum(diff * diff, axis=-1))
    return lags * dt_ps, msd


def _pair_distances(positions: np.ndarray, cell: np.ndarray, rmax: float) -> np.ndarray:
    """Distances (A) of all ordered pairs i != j, periodic images included, below rmax.

    Fractional differences are folded into [-1/2, 1/2); a pair can then be within rmax only
    for image shifts |n_i| <= rmax / width_i + 1/2, so those are all tried. Vectorised in
    blocks of rows, which is ~20x faster than a neighbour list for a 100-atom cell."""
    cell = np.asarray(cell, float)
    frac = positions @ np.linalg.inv(cell)
    vol = abs(np.linalg.det(cell))
    widths = [vol / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    ranges = [np.arange(-k, k + 1) for k in (int(np.floor(rmax / w + 0.5)) for w in widths)]
    shifts = np.array(np.meshgrid(*ranges, indexing="ij")).reshape(3, -1).T.astype(float)
    n = len(frac)
    block = max(1, int(2e6 // (n * len(shifts))))
    out = []
    for a in range(0, n, block):
        df = frac[None, :, :] - frac[a:a + block, None, :]
        df -= np.round(df)
        vec = (df[:, :, None, :] + shifts[None, None, :, :]) @ cell
        d = np.sqrt(np.einsum("...k,...k->...", vec, vec)).ravel()
        out.append(d[(d < rmax) & (d > 1e-8)])
    return np.concatenate(out) if out else np.zeros(0)


def _rdf(frames: list[np.ndarray], template: Atoms, rmax: float, bins: int):
    """g(r) averaged over `frames` (positions) from all pairs within rmax, images included."""
    edges = np.linspace(0.0, rmax, bins + 1)
    hist = np.zeros(bins)
    for pos in frames:
        hist += np.histogram(_pair_distances(pos, np.array(template.cell), rmax), bins=edges)[0]
    n = len(template)
    rho = n / template.get_volume()
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    # ordered pairs (i->j and j->i): per-atom neighbour counts, as g(r) is defined
    g = hist / (max(len(frames), 1) * n * rho * shell)
    return 0.5 * (edges[1:] + edges[:-1]), g


def _first_peak(r: np.ndarray, g: np.ndarray) -> float:
    """Position (A) of the first local maximum of g(r) at least half as high as the highest
    (smoothed over 3 bins against noise), refined by a parabola through its 3 bins."""
    if not np.any(g > 0):
        return float("nan")
    gs = np.convolve(g, np.ones(3) / 3, mode="same")
    peaks = [k for k in range(1, len(gs) - 1) if gs[k] >= gs[k - 1] and gs[k] > gs[k + 1] and gs[k] >= 0.5 * gs.max()]
    k = peaks[0] if peaks else int(np.argmax(gs))
    if 0 < k < len(g) - 1:
        y0, y1, y2 = gs[k - 1], gs[k], gs[k + 1]
        denom = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / denom if denom != 0 else 0.0
        return float(r[k] + np.clip(shift, -1, 1) * (r[1] - r[0]))
    return float(r[k])


def md_stability(calc, atoms: Atoms, *, supercell=None, temperature: float = 300.0, timestep: float = 2.0,
                 nvt_steps: int = 1000, nve_steps: int = 500, friction: float = 0.01, seed: int = 0,
                 equilibration: float = 0.25, min_distance: float | None = None, max_energy_jump: float = 0.2,
                 rdf_rmax: float = 6.0, rdf_bins: int = 120, sample_every: int = 10) -> PropertyResult:
    """NVT then NVE molecular dynamics of a supercell of `atoms` with `calc`: temperature
    control, energy conservation, diffusion and structure.

    supercell       None (default_md_supercell: n x n x n with >= 100 atoms), an integer or
                    3 integers: repetitions of `atoms`'s cell
    temperature     K, of the initial velocities and the thermostat
    timestep        fs;  nvt_steps, nve_steps: steps of each part (either may be 0)
    friction        Langevin friction, 1/fs (0.01/fs: velocity relaxation time 100 fs)
    seed            seeds the velocities and the Langevin noise: runs are reproducible
    equilibration   fraction of the NVT part left out of the temperature statistics
    min_distance    A; None: half the nearest-neighbour distance of the start structure
    max_energy_jump eV/atom: largest change of the total energy per atom in one step
    rdf_rmax, rdf_bins  A and bins of g(r); sample_every: steps between RDF/MSD samples

    values: T_mean, T_std (K, NVT after equilibration), T_error (K, T_mean - temperature),
    nve_drift (meV/atom/ps, slope of a linear fit of the total energy per atom over the NVE
    part), nve_fluctuation and nve_ekin_fluctuation (meV/atom, standard deviations of the
    total and the kinetic energy per atom over the NVE part), D (A^2/ps, 1/6 of the slope of
    the MSD over lag times from 1/4 to 1/2 of the production part: NVE, or NVT after
    equilibration when nve_steps is 0; about 0 for a crystal), rdf_first_peak (A).
    UNSTABLE results also hold exploded_at_step and exploded_at_ps; values that need the
    missing part are NaN.
    """
    name = structure_label(atoms)
    for setting, value in (("temperature", temperature), ("timestep", timestep), ("max_energy_jump", max_energy_jump),
                           ("rdf_rmax", rdf_rmax)):
        _positive(name, setting, value)
    _positive(name, "friction", friction, allow_zero=True)
    for setting, value in (("nvt_steps", nvt_steps), ("nve_steps", nve_steps)):
        _positive(name, setting, value, integer=True, allow_zero=True)
    _positive(name, "rdf_bins", rdf_bins, integer=True)
    _positive(name, "sample_every", sample_every, integer=True)
    _positive(name, "seed", seed, integer=True, allow_zero=True)
    if nvt_steps + nve_steps == 0:
        raise PropertyError(f"md of {name}: nvt_steps + nve_steps must be > 0")
    if not (isinstance(equilibration, (int, float)) and 0 <= equilibration < 1):
        raise PropertyError(f"md of {name}: equilibration must be a fraction in [0, 1), got {equilibration!r}")
    if min_distance is not None:
        _positive(name, "min_distance", min_distance)
    reps = default_md_supercell(atoms) if supercell is None else supercell
    reps_arr = np.full(3, reps) if np.ndim(reps) == 0 else np.asarray(reps)
    if reps_arr.shape != (3,) or np.any(reps_arr != np.round(reps_arr)) or np.any(reps_arr < 1):
        raise PropertyError(f"md of {name}: supercell must be a positive integer or 3 of them, got {supercell!r}")
    if not np.all(atoms.pbc) or atoms.cell.rank != 3:
        raise PropertyError(f"md of {name}: the structure must be periodic in 3 directions")

    work = atoms.repeat([int(v) for v in reps_arr])
    work.set_constraint(FixCom())
    work.calc = calc
    n = len(work)
    rmin = 0.5 * _nearest_neighbour_distance(work) if min_distance is None else float(min_distance)
    rng = np.random.default_rng(seed)
    _thermalize(work, temperature, rng=rng)
    dt_ps = timestep / 1000.0

    contacts = _CloseContacts(work, rmin)
    unwrapped = work.positions.copy()
    last = work.positions.copy()
    temps, times, etots, ekins, phases = [], [], [], [], []
    samples: list[np.ndarray] = []
    explosion = None
    step = 0
    nvt_production_start = int(np.ceil(equilibration * nvt_steps))

    def record(forces) -> str | None:
        """Append this step's state to the traces; why the run exploded, or None."""
        nonlocal unwrapped, last
        epot = work.get_potential_energy()
        ekin = work.get_kinetic_energy()
        if not (np.isfinite(epot) and np.isfinite(ekin) and np.all(np.isfinite(forces))):
            return "non-finite energy or forces"
        etot = (epot + ekin) / n
        if etots and abs(etot - etots[-1]) > max_energy_jump:
            return f"total energy jumped by {etot - etots[-1]:+.3g} eV/atom in one step (bound {max_energy_jump})"
        dmin = contacts.min_distance(work)
        if dmin < rmin:
            return f"two atoms {dmin:.3f} A apart (bound {rmin:.3f} A)"
        unwrapped = unwrapped + find_mic(work.positions - last, work.cell, work.pbc)[0]
        last = work.positions.copy()
        temps.append(work.get_temperature())
        times.append(step * dt_ps)
        etots.append(etot)
        ekins.append(ekin / n)
        return None

    forces = work.get_forces(md=True)
    explosion = record(forces)
    phases.append("start")
    plan = [("NVT", Langevin(work, timestep * units.fs, temperature_K=temperature, friction=friction / units.fs,
                             fixcm=False, rng=rng), nvt_steps),
            ("NVE", VelocityVerlet(work, timestep * units.fs), nve_steps)]
    for phase, dyn, nsteps in plan:
        if explosion:
            break
        production = phase == "NVE" or nve_steps == 0
        for k in range(nsteps):
            # production: NVE, or NVT past equilibration when there is no NVE part
            if production and (phase == "NVE" or k >= nvt_production_start) and k % sample_every == 0:
                samples.append(unwrapped.copy())
            forces = dyn.step(forces)
            step += 1
            explosion = record(forces)
            phases.append(phase)
            if explosion:
                explosion = f"{phase} step {k + 1}: {explosion}"
                break
        else:
            if production and nsteps % sample_every == 0:  # keeps the sampling interval regular
                samples.append(unwrapped.copy())

    temps, times, etots, ekins = map(np.asarray, (temps, times, etots, ekins))
    phases = np.asarray(phases[: len(temps)])
    values, data = {}, {}
    nvt_prod = (phases == "NVT") & (times > nvt_production_start * dt_ps - 1e-12)
    if nvt_steps and nvt_prod.any():
        values.update(T_mean=float(temps[nvt_prod].mean()), T_std=float(temps[nvt_prod].std()))
    else:
        values.update(T_mean=float("nan"), T_std=float("nan"))
    values["T_error"] = values["T_mean"] - temperature
    # the NVE part starts at the NVT end state (the last NVT record, or the start)
    nve = np.zeros(len(phases), bool)
    if nve_steps and (phases == "NVE").any():
        nve[(phases == "NVE").argmax() - 1:] = True
    nve_t, nve_e = times[nve], etots[nve]
    values["nve_drift"] = 1000.0 * _linear_slope(nve_t, nve_e) if nve.any() else float("nan")
    values["nve_fluctuation"] = 1000.0 * float(nve_e.std()) if len(nve_e) >= 3 else float("nan")
    values["nve_ekin_fluctuation"] = 1000.0 * float(ekins[nve].std()) if len(nve_e) >= 3 else float("nan")

    lag_t, msd = _msd(np.array(samples), sample_every * dt_ps) if len(samples) >= 2 else (np.zeros(0), np.zeros(0))
    fit = (lag_t >= 0.5 * lag_t.max()) if lag_t.size else lag_t.astype(bool)
    values["D"] = _linear_slope(lag_t[fit], msd[fit]) / 6.0 if fit.sum() >= 3 else float("nan")
    if samples:
        r, g = _rdf(samples, work, float(rdf_rmax), int(rdf_bins))
        values["rdf_first_peak"] = _first_peak(r, g)
    else:  # exploded before the production part
        r, g = _rdf([], work, float(rdf_rmax), int(rdf_bins))
        values["rdf_first_peak"] = float("nan")
    units_ = {"T_mean": "K", "T_std": "K", "T_error": "K", "nve_drift": "meV/atom/ps", "nve_fluctuation": "meV/atom",
              "nve_ekin_fluctuation": "meV/atom", "D": "A^2/ps", "rdf_first_peak": "A"}
    status, message = OK, ""
    if explosion:
        values.update(exploded_at_step=float(step), exploded_at_ps=step * dt_ps)
        units_.update(exploded_at_step="", exploded_at_ps="ps")
        status = UNSTABLE
        message = f"MD of {name} at {temperature:g} K exploded at step {step} (t = {step * dt_ps:.4g} ps), {explosion}"

    t_ds, temp_ds = _downsample(times, temps)
    nve_t_ds, nve_e_ds = _downsample(nve_t, nve_e)
    data.update(
        time_ps=t_ds, temperature=temp_ds,
        nve_start_ps=float(nvt_steps * dt_ps) if nve_steps else None,
        nve_time_ps=nve_t_ds, nve_energy=nve_e_ds,
        rdf_r=r, rdf_g=g, msd_time_ps=lag_t, msd=msd,
        n_atoms=n, supercell=[int(v) for v in reps_arr], temperature_target=float(temperature),
        timestep_fs=float(timestep), nvt_steps=int(nvt_steps), nve_steps=int(nve_steps), friction_per_fs=float(friction),
        seed=int(seed), min_distance=rmin, steps_done=step,
    )
    # stored as plain lists, so that the object in memory is what the results store reads back
    return PropertyResult("md", name, values, units_, jsonable(data), status, message)


def _axes(ax):
    from matplotlib.figure import Figure

    return ax if ax is not None else Figure(figsize=(7, 4.5)).add_subplot()  # no GUI backend needed


def _draw(ax, results, reference, xkey, ykey):
    import matplotlib

    colours = matplotlib.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    items = [(lab, d, colours[k % len(colours)], 1.0, 2) for k, (lab, d) in enumerate(results)]
    if reference is not None:
        items.append((reference[0], reference[1], "k", 1.6, 3))
    if not items:
        raise PropertyError("md plot: nothing to draw")
    for lab, d, colour, width, z in items:
        ax.plot(np.asarray(d[xkey], float), np.asarray(d[ykey], float), color=colour, lw=width, zorder=z, label=lab)
    return items


def plot_temperature(results, ax=None, reference=None, target=None):
    """Draw temperature (K) vs time (ps) from stored ``data`` dicts of md_stability().

    results: [(label, data), ...] in colours; reference: None or (label, data) in black on
    top; target: a temperature (K) drawn as a dashed line. The start of the NVE part is
    marked by a dotted vertical line. Returns the matplotlib Axes."""
    ax = _axes(ax)
    items = _draw(ax, results, reference, "time_ps", "temperature")
    starts = {d.get("nve_start_ps") for _, d, *_ in items} - {None}
    for t0 in starts:
        ax.axvline(float(t0), color="0.5", lw=0.8, ls=":", zorder=1)
    if target is not None:
        ax.axhline(float(target), color="0.3", lw=1.0, ls="--", zorder=1, label=f"target {float(target):g} K")
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("temperature (K)")
    ax.legend(loc="best", fontsize="small")
    return ax


def plot_rdf(results, ax=None, reference=None):
    """Draw radial distribution functions g(r) vs r (A) from stored ``data`` dicts of
    md_stability(); same conventions as plot_temperature. Returns the matplotlib Axes."""
    ax = _axes(ax)
    _draw(ax, results, reference, "rdf_r", "rdf_g")
    ax.axhline(1.0, color="0.6", lw=0.6, ls=":", zorder=1)
    ax.set_xlabel("r (\u00c5)")
    ax.set_ylabel("g(r)")
    ax.legend(loc="best", fontsize="small")
    return ax
