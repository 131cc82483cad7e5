"""Reference loss/gradient and energies/forces/stresses from motep 0.2.0.

motep (PyPI ``motep``, version 0.2.0) is a Python implementation of the Moment Tensor
Potential with several compute engines (``"cext"``: compiled C extension, the fast one;
``"numpy"``; ``"numba"``/``"jax"`` when those packages are installed).  This module wraps
it so that tests and benchmarks can compare our engine with it.  Facts established by
reading motep 0.2.0's source (``motep/loss.py``, ``motep/potentials/mtp/{data,base}.py``,
``motep/potentials/mtp/cext/*``, ``motep/io/mlip/{mtp,cfg}.py``) and checked numerically:

Loading
    ``motep.io.mlip.mtp.read_mtp(path) -> MTPData`` reads MLIP-2/3 ``.mtp`` files (old
    ``min_dist/max_dist/radial_basis_size`` keys too).  ``motep.io.mlip.cfg.read_cfg(path,
    index=":")`` returns ``ase.Atoms`` whose atomic *numbers* are the MLIP *types* (0, 1, ...)
    when ``species`` is not given; targets sit in ``atoms.calc.results`` (``energy``,
    ``forces``, and ``stress`` = ASE stress = ``-PlusStress / volume`` in eV/A^3, Voigt
    order xx yy zz yz xz xy, only when the cfg has both a cell and ``PlusStress``).
    ``mtp.species`` must be set to ``list(range(species_count))`` so that type t maps to
    species index t (motep's trainer otherwise uses the types present in the data, which
    changes ``species_count`` for a subset containing one type only).

Engines
    ``motep.calculator.make_calculator(mtp, engine="cext"|"numpy"|..., mode="run"|"train")``
    gives an ASE calculator.  ``motep.loss.LossFunction(images, mtp, LossSetting(...),
    engine="cext")`` builds "train"-mode calculators (neighbour vectors cached on the first
    call) for every image.

Physics conventions (identical to MLIP-3; verified against MLIP-3's ``calculate_efs``
output for mtp08/mtp16 on emt_val.cfg and rosenbrock_small.cfg, all within the printed
precision: |dE| <= 6e-13 eV, |dF| <= 5e-7 eV/A, |dS| <= 5e-6 eV)
    * radial basis: ``scaling * (max_dist - r)^2 * T_n(x)`` for r < max_dist, 0 beyond,
      with ``x = 2 (r - min_dist) / (max_dist - min_dist) - 1`` and Chebyshev T_n;
      ``scaling`` is the .mtp header value (a constant, NOT a trained parameter);
    * ``radial_coeffs[ti, tj, mu, xi]``: ti = type of the central atom, tj = type of the
      neighbour; the .mtp block ``"ti-tj"`` lists radial functions mu, each with
      ``radial_basis_size`` coefficients xi;
    * site energy = species_coeffs[ti] + sum_a moment_coeffs[a] * B_{alpha_moment_mapping[a]};
    * neighbours: every periodic image (incl. the atom's own images) with r < max_dist;
    * MLIP ``PlusStress`` (virial, eV) = ``-volume * ASE stress`` (motep symmetrises it).

Loss (``motep.loss.LossFunctionBase.calc_loss_function`` with ``LossSetting`` defaults
``energy_per_atom = forces_per_atom = stress_times_volume = True`` and
``energy_per_conf = forces_per_conf = stress_per_conf = True``)::

    L = 1/K * sum_k [ eW / N_k^2 * (E_k - E*_k)^2
                     + fW / N_k   * sum_i |F_ik - F*_ik|^2
                     + sW / N_k^2 * sum_{a,b} (S_kab - S*_kab)^2 ]

with K = number of ALL configurations, N_k atoms, S = PlusStress as a full symmetric 3x3
(off-diagonals counted twice; V^2 |sigma - sigma*|^2 = |S - S*|^2).  So the per-configuration
form  L = sum_k [wE_k dE^2 + wF_k sum|dF|^2 + wS_k sum_ab dS_ab^2]  reproduces motep with

    wE_k = eW / (K N_k^2),   wF_k = fW / (K N_k),   wS_k = sW / (K N_k^2)

(wF_k = 0 for configs without forces; wS_k = 0 for configs without a cell or without
PlusStress).  No regularisation/penalty term (MLIP's radial-normalisation penalty has no
motep counterpart), the magnetic ``mgrad`` term is inactive for non-magnetic MTPs (set to
0 here).  ``info["weights"]`` returns these (K, 3) weights.

Gradient
    Exact, analytic (``LossFunction.jac``: per-configuration Jacobians of E, F and stress
    with respect to the parameters, computed by the C extension in "train" mode and chained
    by hand; no finite differences).  motep orders its parameter vector as
    ``[moment_coeffs (alpha_scalar_moments), species_coeffs (species_count),
    radial_coeffs (species_count, species_count, radial_funcs_count, radial_basis_size)
    flattened C-order]`` (+ ``scaling`` first only if optimised, which motep's jac does not
    support).  This module reorders to MLIP-3's layout
    ``[radial_coeffs (ti, tj, mu, xi) C-order, species_coeffs, moment_coeffs]``.

Known motep 0.2.0 quirk handled here: ``LossFunctionStress`` indexes its volume array by
configuration index although it only holds the volumes of configurations with stress, so
its stress term is wrong when a configuration without stress precedes one with stress.
The loss is a plain sum, so we pass the images with stress first (order does not matter
otherwise).

Cost (cext, one thread, emt_train.cfg: 240 configurations / 8 640 atoms, E+F weights,
measured on the 2-core development box): one loss+gradient takes about 1.0 s for
mtp08.mtp and 20 s for mtp16.mtp (the first call, which also builds the neighbour
vectors, 2.0 s / 21.5 s); peak RSS 127 / 180 MiB.  The C extension itself is serial; the
numpy glue is single-threaded with OMP/OPENBLAS_NUM_THREADS=1.  The ``numpy`` engine
agrees with ``cext`` to ~1e-14 and is ~7x slower.  ``benchmarks/engine_speed.py`` times
it against our engine.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import numpy as np

__all__ = ["motep_efs", "motep_loss_grad", "motep_to_mlip_order"]


def _read(potential_path, cfg_path):
    from motep.io.mlip.cfg import read_cfg
    from motep.io.mlip.mtp import read_mtp

    mtp = read_mtp(Path(potential_path))
    mtp.species = list(range(int(mtp.species_count)))
    images = read_cfg(str(cfg_path), index=":")
    if not isinstance(images, list):
        images = [images]
    for k, atoms in enumerate(images):
        if atoms.numbers.size and atoms.numbers.max() >= mtp.species_count:
            msg = f"configuration {k} has type >= species_count={mtp.species_count}"
            raise ValueError(msg)
    return mtp, images


def motep_to_mlip_order(vec: np.ndarray, mtp) -> np.ndarray:
    """Reorder a motep parameter-space vector to MLIP-3's layout (radial, species, moment).

    ``vec`` is in motep's order ``[moment (asm), species (spc), radial (spc*spc*rfc*rbs)]``.
    """
    vec = np.asarray(vec, dtype=float)
    asm = int(mtp.alpha_scalar_moments)
    spc = int(mtp.species_count)
    moment = vec[:asm]
    species = vec[asm : asm + spc]
    radial = vec[asm + spc :]
    expected = spc * spc * int(mtp.radial_funcs_count) * int(mtp.radial_basis.size)
    if radial.size != expected:
        msg = f"unexpected parameter count {vec.size}"
        raise ValueError(msg)
    return np.concatenate([radial, species, moment])


def _mlip_to_motep_order(vec: np.ndarray, mtp) -> np.ndarray:
    vec = np.asarray(vec, dtype=float)
    asm = int(mtp.alpha_scalar_moments)
    spc = int(mtp.species_count)
    nrad = vec.size - asm - spc
    return np.concatenate([vec[nrad + spc :], vec[nrad : nrad + spc], vec[:nrad]])


def motep_loss_grad(
    potential_path,
    cfg_path,
    energy_weight: float,
    force_weight: float,
    stress_weight: float,
    engine: str = "cext",
    *,
    params: np.ndarray | None = None,
    repeat: int = 1,
) -> tuple[float, np.ndarray, dict]:
    """Loss and gradient computed by motep 0.2.0 (``motep.loss.LossFunction``).

    Parameters
    ----------
    potential_path, cfg_path
        MLIP ``.mtp`` potential and ``.cfg`` training set (types 0..species_count-1).
    energy_weight, force_weight, stress_weight
        motep's ``LossSetting.energy_weight / forces_weight / stress_weight``; all other
        settings are motep's defaults (energy and stress per atom, stress times volume,
        everything averaged over configurations), ``mgrad_weight = 0``.
    engine
        motep engine name: ``"cext"`` (default), ``"numpy"``, ``"numba"``, ``"jax"``.
    params
        Optional parameter vector in MLIP-3 order to evaluate at instead of the file's.
    repeat
        Number of loss+gradient evaluations (the first one also builds the neighbour
        vectors); per-evaluation times are in ``info["times"]``.

    Returns
    -------
    loss : float
        motep's loss (formula in the module docstring).
    grad : np.ndarray
        Exact gradient in MLIP-3 parameter order: radial coefficients
        ``[ti][tj][mu][xi]``, then species coefficients, then moment coefficients
        (``scaling`` is not a parameter).
    info : dict
        ``weights`` (K, 3) per-configuration (wE, wF, wS) reproducing the loss in the
        form ``sum_k wE dE^2 + wF sum|dF|^2 + wS sum_ab dS_ab^2`` (PlusStress, full 3x3);
        ``params`` (MLIP order), ``n_configs``, ``n_atoms``, ``n_params``, ``engine``,
        ``times`` (seconds per loss+gradient, one per repeat), ``setup_s`` (reading +
        calculator construction), ``maxrss_kb`` (process peak RSS after the run),
        ``grad_motep_order``, ``terms`` (unweighted energy/forces/stress sub-losses of
        the last evaluation, as motep defines them: each already divided by K).
    """
    from motep.loss import LossFunction, LossSetting

    t0 = time.perf_counter()
    mtp, images = _read(potential_path, cfg_path)
    K = len(images)
    if K == 0:
        raise ValueError("no configurations")

    def has_stress(a):
        return "stress" in a.calc.results

    # stress-bearing images first (see the motep quirk in the module docstring)
    order = sorted(range(K), key=lambda k: 0 if has_stress(images[k]) else 1)
    images_sorted = [images[k] for k in order]

    natoms = np.array([len(a) for a in images], dtype=float)
    weights = np.zeros((K, 3))
    weights[:, 0] = energy_weight / (K * natoms**2)
    has_f = np.array(["forces" in a.calc.results for a in images])
    has_s = np.array([has_stress(a) for a in images])
    weights[:, 1] = np.where(has_f, force_weight / (K * natoms), 0.0)
    weights[:, 2] = np.where(has_s, stress_weight / (K * natoms**2), 0.0)

    mtp.optimized = ["species_coeffs", "moment_coeffs", "radial_coeffs"]
    setting = LossSetting(
        energy_weight=float(energy_weight),
        forces_weight=float(force_weight),
        stress_weight=float(stress_weight),
        mgrad_weight=0.0,
        energy_per_atom=True,
        forces_per_atom=True,
        stress_times_volume=True,
        energy_per_conf=True,
        forces_per_conf=True,
        stress_per_conf=True,
    )
    loss_fn = LossFunction(images_sorted, mtp, setting, engine=engine)
    x = mtp.parameters.copy() if params is None else _mlip_to_motep_order(params, mtp)
    setup_s = time.perf_counter() - t0

    times = []
    loss = grad = None
    for _ in range(max(1, int(repeat))):
        t1 = time.perf_counter()
        loss = float(loss_fn(x.copy()))
        grad = np.array(loss_fn.jac(x), dtype=float)
        times.append(time.perf_counter() - t1)

    terms = {
        "energy": float(loss_fn.loss_energy.calculate()),
        "forces": float(loss_fn.loss_forces.calculate()),
        "stress": float(loss_fn.loss_stress.calculate()),
    }
    info = {
        "weights": weights,
        "params": motep_to_mlip_order(x, mtp),
        "grad_motep_order": grad,
        "n_configs": K,
        "n_atoms": int(natoms.sum()),
        "n_params": int(grad.size),
        "engine": engine,
        "times": times,
        "setup_s": setup_s,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "terms": terms,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    return loss, motep_to_mlip_order(grad, mtp), info


def motep_efs(
    potential_path,
    cfg_path,
    engine: str = "cext",
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Energies, forces and MLIP PlusStress from motep 0.2.0 ("run" mode calculator).

    Returns
    -------
    energies : (K,) eV
    forces_list : list of (N_k, 3) arrays, eV/A
    stresses : (K, 6) MLIP ``PlusStress`` (virial, eV = -volume * ASE stress), order
        xx yy zz yz xz xy; NaN rows for configurations without a 3D cell.
    """
    from motep.calculator import make_calculator

    mtp, images = _read(potential_path, cfg_path)
    energies = np.empty(len(images))
    stresses = np.full((len(images), 6), np.nan)
    forces_list = []
    for k, atoms in enumerate(images):
        atoms.calc = make_calculator(mtp, engine=engine, mode="run")
        energies[k] = atoms.get_potential_energy()
        forces_list.append(np.array(atoms.get_forces(), dtype=float))
        if atoms.cell.rank == 3:
            stresses[k] = -np.asarray(atoms.get_stress(voigt=True)) * atoms.get_volume()
    return energies, forces_list, stresses
