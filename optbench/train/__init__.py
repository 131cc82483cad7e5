"""Training: one optimizer run on an Objective, with budgets, mini-batches, clipping,
learning-rate schedules, perturbation, periodic evaluation and a result that says how and
why it stopped.

- `settings`: `TrainSettings`, everything that defines a run besides model and data;
- `schedules`: learning-rate schedules;
- `tracker`: the `Tracker` every optimizer reaches the Objective through (budget,
  history, evaluation, best parameters);
- `result`: `History` and `RunResult`;
- `run`: `train(objective, settings)`.

Budgets (`optbench.optim.budget.Budget`) and the step loop (`optbench.optim.loop`) live
below, with the optimizers that use them.
"""

from optbench.optim.budget import Budget
from optbench.train.result import History, RunResult
from optbench.train.run import train
from optbench.train.schedules import Schedule
from optbench.train.settings import REFINEMENTS, TrainSettings
from optbench.train.tracker import Tracker

__all__ = ["train", "TrainSettings", "REFINEMENTS", "Schedule", "Budget", "Tracker", "History", "RunResult"]
