"""Physical properties: the engine's ASE calculator in an MD loop (with and without the
neighbour skin) and the eos + elastic pair every run of `make demo` computes."""

from __future__ import annotations

import numpy as np

from . import common


def trained_mtp8() -> str:
    """The text of a level-8 MTP fitted to the generated Ag-Pd set by 150 L-BFGS-B
    iterations (a potential with a crystal to compute properties of; about 10 s, run
    once by asv as the classes' setup_cache)."""
    import tempfile
    from pathlib import Path

    from scipy.optimize import minimize

    train, _ = common.agpd_sets()
    obj = common.objective("mtp8", train)
    res = minimize(obj.loss_grad, obj.initial_params(0), jac=True, method="L-BFGS-B", options={"maxiter": 150})
    with tempfile.TemporaryDirectory() as tmp:
        obj.save(res.x, Path(tmp, "p.almtp"))
        return Path(tmp, "p.almtp").read_text()


def _write(tmp: str, text: str) -> str:
    path = f"{tmp}/mtp8.almtp"
    with open(path, "w") as f:
        f.write(text)
    return path


class CalculatorMD:
    """Seconds for 20 velocity-Verlet steps of 108 Ag atoms (fcc 3x3x3, 600 K start, 2 fs)
    through optbench.engine.calculator.EngineCalculator with a level-8 MTP, one engine
    thread: skin 0.3 A (neighbour lists updated in place) against skin 0 (a new data set
    every step). Lower is better."""

    params = [[0.3, 0.0]]
    param_names = ["skin"]
    setup_cache = staticmethod(trained_mtp8)
    timeout = 180

    def setup(self, text, skin):
        import tempfile

        from ase.build import bulk
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
        from ase.md.verlet import VelocityVerlet
        from ase import units

        try:
            from optbench.engine.calculator import EngineCalculator
        except ImportError:
            raise NotImplementedError("no EngineCalculator in this commit") from None
        self.tmp = tempfile.TemporaryDirectory()
        atoms = bulk("Ag", "fcc", a=4.09, cubic=True).repeat((3, 3, 3))
        MaxwellBoltzmannDistribution(atoms, temperature_K=600, rng=np.random.default_rng(0))
        atoms.calc = EngineCalculator(_write(self.tmp.name, text), species=["Ag", "Pd"], skin=skin, num_threads=1)
        self.md = VelocityVerlet(atoms, timestep=2 * units.fs)
        self.md.run(1)

    def teardown(self, text, skin):
        self.tmp.cleanup()

    def time_md_20_steps(self, text, skin):
        """20 MD steps (seconds)."""
        self.md.run(20)


class EosElastic:
    """Seconds for the equation of state and the elastic constants of fcc Ag with a
    level-8 MTP through the engine's calculator (what `make demo` computes per run and
    structure). Lower is better."""

    setup_cache = staticmethod(trained_mtp8)
    timeout = 180

    def setup(self, text):
        import tempfile

        try:
            from optbench.properties import compute_properties
            from optbench.properties.calculators import calculator_for
        except ImportError:
            raise NotImplementedError("no optbench.properties in this commit") from None
        self.tmp = tempfile.TemporaryDirectory()
        self.calc = calculator_for(_write(self.tmp.name, text), ["Ag", "Pd"], threads=1)
        self.compute = compute_properties

    def teardown(self, text):
        self.tmp.cleanup()

    def time_eos_elastic_ag(self, text):
        """eos and elastic of Ag-fcc (seconds)."""
        self.compute(self.calc, ["Ag-fcc"], ["eos", "elastic"])
