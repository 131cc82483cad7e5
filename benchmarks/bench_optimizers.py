"""The optimizers' own cost: one step of each step-based optimizer, one short run of
each self-driven one (SciPy quasi-Newton, hybrid, separable least squares)."""

from __future__ import annotations

from . import common

STEP_BATCH = 32  # configurations in the gradient the step-based optimizers step on
DRIVER_CONFIGS = 40  # training configurations of the drivers' small problem
DRIVER_EPOCHS = 4  # a driver run's budget: one quasi-Newton iteration with its line search, about


class StepUpdate:
    """Seconds for one `update` of a step-based optimizer (the optimizer alone, no
    engine call) on the 222-parameter level-16 MTP vector, with a real gradient of a
    32-configuration batch and a state a few steps old. Lower is better."""

    params = [common.optimizer_names(step_based=True)]
    param_names = ["optimizer"]
    setup_cache = staticmethod(common.agpd_sets)

    def setup(self, sets, optimizer):
        REGISTRY = common.load("optbench.optim", "REGISTRY")

        if optimizer not in REGISTRY:  # the suite is discovered once for every commit compared
            raise NotImplementedError(f"no optimizer {optimizer!r} at this commit")
        train, _ = sets
        obj = common.objective("mtp16", train[:STEP_BATCH])
        self.x = obj.initial_params(0)
        _, self.g = obj.loss_grad(self.x)
        entry = REGISTRY[optimizer]
        self.opt, self.lr = entry.build(), entry.default_lr
        self.state = self.opt.init(self.x)
        for _ in range(3):  # past the first steps' special cases (bias correction, warm-up)
            _, self.state = self.opt.update(self.g, self.state, self.x, self.lr)

    def time_update(self, sets, optimizer):
        """One optimizer.update (seconds); pure, so every call does the same work."""
        self.opt.update(self.g, self.state, self.x, self.lr)


class DriverRun:
    """Seconds for a short run of a self-driven optimizer through the training loop: a
    level-8 MTP (75 parameters) on 40 configurations, full batch, a budget of 4 epochs
    (160 configurations evaluated: about one quasi-Newton iteration with its line
    search), one final evaluation. Engine time included. Lower is better."""

    params = [common.optimizer_names(step_based=False)]
    param_names = ["optimizer"]
    setup_cache = staticmethod(common.agpd_sets)

    def setup(self, sets, optimizer):
        REGISTRY = common.load("optbench.optim", "REGISTRY")

        if optimizer not in REGISTRY:
            raise NotImplementedError(f"no optimizer {optimizer!r} at this commit")
        train, _ = sets
        self.obj = common.objective("mtp8", train[:DRIVER_CONFIGS])

    def time_run(self, sets, optimizer):
        """train() for 4 epochs of full-batch work (seconds)."""
        Budget = common.load("optbench.optim.budget", "Budget")
        TrainSettings, train = common.load("optbench.train", "TrainSettings", "train")

        result = train(self.obj, TrainSettings(optimizer=optimizer, budget=Budget(epochs=DRIVER_EPOCHS),
                                               seed=0, eval_every=10 ** 9))
        if result.status == "failed":  # an error inside the run must fail the benchmark
            raise RuntimeError(f"{optimizer}: {result.message}")
