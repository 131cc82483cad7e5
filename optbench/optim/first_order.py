"""First-order optimizers on the flat float64 parameter vector, after optax 0.2.8.

Each factory returns an `Optimizer` (base.py): `state = init(x)`, then per step
`step, state = update(g, state, x, lr)` and `x = x + step`. At a constant learning rate
every trajectory equals the optax optimizer named in its docstring, to 1e-10 relative
(tests/test_optimizer_parity.py); at a varying one it equals optax driven by the same
rates as a schedule, except ScheduleFree (see `schedule_free_adamw`).

Units: x and the step in parameter units, g in loss units per parameter unit; first
moments m in gradient units, second moments v in squared gradient units; `t` counts the
updates made so far (1 after the first). Adam-type directions are dimensionless, so for
them lr is a step length in parameter units; for SGD and momentum lr has units of
parameter^2 per loss unit.

The formulas follow optax's source term by term (bias corrections as m / (1 - b1^t),
eps outside the square root), which is what makes parity at 1e-10 possible.
"""

from __future__ import annotations

import numpy as np

from optbench.optim.base import (
    Entry,
    Hyper,
    Optimizer,
    State,
    check_flag,
    check_fraction,
    check_integer,
    check_positive,
)


def _check_moments(b1: float, b2: float, eps: float) -> tuple[float, float, float]:
    return check_fraction("b1", b1), check_fraction("b2", b2), check_positive("eps", eps, allow_zero=True)


# ---------------------------------------------------------------------------------------
# Shared pieces of the Adam family.


def _moments_init(x: np.ndarray) -> State:
    """Zero first and second moments, no updates made yet."""
    return {"t": 0, "m": np.zeros_like(x), "v": np.zeros_like(x)}


def _adam_moments(g: np.ndarray, state: State, b1: float, b2: float):
    """optax.scale_by_adam's moment update: (t, m, v, m_hat, v_hat) after gradient g,
    with m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)."""
    t = state["t"] + 1
    m = (1 - b1) * g + b1 * state["m"]
    v = (1 - b2) * (g * g) + b2 * state["v"]
    return t, m, v, m / (1 - b1 ** t), v / (1 - b2 ** t)


def _adam_direction(g: np.ndarray, state: State, b1: float, b2: float, eps: float):
    """Adam's dimensionless direction m_hat / (sqrt(v_hat) + eps) and the new moments."""
    t, m, v, m_hat, v_hat = _adam_moments(g, state, b1, b2)
    return m_hat / (np.sqrt(v_hat) + eps), {"t": t, "m": m, "v": v}


# ---------------------------------------------------------------------------------------
# Plain and momentum gradient descent.


def sgd() -> Optimizer:
    """Plain gradient descent, optax.sgd(lr): step = -lr g."""

    def update(g, state, x, lr):
        return -lr * g, {}

    return Optimizer("sgd", lambda x: {}, update, {})


def momentum(beta: float = 0.9, nesterov: bool = False) -> Optimizer:
    """Momentum, optax.sgd(lr, momentum=beta, nesterov=nesterov):

        b <- g + beta b                    (b in gradient units, b_0 = 0)
        heavy ball: step = -lr b
        Nesterov:   step = -lr (g + beta b)   (with the new b)
    """
    beta = check_fraction("beta", beta)
    nesterov = check_flag("nesterov", nesterov)

    def update(g, state, x, lr):
        b = g + beta * state["b"]
        direction = g + beta * b if nesterov else b
        return -lr * direction, {"b": b}

    return Optimizer("nesterov" if nesterov else "momentum", lambda x: {"b": np.zeros_like(x)}, update,
                     {"beta": beta, "nesterov": nesterov})


# ---------------------------------------------------------------------------------------
# The Adam family.


def adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam, optax.adam(lr, b1, b2, eps):

        m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,  t <- t + 1
        step = -lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """
    b1, b2, eps = _check_moments(b1, b2, eps)

    def update(g, state, x, lr):
        direction, new_state = _adam_direction(g, state, b1, b2, eps)
        return -lr * direction, new_state

    return Optimizer("adam", _moments_init, update, {"b1": b1, "b2": b2, "eps": eps})


def adamw(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 1e-4) -> Optimizer:
    """AdamW with decoupled weight decay, optax.adamw(lr, b1, b2, eps, weight_decay=wd):

        step = -lr (adam_direction + wd x)

    The decay is multiplied by lr, as in optax and PyTorch (wd in 1 / lr units)."""
    b1, b2, eps = _check_moments(b1, b2, eps)
    wd = check_positive("weight_decay", weight_decay, allow_zero=True)

    def update(g, state, x, lr):
        direction, new_state = _adam_direction(g, state, b1, b2, eps)
        return -lr * (direction + wd * x), new_state

    return Optimizer("adamw", _moments_init, update, {"b1": b1, "b2": b2, "eps": eps, "weight_decay": wd})


def radam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, threshold: float = 5.0) -> Optimizer:
    """Rectified Adam (Liu et al. 2020), optax.radam(lr, b1, b2, eps, threshold=threshold):

        rho_inf = 2 / (1 - b2) - 1,  rho_t = rho_inf - 2 t b2^t / (1 - b2^t)
        rho_t >= threshold: step = -lr r_t m_hat / (sqrt(v_hat) + eps),
            r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
        otherwise (variance estimate intractable, the first ~5 steps): step = -lr m_hat

    The momentum-only early steps are in gradient units: with large raw gradients they
    need clipping or a small lr."""
    b1, b2, eps = _check_moments(b1, b2, eps)
    threshold = check_positive("threshold", threshold)
    rho_inf = 2.0 / (1.0 - b2) - 1.0

    def update(g, state, x, lr):
        t, m, v, m_hat, v_hat = _adam_moments(g, state, b1, b2)
        b2t = b2 ** t
        rho = rho_inf - 2 * t * b2t / (1 - b2t)
        if rho >= threshold:
            r = np.sqrt((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
            direction = r * m_hat / (np.sqrt(v_hat) + eps)
        else:
            direction = m_hat
        return -lr * direction, {"t": t, "m": m, "v": v}

    return Optimizer("radam", _moments_init, update, {"b1": b1, "b2": b2, "eps": eps, "threshold": threshold})


def lamb(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-6, weight_decay: float = 0.0) -> Optimizer:
    """LAMB (You et al. 2020), optax.lamb(lr, b1, b2, eps, weight_decay=wd):

        u = adam_direction + wd x
        step = -lr (||x|| / ||u||) u      (ratio 1 when ||x|| or ||u|| is 0)

    optax takes the trust ratio per parameter array; here the parameters are one flat
    vector, so it is over the whole vector."""
    b1, b2, eps = _check_moments(b1, b2, eps)
    wd = check_positive("weight_decay", weight_decay, allow_zero=True)

    def update(g, state, x, lr):
        direction, new_state = _adam_direction(g, state, b1, b2, eps)
        u = direction + wd * x
        x_norm, u_norm = np.linalg.norm(x), np.linalg.norm(u)
        trust = 1.0 if x_norm == 0.0 or u_norm == 0.0 else x_norm / u_norm
        return -lr * (u * trust), new_state

    return Optimizer("lamb", _moments_init, update, {"b1": b1, "b2": b2, "eps": eps, "weight_decay": wd})


def ranger(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, threshold: float = 5.0, k: int = 6,
           alpha: float = 0.5) -> Optimizer:
    """Ranger: RAdam with Lookahead (Zhang et al. 2019), as
    optax.lookahead(optax.radam(lr, b1, b2, eps, threshold=threshold), sync_period=k,
    slow_step_size=alpha) on optax.LookaheadParams.init_synced(x0).

    x is Lookahead's *fast* weights (`params.fast`, where gradients are taken); the *slow*
    weights s (`params.slow`) are in the state, s_0 = x_0. Each step the fast weights take
    RAdam's step; on every k-th step they are then synchronised:

        s <- s + alpha (x + radam_step - s),   x <- s

    `eval_params` returns the slow weights, the point optax's Lookahead reports (and the
    one the paper evaluates). RAdam's moments are not reset at a sync (optax's default,
    reset_state=False)."""
    inner = radam(b1, b2, eps, threshold)
    k = check_integer("k", k, 1)
    alpha = check_positive("alpha", alpha)
    if alpha > 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")

    def init(x):
        return {**inner.init(x), "slow": x.copy(), "since_sync": 0}

    def update(g, state, x, lr):
        step, moments = inner.update(g, {key: state[key] for key in ("t", "m", "v")}, x, lr)
        slow = state["slow"]
        if state["since_sync"] == k - 1:
            slow = slow + alpha * (x + step - slow)
            step = slow - x  # the fast weights restart at the new slow weights
        return step, {**moments, "slow": slow, "since_sync": (state["since_sync"] + 1) % k}

    return Optimizer("ranger", init, update, {**inner.hyper, "k": k, "alpha": alpha},
                     eval_params=lambda x, state: state["slow"])


def _warmup_fraction(count: int, warmup_steps: int) -> float:
    """optax.warmup_constant_schedule(0, 1, warmup_steps) at `count`: min(count, W) / W,
    1 without warm-up."""
    return 1.0 if warmup_steps == 0 else min(count, warmup_steps) / warmup_steps


#: ScheduleFree warm-up conventions: how many updates ahead the rate of the z step is read
#: (optax: w(c), so the first update does not move z; the PyTorch `schedulefree`
#: package: w(c+1), as for the averaging weight).
_WARMUP_SHIFT = {"optax": 0, "schedulefree": 1}


def schedule_free_adamw(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
                        warmup_steps: int = 0, weight_lr_power: float = 2.0, r: float = 0.0,
                        warmup_convention: str = "optax") -> Optimizer:
    """ScheduleFree AdamW (Defazio et al. 2024), optax.contrib.schedule_free_adamw(lr,
    warmup_steps, b1, b2, eps, weight_decay, weight_lr_power); with r or
    warmup_convention="schedulefree", schedulefree.AdamWScheduleFree(lr, (b1, b2), eps,
    weight_decay, warmup_steps, r, weight_lr_power) of the PyTorch `schedulefree` package
    (tests/test_torch_parity.py).

    Three sequences: the base iterate z (an RMS-scaled gradient walk), its weighted
    average xbar (the point to evaluate) and the gradient point y = b1 xbar + (1 - b1) z.
    x here is y; z is in the state and xbar = (y - (1 - b1) z) / b1. With
    c = updates made so far, w(c) = min(c, warmup_steps) / warmup_steps (1 without
    warm-up) and s = 0 (s = 1 with warmup_convention="schedulefree"):

        v <- b2 v + (1 - b2) g^2,  v_hat = v / (1 - b2^(c+1))
        z <- z - lr w(c+s) (g / (sqrt(v_hat) + eps) + wd y)
        max_lr <- max(max_lr, lr w(c+1)),  weight = (c+1)^r max_lr^weight_lr_power
        xbar <- (1 - ck) xbar + ck z,  ck = weight / (sum of weights so far)
        y <- b1 xbar + (1 - b1) z

    lr-dependent state: like optax, the state keeps the largest (warmed-up) rate seen,
    max_lr, and the running sum of averaging weights, so a rate that changes between
    steps changes the averaging as optax's learning-rate schedule would. optax evaluates
    the rate for max_lr one count ahead of the rate for z (its wrapper counts from 1,
    scale_by_learning_rate from 0); w(c+1) above reproduces that for the warm-up. With a
    training-loop schedule lr_c, our max_lr uses lr_c where optax's would use lr_(c+1),
    so parity with an optax schedule holds only at a constant lr (plus warm-up).

    Options beyond optax (defaults reproduce optax): r > 0 is the paper's polynomial
    weighting of the average, (c+1)^r (optax has none; schedulefree's `r`).
    warmup_convention="schedulefree" reads the z step's warm-up one update ahead, w(c+1)
    instead of w(c), as schedulefree.AdamWScheduleFree does ((k+1) / warmup_steps at its
    k-th step): its first update already moves z, at lr / warmup_steps. Without warm-up
    the two conventions are the same.

    `eval_params` returns xbar, optax.contrib.schedule_free_eval_params (schedulefree's
    optimizer.eval() point)."""
    b1 = check_fraction("b1", b1)
    if b1 == 0.0:
        raise ValueError("b1 must be in (0, 1) for ScheduleFree (the evaluation point divides by it), got 0.0")
    b2, eps = check_fraction("b2", b2), check_positive("eps", eps, allow_zero=True)
    wd = check_positive("weight_decay", weight_decay, allow_zero=True)
    warmup_steps = check_integer("warmup_steps", warmup_steps, 0)
    power = check_positive("weight_lr_power", weight_lr_power, allow_zero=True)
    r = check_positive("r", r, allow_zero=True)
    if warmup_convention not in _WARMUP_SHIFT:
        raise ValueError(f"warmup_convention must be one of {', '.join(_WARMUP_SHIFT)}, got {warmup_convention!r}")
    shift = _WARMUP_SHIFT[warmup_convention]

    def init(x):
        return {"t": 0, "v": np.zeros_like(x), "z": x.copy(), "weight_sum": 0.0, "max_lr": 0.0}

    def update(g, state, y, lr):
        c = state["t"]
        max_lr = max(state["max_lr"], lr * _warmup_fraction(c + 1, warmup_steps))
        weight = (c + 1) ** r * max_lr ** power  # (c + 1) ** 0.0 == 1.0: optax's weight exactly
        weight_sum = state["weight_sum"] + weight
        ck = weight / weight_sum if weight_sum > 0 else 0.0  # optax: nan_to_num(0 / 0) = 0
        t = c + 1
        v = (1 - b2) * (g * g) + b2 * state["v"]
        rate = lr * _warmup_fraction(c + shift, warmup_steps)
        z = state["z"] - rate * (g / (np.sqrt(v / (1 - b2 ** t)) + eps) + wd * y)
        xbar = (1.0 - ck) * ((y - (1.0 - b1) * state["z"]) / b1) + ck * z
        new_y = b1 * xbar + (1.0 - b1) * z
        return new_y - y, {"t": t, "v": v, "z": z, "weight_sum": weight_sum, "max_lr": max_lr}

    return Optimizer("schedulefree", init, update,
                     {"b1": b1, "b2": b2, "eps": eps, "weight_decay": wd, "warmup_steps": warmup_steps,
                      "weight_lr_power": power, "r": r, "warmup_convention": warmup_convention},
                     eval_params=lambda y, state: (y - (1.0 - b1) * state["z"]) / b1)


# ---------------------------------------------------------------------------------------
# Registry. Default rates: MTP fits start from small random coefficients and raw gradients
# of the energy/force loss reach ~1e5, so gradient-unit steps (SGD, momentum) need a tiny
# rate, while Adam-type directions are O(1) per coordinate and lr is the step length.

_ADAM_HYPERS = {
    "b1": Hyper(0.9, "first-moment decay"),
    "b2": Hyper(0.999, "second-moment decay"),
    "eps": Hyper(1e-8, "added to the RMS denominator (gradient units)"),
}
_BETA = {"beta": Hyper(0.9, "momentum decay")}

REGISTRY: dict[str, Entry] = {
    "sgd": Entry(sgd, {}, 1e-9, "plain gradient descent (raw MTP gradients reach 1e5: small lr, or clip)"),
    "momentum": Entry(lambda beta: momentum(beta, nesterov=False), dict(_BETA), 1e-9, "heavy-ball momentum"),
    "nesterov": Entry(lambda beta: momentum(beta, nesterov=True), dict(_BETA), 1e-9, "Nesterov momentum"),
    "adam": Entry(adam, dict(_ADAM_HYPERS), 1e-2, "Adam"),
    "adamw": Entry(adamw, {**_ADAM_HYPERS, "weight_decay": Hyper(1e-4, "decoupled weight decay (times lr)")},
                   1e-2, "Adam with decoupled weight decay"),
    "radam": Entry(radam, {**_ADAM_HYPERS, "threshold": Hyper(5.0, "rho_t from which the rectified step is used")},
                   1e-2, "rectified Adam (momentum-only first steps: use --clip with raw MTP gradients)"),
    "lamb": Entry(lamb, {**_ADAM_HYPERS, "eps": Hyper(1e-6, "added to the RMS denominator (gradient units)"),
                         "weight_decay": Hyper(0.0, "decoupled weight decay")},
                  1e-2, "Adam with a layer-wise (here: whole-vector) trust ratio"),
    "ranger": Entry(ranger, {**_ADAM_HYPERS, "threshold": Hyper(5.0, "RAdam's rectification threshold"),
                             "k": Hyper(6, "Lookahead synchronisation period (steps)"),
                             "alpha": Hyper(0.5, "Lookahead slow step size, in (0, 1]")},
                    1e-2, "RAdam with Lookahead (evaluated at the slow weights)"),
    "schedulefree": Entry(schedule_free_adamw,
                          {"b1": Hyper(0.9, "interpolation between average and base iterate (> 0)"),
                           "b2": _ADAM_HYPERS["b2"], "eps": _ADAM_HYPERS["eps"],
                           "weight_decay": Hyper(0.0, "weight decay (times lr)"),
                           "warmup_steps": Hyper(0, "linear warm-up of the rate over this many steps"),
                           "weight_lr_power": Hyper(2.0, "power of max lr in the averaging weight"),
                           "r": Hyper(0.0, "power of the step count in the averaging weight (0: optax)"),
                           "warmup_convention": Hyper("optax", "warm-up of the z step: optax (first step 0) "
                                                      "or schedulefree (PyTorch package)")},
                          1e-2, "ScheduleFree AdamW (evaluated at the averaged point)"),
}
