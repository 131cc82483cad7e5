"""First-order optimizers on the flat float64 parameter vector, after optax.

Each is an `Optimizer` (base.py): `init(x) -> state`, `update(g, state, x, lr) -> (step,
state)`, then `x + step`. At a constant learning rate each trajectory equals the optax
optimizer of the same name (tests/test_optimizer_parity.py, 1e-10 relative). Moments
(m, v) are in gradient units and squared gradient units; `t` counts steps from 1.
"""

from __future__ import annotations

import numpy as np

from .base import Entry, Hyper, Optimizer, check_fraction, check_positive


def _adam_moments(g, state, b1, b2):
    """Updated first/second moments and their bias-corrected values (optax order)."""
    t = state["t"] + 1
    m = (1 - b1) * g + b1 * state["m"]
    v = (1 - b2) * (g * g) + b2 * state["v"]
    return t, m, v, m / (1 - b1 ** t), v / (1 - b2 ** t)


def _moments_init(x):
    return {"t": 0, "m": np.zeros_like(x), "v": np.zeros_like(x)}


def sgd() -> Optimizer:
    """Plain gradient descent: step = -lr g."""
    return Optimizer("sgd", lambda x: {}, lambda g, s, x, lr: (-lr * g, s), {})


def momentum(beta: float = 0.9, nesterov: bool = False) -> Optimizer:
    """Heavy ball: b <- g + beta b, step = -lr b; Nesterov: step = -lr (g + beta b)
    (optax.sgd with momentum)."""
    beta = check_fraction("beta", beta)

    def update(g, s, x, lr):
        b = g + beta * s["b"]
        direction = g + beta * b if nesterov else b
        return -lr * direction, {"b": b}

    return Optimizer("nesterov" if nesterov else "momentum", lambda x: {"b": np.zeros_like(x)}, update,
                     {"beta": beta, "nesterov": bool(nesterov)})


def adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam: step = -lr m_hat / (sqrt(v_hat) + eps) with bias-corrected moments."""
    b1, b2, eps = check_fraction("b1", b1), check_fraction("b2", b2), check_positive("eps", eps, True)

    def update(g, s, x, lr):
        t, m, v, mh, vh = _adam_moments(g, s, b1, b2)
        return -lr * (mh / (np.sqrt(vh) + eps)), {"t": t, "m": m, "v": v}

    return Optimizer("adam", _moments_init, update, {"b1": b1, "b2": b2, "eps": eps})


def adamw(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 1e-4) -> Optimizer:
    """AdamW: Adam's direction plus decoupled weight decay, step = -lr (dir + wd x)."""
    inner = adam(b1, b2, eps)
    wd = check_positive("weight_decay", weight_decay, True)

    def update(g, s, x, lr):
        step, s2 = inner.update(g, s, x, 1.0)
        return -lr * (-step + wd * x), s2

    return Optimizer("adamw", _moments_init, update, {**inner.hyper, "weight_decay": wd})


def radam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, threshold: float = 5.0) -> Optimizer:
    """Rectified Adam (Liu et al. 2020): momentum alone while the variance estimate is
    intractable (rho_t < threshold), then Adam's direction times the rectification r_t."""
    b1, b2, eps = check_fraction("b1", b1), check_fraction("b2", b2), check_positive("eps", eps, True)
    threshold = check_positive("threshold", threshold)
    rho_inf = 2.0 / (1.0 - b2) - 1.0

    def update(g, s, x, lr):
        t, m, v, mh, vh = _adam_moments(g, s, b1, b2)
        b2t = b2 ** t
        rho = rho_inf - 2 * t * b2t / (1 - b2t)
        if rho >= threshold:
            r = np.sqrt((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
            direction = r * mh / (np.sqrt(vh) + eps)
        else:
            direction = mh
        return -lr * direction, {"t": t, "m": m, "v": v}

    return Optimizer("radam", _moments_init, update, {"b1": b1, "b2": b2, "eps": eps, "threshold": threshold})


def lamb(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-6, weight_decay: float = 0.0) -> Optimizer:
    """LAMB (You et al. 2020): Adam's direction plus weight decay, rescaled by the trust
    ratio ||x|| / ||direction|| (1 when either is zero) over the whole vector."""
    inner = adam(b1, b2, eps)
    wd = check_positive("weight_decay", weight_decay, True)

    def update(g, s, x, lr):
        step, s2 = inner.update(g, s, x, 1.0)
        u = -step + wd * x
        pn, un = np.linalg.norm(x), np.linalg.norm(u)
        trust = 1.0 if pn == 0.0 or un == 0.0 else pn / un
        return -lr * (u * trust), s2

    return Optimizer("lamb", _moments_init, update, {**inner.hyper, "weight_decay": wd})


def ranger(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, threshold: float = 5.0, k: int = 6,
           alpha: float = 0.5) -> Optimizer:
    """Ranger: RAdam on fast weights with Lookahead (Zhang et al. 2019): every k steps the
    slow weights move alpha of the way to the fast ones and the fast weights restart there.
    x is the fast point (where gradients are taken); `eval_params` gives the slow weights,
    the point Lookahead reports (optax.lookahead's `params.slow`)."""
    inner = radam(b1, b2, eps, threshold)
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k!r}")
    k = int(k)
    alpha = check_positive("alpha", alpha)

    def init(x):
        return {**inner.init(x), "slow": x.copy(), "since_sync": 0}

    def update(g, s, x, lr):
        step, s2 = inner.update(g, {key: s[key] for key in ("t", "m", "v")}, x, lr)
        slow = s["slow"]
        if s["since_sync"] == k - 1:
            new_slow = slow + alpha * (x + step - slow)
            step = new_slow - x
            slow = new_slow
        return step, {**s2, "slow": slow, "since_sync": (s["since_sync"] + 1) % k}

    return Optimizer("ranger", init, update, {**inner.hyper, "k": k, "alpha": alpha},
                     eval_params=lambda x, s: s["slow"])


def schedule_free_adamw(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
                        weight_lr_power: float = 2.0) -> Optimizer:
    """ScheduleFree AdamW (Defazio et al. 2024): an RMS-scaled base sequence z, its
    lr^power-weighted average xbar, and gradients taken at y = b1 xbar + (1 - b1) z.
    x here is y; `eval_params` returns xbar = (y - (1 - b1) z) / b1, the point to evaluate.
    The averaging weight uses the largest learning rate seen so far (kept in the state).
    Warm-up is the training loop's schedule (cosine with warmup), not a hyperparameter."""
    b1 = check_positive("b1", check_fraction("b1", b1))
    b2, eps = check_fraction("b2", b2), check_positive("eps", eps, True)
    wd = check_positive("weight_decay", weight_decay, True)

    def init(x):
        return {"t": 0, "v": np.zeros_like(x), "z": x.copy(), "weight_sum": 0.0, "max_lr": 0.0}

    def update(g, s, y, lr):
        max_lr = max(s["max_lr"], lr)
        weight = max_lr ** weight_lr_power
        total = s["weight_sum"] + weight
        ck = weight / total if total > 0 else 0.0
        t = s["t"] + 1
        v = (1 - b2) * (g * g) + b2 * s["v"]
        base = -lr * (g / (np.sqrt(v / (1 - b2 ** t)) + eps) + wd * y)
        z = s["z"] + base
        prev_x = (y - (1.0 - b1) * s["z"]) / b1
        xbar = (1.0 - ck) * prev_x + ck * z
        new_y = b1 * xbar + (1.0 - b1) * z
        return new_y - y, {"t": t, "v": v, "z": z, "weight_sum": total, "max_lr": max_lr}

    return Optimizer("schedulefree", init, update,
                     {"b1": b1, "b2": b2, "eps": eps, "weight_decay": wd, "weight_lr_power": weight_lr_power},
                     eval_params=lambda y, s: (y - (1.0 - b1) * s["z"]) / b1)


_B = {"b1": Hyper(0.9, "first-moment decay"), "b2": Hyper(0.999, "second-moment decay"),
      "eps": Hyper(1e-8, "added to the RMS denominator")}

REGISTRY = {
    "sgd": Entry(sgd, {}, 1e-9, "plain gradient descent (raw MTP gradients reach 1e5: small lr, or clip)"),
    "momentum": Entry(lambda beta: momentum(beta, False), {"beta": Hyper(0.9, "momentum decay")}, 1e-9,
                      "heavy-ball momentum"),
    "nesterov": Entry(lambda beta: momentum(beta, True), {"beta": Hyper(0.9, "momentum decay")}, 1e-9,
                      "Nesterov momentum"),
    "adam": Entry(adam, dict(_B), 1e-2, "Adam"),
    "adamw": Entry(adamw, {**_B, "weight_decay": Hyper(1e-4, "decoupled weight decay")}, 1e-2,
                   "Adam with decoupled weight decay"),
    "radam": Entry(radam, {**_B, "threshold": Hyper(5.0, "rho_t above which the rectified step is used")},
                   1e-2, "rectified Adam (momentum-only first steps: use --clip with raw MTP gradients)"),
    "lamb": Entry(lamb, {**_B, "eps": Hyper(1e-6, "added to the RMS denominator"),
                         "weight_decay": Hyper(0.0, "decoupled weight decay")}, 1e-2,
                  "Adam with a layer-wise (here: whole-vector) trust ratio"),
    "ranger": Entry(ranger, {**_B, "threshold": Hyper(5.0, "RAdam's rectification threshold"),
                             "k": Hyper(6, "Lookahead synchronisation period (steps)"),
                             "alpha": Hyper(0.5, "Lookahead slow step size")}, 1e-2,
                    "RAdam with Lookahead (evaluated at the slow weights)"),
    "schedulefree": Entry(schedule_free_adamw, {**_B, "weight_decay": Hyper(0.0, "weight decay"),
                                                "weight_lr_power": Hyper(2.0, "power of lr in the averaging weight")},
                          1e-2, "ScheduleFree AdamW (evaluated at the averaged point)"),
}
