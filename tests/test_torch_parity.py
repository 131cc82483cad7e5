"""Parity of the first-order suite with the PyTorch reference implementations (float64).

Set-up, the same for every optimizer: a small torch model in float64 (Linear(3, 8),
Tanh, Linear(8, 1), torch.manual_seed(0)) on a fixed regression data set of 48 points in
4 fixed mini-batches of 12, used in turn for 20 steps. The reference runs on
model.parameters() (zero_grad, loss.backward(), opt.step()); our side keeps the flat
vector x (parameters_to_vector order), takes the gradient of the same mean squared error
at x by loading x into a copy of the model (vector_to_parameters) and calling backward,
and applies our update. After every step the flat parameter vectors must agree to 1e-10
relative, elementwise, with an absolute floor of 1e-12 of the vector's largest entry (as
in tests/test_optimizer_parity.py); where the optimizer reports another point
(`eval_params`: Lookahead's slow weights, ScheduleFree's average) that point is compared
too. Every difference feeds back through the gradients of later steps.

References and the settings that implement our algorithm (the hyperparameters are passed
explicitly on both sides; reference defaults that differ from ours are checked in
test_reference_defaults_that_differ_from_ours):

- torch.optim.SGD(lr) / SGD(lr, momentum=beta, nesterov=...) (dampening 0, torch's
  default): sgd, momentum, nesterov. Same formulas.
- torch.optim.Adam(lr, betas, eps), torch.optim.AdamW(lr, betas, eps, weight_decay):
  adam, adamw. Same formulas (AdamW: p <- p (1 - lr wd), then the Adam step, which is our
  -lr (adam_direction + wd x)). torch's AdamW default weight_decay is 1e-2, ours 1e-4.
- torch.optim.RAdam: radam. eps sits elsewhere: torch divides by sqrt(v) + eps and
  multiplies by sqrt(1 - b2^t), we (after optax) divide by sqrt(v / (1 - b2^t)) + eps, so
  torch's eps_t = eps sqrt(1 - b2^t) is ours; the reference is run with that eps at every
  step (group["eps"]). torch switches to the rectified step at rho_t > 5, we at
  rho_t >= threshold (5): the same, rho_t is never exactly 5 at b2 = 0.999.
- pytorch_optimizer.Lamb: lamb (see the LAMB tests for the conventions; eps = 0).
- pytorch_optimizer.Ranger(degenerated_to_sgd=True, use_gc=False, eps_t as for RAdam):
  ranger (see test_ranger_matches_pytorch_optimizer).
- schedulefree.AdamWScheduleFree: schedulefree, with our warmup_convention="schedulefree"
  when there is a warm-up (see the ScheduleFree tests).

The whole module is skipped without torch, the LAMB/Ranger tests without
pytorch_optimizer, the ScheduleFree tests without schedulefree.
"""

from __future__ import annotations

import copy
import inspect
from itertools import pairwise

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch parity tests need the optional torch extra")

from torch.nn.utils import parameters_to_vector, vector_to_parameters

from optbench.optim import first_order as fo

REGISTRY = fo.REGISTRY
STEPS = 20
LR = 1e-2  # Adam-type step length
SGD_LR = 0.1
RTOL = 1e-10


@pytest.fixture(scope="module")
def pytorch_optimizer():
    return pytest.importorskip("pytorch_optimizer", reason="LAMB and Ranger references need pytorch_optimizer")


@pytest.fixture(scope="module")
def schedulefree():
    return pytest.importorskip("schedulefree", reason="the ScheduleFree reference needs schedulefree")


# ---------------------------------------------------------------------------------------
# The model, the data and the two trajectories.


def _mlp() -> torch.nn.Module:
    """Linear(3, 8), Tanh, Linear(8, 1) in float64, seeded: 41 parameters in 4 tensors."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()


class _OneTensorMLP(torch.nn.Module):
    """The same function and initial parameters as _mlp(), held in ONE parameter tensor
    (the 41-vector in parameters_to_vector order), for optimizers whose reference acts
    per parameter tensor (LAMB's trust ratio): on it, per tensor is per whole vector."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(parameters_to_vector(_mlp().parameters()).detach().clone())

    def forward(self, X):
        w = self.w
        W1, b1, W2, b2 = w[:24].view(8, 3), w[24:32], w[32:40].view(1, 8), w[40:41]
        return torch.tanh(X @ W1.T + b1) @ W2.T + b2


def _batches():
    """48 points of a smooth target in 4 fixed mini-batches of 12."""
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(48, 3, generator=gen, dtype=torch.float64)
    y = torch.sin(X @ torch.tensor([1.0, -0.5, 0.3], dtype=torch.float64)).unsqueeze(1) + 0.1 * X[:, :1] ** 2
    return [(X[i:i + 12], y[i:i + 12]) for i in range(0, 48, 12)]


BATCHES = _batches()


def _loss(model, k: int):
    X, y = BATCHES[k % len(BATCHES)]
    return torch.mean((model(X) - y) ** 2)


def _flat(model) -> np.ndarray:
    return parameters_to_vector(model.parameters()).detach().numpy().copy()


def _ours(model0, opt, lrs):
    """Our trajectory from model0's parameters: (x, eval_params) after each step, with the
    gradient taken by loading x into a copy of the model; `lrs[k]` is the rate of step k."""
    work = copy.deepcopy(model0)
    x = _flat(model0)
    state, out = opt.init(x), []
    for k in range(STEPS):
        vector_to_parameters(torch.from_numpy(x.copy()), work.parameters())
        work.zero_grad(set_to_none=True)
        _loss(work, k).backward()
        g = torch.cat([p.grad.reshape(-1) for p in work.parameters()]).numpy().copy()
        step, state = opt.update(g, state, x, float(lrs[k]))
        x = x + step
        out.append((x, opt.eval_params(x, state)))
    return out


def _theirs(model0, make_opt, before_step=None, reported=None, start=None):
    """The reference's trajectory on a copy of model0: (parameters, reported point) after
    each step. `before_step(opt, t)` may set group values for step t (1-based) and
    `reported(opt, model)` gives the point the optimizer reports (the parameters when
    None); `start(opt)` runs once before the first step."""
    model = copy.deepcopy(model0)
    opt = make_opt(model.parameters())
    if start is not None:
        start(opt)
    out = []
    for k in range(STEPS):
        if before_step is not None:
            before_step(opt, k + 1)
        opt.zero_grad(set_to_none=True)
        _loss(model, k).backward()
        opt.step()
        x = _flat(model)
        out.append((x, x if reported is None else reported(opt, model)))
    return out


def _max_rel(ours, theirs) -> float:
    """Largest elementwise |ours - theirs| / max(|theirs|, 1e-2 max|theirs|) over all
    steps and both points (how close the trajectories are)."""
    worst = 0.0
    for a, b in zip(ours, theirs):
        for x, y in zip(a, b):
            scale = np.maximum(np.abs(y), 1e-2 * max(1.0, np.abs(y).max()))
            worst = max(worst, float(np.max(np.abs(x - y) / scale)))
    return worst


def _assert_same(ours, theirs, rtol: float = RTOL):
    """Both points equal to `rtol` relative (elementwise, absolute floor 1e-12 of the
    vector's largest entry) at every step."""
    assert len(ours) == len(theirs) == STEPS
    for k, (a, b) in enumerate(zip(ours, theirs)):
        for what, x, y in (("parameters", a[0], b[0]), ("reported point", a[1], b[1])):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-12 * max(1.0, np.abs(y).max()),
                                       err_msg=f"{what}, step {k + 1}")


def _constant(lr: float) -> np.ndarray:
    return np.full(STEPS, lr)


def _set_group(key: str, value_at):
    """A before_step hook that sets group[key] = value_at(t) for step t."""
    def hook(opt, t):
        for group in opt.param_groups:
            group[key] = value_at(t)
    return hook


def _torch_eps(eps: float, b2: float):
    """Our eps as a reference eps that sits on sqrt(v) (not on sqrt(v_hat)):
    eps_t = eps sqrt(1 - b2^t)."""
    return lambda t: eps * (1.0 - b2 ** t) ** 0.5


def test_every_first_order_entry_has_a_torch_case():
    """Every optimizer of the first-order registry is compared with a torch reference in
    this module (the cases below name them)."""
    covered = {"sgd", "momentum", "nesterov", "adam", "adamw", "radam", "lamb", "ranger", "schedulefree"}
    assert set(REGISTRY) == covered


# ---------------------------------------------------------------------------------------
# torch.optim: SGD, momentum, Adam, AdamW, RAdam.

TORCH_CASES = {
    "sgd": ("sgd", {}, lambda p, h: torch.optim.SGD(p, lr=SGD_LR), SGD_LR),
    "momentum": ("momentum", {"beta": 0.9}, lambda p, h: torch.optim.SGD(p, lr=SGD_LR, momentum=h["beta"]), SGD_LR),
    "momentum beta=0.7": ("momentum", {"beta": 0.7},
                          lambda p, h: torch.optim.SGD(p, lr=SGD_LR, momentum=h["beta"]), SGD_LR),
    "nesterov": ("nesterov", {"beta": 0.9},
                 lambda p, h: torch.optim.SGD(p, lr=SGD_LR, momentum=h["beta"], nesterov=True), SGD_LR),
    "adam": ("adam", {"b1": 0.9, "b2": 0.999, "eps": 1e-8},
             lambda p, h: torch.optim.Adam(p, lr=LR, betas=(h["b1"], h["b2"]), eps=h["eps"]), LR),
    "adam b1,b2,eps": ("adam", {"b1": 0.8, "b2": 0.99, "eps": 1e-3},
                       lambda p, h: torch.optim.Adam(p, lr=LR, betas=(h["b1"], h["b2"]), eps=h["eps"]), LR),
    "adamw": ("adamw", {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 1e-4},
              lambda p, h: torch.optim.AdamW(p, lr=LR, betas=(h["b1"], h["b2"]), eps=h["eps"],
                                             weight_decay=h["weight_decay"]), LR),
    "adamw wd=1e-1": ("adamw", {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 1e-1},
                      lambda p, h: torch.optim.AdamW(p, lr=LR, betas=(h["b1"], h["b2"]), eps=h["eps"],
                                                     weight_decay=h["weight_decay"]), LR),
}


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_trajectory_matches_torch_optim(case):
    """SGD (plain, heavy ball, Nesterov), Adam and AdamW built through our registry with
    the same lr and hyperparameters as torch.optim's follow its trajectory on the MLP to
    1e-10 relative at each of 20 steps."""
    name, hyper, make, lr = TORCH_CASES[case]
    model = _mlp()
    _assert_same(_ours(model, REGISTRY[name].build(**hyper), _constant(lr)),
                 _theirs(model, lambda p: make(p, hyper)))


@pytest.mark.parametrize("eps", [1e-8, 1e-3])
def test_radam_matches_torch_with_its_eps_convention(eps):
    """radam equals torch.optim.RAdam(lr, betas, eps_t) to 1e-10 relative at each of 20
    steps (momentum-only steps 1-5, rectified from step 6) when torch's eps at step t is
    eps_t = eps sqrt(1 - b2^t): torch's denominator is sqrt(v) + eps_t (times
    sqrt(1 - b2^t)), ours (optax's) sqrt(v / (1 - b2^t)) + eps. With torch's constant eps
    the trajectories differ by more than 1e-8 relative even at the default eps = 1e-8
    (about 2e-7; 1e-2 at eps = 1e-3): also checked."""
    b1, b2 = 0.9, 0.999
    model = _mlp()
    ours = _ours(model, REGISTRY["radam"].build(b1=b1, b2=b2, eps=eps, threshold=5.0), _constant(LR))
    make = lambda p: torch.optim.RAdam(p, lr=LR, betas=(b1, b2), eps=eps)
    _assert_same(ours, _theirs(model, make, before_step=_set_group("eps", _torch_eps(eps, b2))))
    assert _max_rel(ours, _theirs(model, make)) > 1e-8


# ---------------------------------------------------------------------------------------
# pytorch_optimizer: LAMB.
#
# pytorch_optimizer 4.1.0's Lamb (defaults: no rectify, grad_averaging, weight_decouple,
# adam=False, pre_norm=False) keeps *uncorrected* moments m, v and steps
#
#     u = m / (sqrt(v) + eps),   p <- p - (lr / (1 - b1^t)) * min(||p||, 10) / (||u|| + eps) * u
#
# with the trust ratio per parameter tensor; adam_debias=True drops the 1 / (1 - b1^t).
# Ours (optax's) is u' = m_hat / (sqrt(v_hat) + eps) [+ wd x], x <- x - lr ||x|| / ||u'|| u'
# over the whole vector. With eps = 0 (on both sides), u' = (sqrt(1 - b2^t) / (1 - b1^t)) u
# and the trust ratio removes that factor, so the two agree when ||p|| < 10 and the
# reference either has adam_debias=True or is given lr_t = lr (1 - b1^t). eps > 0 cannot
# be matched: it enters their trust ratio's denominator as well.
# Weight decay: their default (weight_decouple=True) decays p <- p (1 - lr wd) *outside*
# the trust ratio (AdamW-style, and before ||p|| is taken); ours puts wd x *inside* u'
# (the paper's and optax's form). With weight_decouple=False their u = m / sqrt(v) + wd p
# is ours up to the factor above, i.e. ours with wd equals theirs with
# wd_t = wd (1 - b1^t) / sqrt(1 - b2^t).

LAMB_HYPER = {"b1": 0.9, "b2": 0.999, "eps": 0.0}


def _lamb(pytorch_optimizer, **kwargs):
    return lambda p: pytorch_optimizer.Lamb(p, lr=LR, betas=(LAMB_HYPER["b1"], LAMB_HYPER["b2"]),
                                            eps=LAMB_HYPER["eps"], **kwargs)


def test_lamb_matches_pytorch_optimizer_on_one_tensor(pytorch_optimizer):
    """On the one-tensor MLP (where a per-tensor trust ratio is the whole-vector one),
    lamb(eps=0) equals pytorch_optimizer.Lamb(eps=0, weight_decay=0, adam_debias=True) to
    1e-10 relative at each of 20 steps; and Lamb's default adam_debias=False equals our
    lamb run at lr_t = lr / (1 - b1^t) (their step size divides by the first-moment bias
    correction *after* the trust ratio, so their steps are up to 10x ours early on).
    ||p|| stays below Lamb's clamp of 10 throughout (checked)."""
    model = _OneTensorMLP()
    ours = _ours(model, REGISTRY["lamb"].build(weight_decay=0.0, **LAMB_HYPER), _constant(LR))
    theirs = _theirs(model, _lamb(pytorch_optimizer, weight_decay=0.0, adam_debias=True))
    _assert_same(ours, theirs)
    assert max(np.linalg.norm(x) for x, _ in theirs) < 10.0
    b1 = LAMB_HYPER["b1"]
    debiased = LR / (1.0 - b1 ** np.arange(1, STEPS + 1))
    _assert_same(_ours(model, REGISTRY["lamb"].build(weight_decay=0.0, **LAMB_HYPER), debiased),
                 _theirs(model, _lamb(pytorch_optimizer, weight_decay=0.0)))


def test_lamb_weight_decay_convention(pytorch_optimizer):
    """Weight decay (wd = 1e-2, one-tensor MLP): lamb equals pytorch_optimizer.Lamb(
    weight_decouple=False, adam_debias=True, eps=0) given wd_t = wd (1 - b1^t) /
    sqrt(1 - b2^t) at step t, to 1e-10 relative over 20 steps (their decay term is added
    to the uncorrected m / sqrt(v), ours to m_hat / sqrt(v_hat)). Their default decoupled
    decay (p <- p (1 - lr wd) outside the trust ratio) is a different update: it differs
    from ours by more than 1e-6."""
    wd, b1, b2 = 1e-2, LAMB_HYPER["b1"], LAMB_HYPER["b2"]
    model = _OneTensorMLP()
    ours = _ours(model, REGISTRY["lamb"].build(weight_decay=wd, **LAMB_HYPER), _constant(LR))
    coupled = _theirs(model, _lamb(pytorch_optimizer, weight_decay=wd, weight_decouple=False, adam_debias=True),
                      before_step=_set_group("weight_decay", lambda t: wd * (1 - b1 ** t) / (1 - b2 ** t) ** 0.5))
    _assert_same(ours, coupled)
    decoupled = _theirs(model, _lamb(pytorch_optimizer, weight_decay=wd, adam_debias=True))
    assert _max_rel(ours, decoupled) > 1e-6


def test_lamb_trust_ratio_is_per_tensor_in_pytorch_optimizer(pytorch_optimizer):
    """Scope: our lamb takes the trust ratio over the whole flat vector. On the 4-tensor
    MLP, pytorch_optimizer.Lamb (adam_debias=True, eps=0) equals our lamb applied to each
    tensor's segment of x separately (own state, own ratio) to 1e-10 relative over 20
    steps, and differs from our lamb on the whole vector by more than 1e-3: the
    difference is only where the trust ratio is taken."""
    model = _mlp()
    sizes = [p.numel() for p in model.parameters()]
    segments = list(pairwise(np.cumsum([0] + sizes)))
    whole = REGISTRY["lamb"].build(weight_decay=0.0, **LAMB_HYPER)

    def init(x):
        return {"parts": [whole.init(x[a:b]) for a, b in segments]}

    def update(g, state, x, lr):
        steps, parts = [], []
        for (a, b), s in zip(segments, state["parts"]):
            step, s = whole.update(g[a:b], s, x[a:b], lr)
            steps.append(step)
            parts.append(s)
        return np.concatenate(steps), {"parts": parts}

    per_tensor = fo.Optimizer("lamb per tensor", init, update)
    theirs = _theirs(model, _lamb(pytorch_optimizer, weight_decay=0.0, adam_debias=True))
    _assert_same(_ours(model, per_tensor, _constant(LR)), theirs)
    assert _max_rel(_ours(model, whole, _constant(LR)), theirs) > 1e-3


# ---------------------------------------------------------------------------------------
# pytorch_optimizer: Ranger.


def _ranger_slow(opt, model):
    """Ranger's slow weights (its state's slow_buffer), flat in parameter order."""
    return torch.cat([opt.state[p]["slow_buffer"].reshape(-1) for p in model.parameters()]).numpy().copy()


@pytest.mark.parametrize("k,alpha", [(6, 0.5), (4, 0.8)])
def test_ranger_matches_pytorch_optimizer(pytorch_optimizer, k, alpha):
    """ranger equals pytorch_optimizer.Ranger(lr, betas=(0.9, 0.999), alpha, k,
    n_sma_threshold=5, degenerated_to_sgd=True, use_gc=False, weight_decay=0) on the MLP
    to 1e-10 relative at each of 20 steps (syncs included), both the fast weights and the
    slow weights (their state's slow_buffer against our eval_params), when their eps at
    step t is eps sqrt(1 - b2^t): their RAdam step is lr r_t sqrt(1 - b2^t) / (1 - b1^t)
    * m / (sqrt(v) + eps), torch.optim.RAdam's placement of eps.
    The settings: degenerated_to_sgd=True is our (and optax's) momentum step
    -lr m / (1 - b1^t) while rho_t < 5 (see test_ranger_default_first_steps_ascend);
    use_gc=False because Gradient Centralization (g minus its mean over each weight
    matrix's rows, on tensors of dim > 1) is not part of our Ranger (RAdam + Lookahead);
    their default betas are (0.95, 0.999) and eps 1e-5, ours 0.9 and 1e-8."""
    b1, b2, eps = 0.9, 0.999, 1e-8
    model = _mlp()
    ours = _ours(model, REGISTRY["ranger"].build(b1=b1, b2=b2, eps=eps, threshold=5.0, k=k, alpha=alpha),
                 _constant(LR))
    make = lambda p: pytorch_optimizer.Ranger(p, lr=LR, betas=(b1, b2), alpha=alpha, k=k, n_sma_threshold=5,
                                              degenerated_to_sgd=True, use_gc=False, weight_decay=0.0, eps=eps)
    _assert_same(ours, _theirs(model, make, before_step=_set_group("eps", _torch_eps(eps, b2)),
                               reported=_ranger_slow))


def test_ranger_default_first_steps_ascend(pytorch_optimizer):
    """Documents a reference quirk, not our contract: with its default
    degenerated_to_sgd=False, pytorch_optimizer 4.1.0's Ranger sets the step size to
    -lr / (1 - b1^t) while rho_t < 5 (steps 1-5 at b2 = 0.999) and adds -step_size * m,
    i.e. it moves *up* the gradient (cf. kozistr/pytorch_optimizer issue #232): its first
    step is exactly minus ours (ours: -lr g). If this fails the reference has changed."""
    model = _mlp()
    x0 = _flat(model)
    ours = _ours(model, REGISTRY["ranger"].build(), _constant(LR))[0][0] - x0
    make = lambda p: pytorch_optimizer.Ranger(p, lr=LR, betas=(0.9, 0.999), use_gc=False, eps=1e-8)
    theirs = _theirs(model, make)[0][0] - x0
    np.testing.assert_allclose(theirs, -ours, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------------------
# schedulefree: AdamWScheduleFree.
#
# schedulefree 1.4.1, at its k-th step (k = steps made so far):
#   lr_k = lr min(k+1, W) / W,  lr_max = max(lr_max, lr_k),  weight = (k+1)^r lr_max^p,
#   c = weight / sum of weights,  d = g / (sqrt(v / (1 - b2^(k+1))) + eps) + wd y,
#   y <- (1 - c) y + c z + lr_k (b1 (1 - c) - 1) d,   z <- z - lr_k d,
# and optimizer.eval() sets p = y + (1 - 1/b1)(z - y) = (y - (1 - b1) z) / b1: our
# xbar, eval_params. The same algorithm as ours, written on y instead of xbar, except the
# warm-up of the z step: optax (our default) uses lr min(k, W) / W there (the first step
# does not move z), schedulefree min(k+1, W) / W; warmup_convention="schedulefree" gives
# the latter. r (polynomial weighting) is ours too; optax has no r.


def _schedulefree_eval(opt, model):
    """The point schedulefree's optimizer.eval() puts into the model (then back to train)."""
    opt.eval()
    x = _flat(model)
    opt.train()
    return x


SF_CASES = {
    "defaults": {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "warmup_steps": 0,
                 "weight_lr_power": 2.0, "r": 0.0},
    "warmup,wd,b1,power,r": {"b1": 0.8, "b2": 0.99, "eps": 1e-6, "weight_decay": 1e-2, "warmup_steps": 5,
                             "weight_lr_power": 1.5, "r": 1.0, "warmup_convention": "schedulefree"},
}


def _sf_reference(schedulefree, h):
    return lambda p: schedulefree.AdamWScheduleFree(p, lr=LR, betas=(h["b1"], h["b2"]), eps=h["eps"],
                                                    weight_decay=h["weight_decay"], warmup_steps=h["warmup_steps"],
                                                    r=h["r"], weight_lr_power=h["weight_lr_power"])


@pytest.mark.parametrize("case", sorted(SF_CASES))
def test_schedule_free_matches_schedulefree(schedulefree, case):
    """schedulefree equals schedulefree.AdamWScheduleFree with the same lr, betas, eps,
    weight_decay, warmup_steps, r and weight_lr_power on the MLP to 1e-10 relative at
    each of 20 steps, both at the gradient point y (the model's parameters in train mode)
    and at the evaluation point (the parameters after optimizer.eval() against our
    eval_params); with a warm-up, our warmup_convention="schedulefree"."""
    h = SF_CASES[case]
    model = _mlp()
    _assert_same(_ours(model, REGISTRY["schedulefree"].build(**h), _constant(LR)),
                 _theirs(model, _sf_reference(schedulefree, h), reported=_schedulefree_eval,
                         start=lambda opt: opt.train()))


def test_schedule_free_optax_warmup_convention_differs(schedulefree):
    """With a warm-up, our default (optax's) convention differs from schedulefree's: its
    first update does not move at all (z steps at rate lr * 0 / W and the average is then
    z = y), while schedulefree's first step is taken at lr / W; the trajectories differ by
    more than 1e-6. Without warm-up the conventions coincide (test above, defaults)."""
    h = {**SF_CASES["warmup,wd,b1,power,r"]}
    del h["warmup_convention"]
    model = _mlp()
    ours = _ours(model, REGISTRY["schedulefree"].build(**h), _constant(LR))
    np.testing.assert_array_equal(ours[0][0], _flat(model))
    theirs = _theirs(model, _sf_reference(schedulefree, h), reported=_schedulefree_eval,
                     start=lambda opt: opt.train())
    assert _max_rel(ours, theirs) > 1e-6


# ---------------------------------------------------------------------------------------
# The reference defaults that differ from ours (why every case passes them explicitly).


def test_reference_defaults_that_differ_from_ours(pytorch_optimizer, schedulefree):
    """The documented default differences still hold for the installed references:
    torch AdamW weight_decay 1e-2 (ours 1e-4); pytorch_optimizer Ranger betas
    (0.95, 0.999), eps 1e-5, use_gc=True, degenerated_to_sgd=False (ours b1 0.9, eps 1e-8,
    no centralization, momentum steps); pytorch_optimizer Lamb eps 1e-6 and
    weight_decouple=True (ours eps 1e-6, decay inside the trust ratio);
    AdamWScheduleFree lr 0.0025, warmup_steps 0, r 0, weight_lr_power 2 (ours: the same
    apart from lr, whose default is the training loop's, 1e-2)."""
    def defaults(cls):
        return {k: v.default for k, v in inspect.signature(cls).parameters.items()}

    assert defaults(torch.optim.AdamW)["weight_decay"] == 1e-2
    assert REGISTRY["adamw"].hypers["weight_decay"].default == 1e-4
    ranger = defaults(pytorch_optimizer.Ranger)
    assert (ranger["betas"], ranger["eps"], ranger["use_gc"], ranger["degenerated_to_sgd"]) == \
        ((0.95, 0.999), 1e-5, True, False)
    assert (REGISTRY["ranger"].hypers["b1"].default, REGISTRY["ranger"].hypers["eps"].default) == (0.9, 1e-8)
    lamb = defaults(pytorch_optimizer.Lamb)
    assert (lamb["eps"], lamb["weight_decouple"], lamb["adam"], lamb["pre_norm"]) == (1e-6, True, False, False)
    assert REGISTRY["lamb"].hypers["eps"].default == 1e-6
    sf = defaults(schedulefree.AdamWScheduleFree)
    assert (sf["lr"], sf["warmup_steps"], sf["r"], sf["weight_lr_power"]) == (0.0025, 0, 0.0, 2.0)
    ours = REGISTRY["schedulefree"].hypers
    assert (ours["warmup_steps"].default, ours["r"].default, ours["weight_lr_power"].default) == (0, 0.0, 2.0)
