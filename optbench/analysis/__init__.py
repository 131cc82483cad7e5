"""Numerical analysis of the loss landscape: curvature (Hessian and Gauss-Newton
products, dense matrices) and spectra (dense eigenvalues, Lanczos extremes, stochastic
Lanczos quadrature densities).

May import optbench.objective, optbench.io, optbench.metrics, NumPy and SciPy (torch only
inside functions); nothing from train, experiments, report or cli (pyproject.toml's layers).
"""

from optbench.analysis.curvature import (
    LOSS_PER_SQUARED_RESIDUAL,
    dense_gauss_newton,
    dense_hessian,
    fd_step,
    gauss_newton_vector_product,
    hessian_vector_product,
    preserved_parameters,
)
from optbench.analysis.spectra import (
    dense_spectrum,
    lanczos_extremes,
    lanczos_tridiagonal,
    slq_density,
    spectrum_summary,
)

__all__ = [
    "LOSS_PER_SQUARED_RESIDUAL",
    "dense_gauss_newton",
    "dense_hessian",
    "dense_spectrum",
    "fd_step",
    "gauss_newton_vector_product",
    "hessian_vector_product",
    "lanczos_extremes",
    "lanczos_tridiagonal",
    "preserved_parameters",
    "slq_density",
    "spectrum_summary",
]
