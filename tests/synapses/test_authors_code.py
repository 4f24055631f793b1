"""The synapse models pinned to the authors' own code: a numpy transcription of each published update
(file and lines cited), run for hundreds of steps on random gradients and compared with our update on
both backends, in the regimes where earlier versions of the models differed.

1. Laborieux et al. 2021 — MetaplasticBinary vs ``Adam_meta``.
2. Meng, Bachmann & Khan 2020 — BayesianBinary vs ``BayesBiNN.step``.
3. kellian-cottart/magnetoionic-simulations — MagnetoIonicPair vs ``MagnetoionicDouble.step``.
4. Bonnet et al. 2025 — MESU vs ``update_mesu`` with Monte-Carlo samples.

1. MetaplasticBinary held to Laborieux et al.'s own code (Nat. Commun. 12:2549, 2021).

Source read: github.com/Laborieux-Axel/SynapticMetaplasticityBNN, commit
53515706870f02756b9d568c4495aaa3d8c3944d, folder ``Continual_Learning_Fig-2abcdefgh-3abcd-5cde/``:

* ``models_utils.py`` L306-401, class ``Adam_meta`` — the optimiser; ``step()`` L327-401 for a weight
  tensor (``p.dim() > 1``, L396-399);
* ``models_utils.py`` L111-114, ``BNN`` weight init (``uniform_(a=-width/2, b=width/2)`` /
  ``normal_(std=width)``);
* ``main.py`` L19-49 argparse (``--lr 0.005``, ``--decay 0.0``, ``--init uniform``, ``--init-width 0.1``),
  L213-215 (a new ``Adam_meta`` for every task), README.md Fig. 2(d) command (``--meta 1.35``).

``_LaborieuxAdamMeta`` below is our float64 numpy transcription of that ``step()``, written from the
file (not copied): the tests compare ``MetaplasticBinary`` (float32, both backends) with it.

2. BayesianBinary pinned to the authors' BayesBiNN code (team-approx-bayes/BayesBiNN, commit
67e0c6f7d19c22ebf5bfee8360fd734347f26057): a numpy transcription of ``BayesBiNN.step``
(optimizers/BayesBiNN.py:105-195), of the continual script's task switch
(main_permute_mnist_CL.py:231-232) and of its evaluation (BayesBiNN.py:206-235,
utils/train_cl_utils.py:220-229), driven by the same uniform noise as the model.

The transcription runs in the dtype the authors' code runs in — float32, torch's default — because
the code's numbers depend on float32 rounding: 1 − μ·μ is exactly 0 once tanh(λ) rounds to ±1
(|λ| ≳ 9), leaving the 1e-10 guard, and it is quantised in steps of ~1.2e-7 below, so one ulp of μ
moves it by up to tens of percent. Its elementary operations are numpy float32 (IEEE, the rounding
of torch's); the sample's tanh/log are torch's float32 calls (the code's); μ = tanh(λ) is the
correctly rounded float32 value (float64 tanh, rounded), which the model uses because the code's
float32 tanh is within 1 ulp of it with a device-dependent ulp (numpy's and torch's float32 tanh
differ in ~30 % of entries). The float64 transcription pins ``variance="exact"``, the float64
behaviour of the same formula. Helpers are prefixed ``bayesbinn_``.

3. MagnetoIonicPair pinned to the authors' code: kellian-cottart/magnetoionic-simulations at commit
8cf78c27bde66bdf947612f14ccdbad039797665 (``optimizers/magnetoionicDouble.py`` [MID],
``models/layers/noisyDoubleLinear.py`` [NDL], ``main.py``).

``mi_authors_step`` is a numpy float64 transcription of one ``MagnetoionicDouble.step`` (MID:54-105)
on the voltages of the two devices, fed with the gradients their layer hands over (NDL:82-83:
∂L/∂w₁ = −g, ∂L/∂w₂ = +g for w = w₂ − w₁). Our update (float32 pulse counts, both backends) must
follow it to float32 tolerance, refreshes included.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from metaspin_snn.synapses import (MESU, BayesianBinary, BayesianBinaryParams, MESUParams, MetaplasticBinary,
                                   MetaplasticBinaryParams)
from metaspin_snn.synapses.magnetoionic import MagnetoIonicPair, MagnetoIonicParams

# ==================== metaplastic ====================
LABORIEUX_SHAPE = (48, 40)


class _LaborieuxAdamMeta:
    """float64 transcription of ``Adam_meta`` (models_utils.py L306-401) acting on one weight tensor.

    Line by line (models_utils.py): state created empty on the first step (L346-350: step 0, zero
    moments); L367 ``step += 1``; L369-370 ``grad += wd·p`` (before the moments); L373
    ``exp_avg = β₁·exp_avg + (1-β₁)·grad``; L374 ``exp_avg_sq = β₂·exp_avg_sq + (1-β₂)·grad²``;
    L381 ``denom = √exp_avg_sq + eps``; L384-386 ``step_size = lr·√(1-β₂ᵗ)/(1-β₁ᵗ)``; L389-390
    ``condition = sign(p)·exp_avg > 0`` (torch.sign: sign(0) = 0); L397 ``decayed = (1 - tanh²(meta·|p|))
    ·exp_avg``; L399 ``p -= step_size·where(condition, decayed, exp_avg)/denom``.
    One instance = one optimiser; main.py L213-215 builds a new one per task.
    """

    def __init__(self, lr: float, betas: tuple[float, float], eps: float, meta: float, weight_decay: float):
        self.lr, self.betas, self.eps, self.meta, self.wd = lr, betas, eps, meta, weight_decay
        self.state: dict[str, object] = {}

    def step(self, p: np.ndarray, grad: np.ndarray) -> np.ndarray:
        if not self.state:
            self.state = {"step": 0, "exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p)}
        st = self.state
        b1, b2 = self.betas
        st["step"] += 1
        if self.wd != 0:
            grad = grad + self.wd * p
        st["exp_avg"] = st["exp_avg"] * b1 + (1 - b1) * grad
        st["exp_avg_sq"] = st["exp_avg_sq"] * b2 + (1 - b2) * grad * grad
        denom = np.sqrt(st["exp_avg_sq"]) + self.eps
        bc1 = 1 - b1 ** st["step"]
        bc2 = 1 - b2 ** st["step"]
        step_size = self.lr * np.sqrt(bc2) / bc1
        condition = np.sign(p) * st["exp_avg"] > 0.0
        decayed = (1.0 - np.tanh(self.meta * np.abs(p)) ** 2) * st["exp_avg"]
        return p - step_size * np.where(condition, decayed, st["exp_avg"]) / denom


def _laborieux_run(params: MetaplasticBinaryParams, backend: str, grad_scale: float, n_tasks: int,
                   steps_per_task: int, seed: int):
    """Train ``MetaplasticBinary`` and the transcription side by side from the same W_h on the same
    float32 gradients (log-uniform magnitudes ``grad_scale``·10^U(-1, 1), random signs) over
    ``n_tasks`` tasks: ``task_boundary()`` for ours, a fresh ``_LaborieuxAdamMeta`` for theirs.
    Returns (ours W_h, theirs W_h, ours m, theirs m, ours v, theirs v) at the end."""
    syn = MetaplasticBinary(LABORIEUX_SHAPE, params, backend=backend)
    w = syn.hidden_weight.double().numpy().copy()
    rng = np.random.default_rng(seed)
    opt = None
    for task in range(n_tasks):
        if task:
            syn.task_boundary()
        opt = _LaborieuxAdamMeta(params.lr, params.betas, params.eps, params.m, params.weight_decay)
        for _ in range(steps_per_task):
            mag = grad_scale * 10.0 ** rng.uniform(-1.0, 1.0, LABORIEUX_SHAPE)
            # a per-task drift makes W_h grow (and consolidate) instead of random-walking around 0
            g = (np.where(rng.random(LABORIEUX_SHAPE) < 0.3 + 0.4 * (task % 2), 1.0, -1.0) * mag).astype(np.float32)
            syn.update(torch.from_numpy(g))
            w = opt.step(w, g.astype(np.float64))
    return (syn.hidden_weight.numpy(), w, syn.exp_avg.numpy(), opt.state["exp_avg"],
            syn.exp_avg_sq.numpy(), opt.state["exp_avg_sq"])


# regimes: (grad_scale, m, weight_decay, lr). |g| ~ 1e-8..1e-6 puts ε = 1e-8 in play (where the ε
# placement matters); large m consolidates; weight decay enters before the moments (L369-370).
LABORIEUX_REGIMES = [
    pytest.param(1e-7, 1.35, 0.0, 0.005, id="g~eps-m1.35"),
    pytest.param(1e-8, 1.35, 0.0, 0.005, id="g~eps/10..eps*10"),
    pytest.param(3e-7, 20.0, 1e-7, 0.005, id="g~eps-large-m-wd1e-7"),
    pytest.param(1.0, 1.35, 1e-2, 0.005, id="unit-g-wd1e-2"),
    pytest.param(1.0, 8.0, 0.0, 0.02, id="unit-g-large-m"),
]


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("grad_scale,m,wd,lr", LABORIEUX_REGIMES)
def test_laborieux_adam_meta_transcription_matches_over_tasks(backend, grad_scale, m, wd, lr):
    """240 steps over 4 tasks (a fresh optimiser per task, as main.py L213-215) with the default
    eps_mode / reset_at_task: W_h, m and v equal the float64 transcription to float32 accuracy."""
    p = MetaplasticBinaryParams(m=m, weight_decay=wd, lr=lr)
    ours, theirs, m_ours, m_theirs, v_ours, v_theirs = _laborieux_run(p, backend, grad_scale, n_tasks=4,
                                                                       steps_per_task=60, seed=11)
    scale = float(np.abs(theirs).max())
    assert scale > 0.1                                      # W_h moved far from its init (|W_h| ≤ 0.05)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=2e-5 * scale, err_msg="hidden weight W_h")
    # the moments of the last task (their optimiser's state; ours were zeroed at the boundary)
    gs = grad_scale * 10
    np.testing.assert_allclose(m_ours, m_theirs, rtol=1e-4, atol=1e-6 * gs, err_msg="exp_avg")
    np.testing.assert_allclose(v_ours, v_theirs, rtol=1e-4, atol=1e-6 * gs * gs, err_msg="exp_avg_sq")


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_laborieux_old_behaviour_is_distinguishable(backend):
    """The regime above separates the authors' rule from torch's ε placement and from moments kept
    across tasks: either change moves W_h well beyond the tolerance used above."""
    base = dict(m=1.35, lr=0.005)
    _, theirs, *_ = _laborieux_run(MetaplasticBinaryParams(**base), backend, 1e-7, 4, 60, seed=11)
    for old in (dict(eps_mode="torch"), dict(reset_at_task=False)):
        ours, *_ = _laborieux_run(MetaplasticBinaryParams(**base, **old), backend, 1e-7, 4, 60, seed=11)
        assert np.abs(ours - theirs).max() > 100 * 2e-5 * np.abs(theirs).max(), old


def test_laborieux_defaults_are_the_authors():
    p = MetaplasticBinaryParams()
    assert p.lr == 0.005                                   # main.py L27
    assert p.betas == (0.9, 0.999) and p.eps == 1e-8       # Adam_meta.__init__, models_utils.py L308
    assert p.eps_mode == "adam_meta"                       # models_utils.py L381, L384-386
    assert p.m == 1.35                                     # README.md, Fig. 2(d) command --meta 1.35
    assert p.weight_decay == 0.0                           # main.py L38 (--decay default)
    assert p.init == "uniform" and p.init_scale == 0.1     # main.py L39-40
    assert p.reset_at_task is True                         # main.py L213-215
    # init: U(-init_width/2, init_width/2) = U(-0.05, 0.05) (models_utils.py L113-114)
    w = MetaplasticBinary((400, 500)).hidden().double()
    assert float(w.min()) >= -0.05 and float(w.max()) <= 0.05
    assert float(w.min()) < -0.0499 and float(w.max()) > 0.0499
    assert abs(float(w.mean())) < 1e-3
    assert float(w.var()) == pytest.approx(0.1 ** 2 / 12, rel=0.02)        # uniform: width²/12
    assert float((w.abs() < 0.025).double().mean()) == pytest.approx(0.5, abs=0.01)
    # gauss keeps the previous N(0, 0.01²) init, bit for bit
    g = MetaplasticBinary((400, 500), MetaplasticBinaryParams(init="gauss", init_scale=0.01, seed=3)).hidden()
    assert torch.equal(g, torch.randn((400, 500), generator=torch.Generator().manual_seed(3)) * 0.01)
    # default reset: task_boundary() restarts the optimiser, keeps W_h
    s = MetaplasticBinary((5, 4))
    s.update(torch.randn(5, 4))
    w0 = s.hidden().clone()
    s.task_boundary()
    assert int(s.step) == 0 and not s.exp_avg.any() and not s.exp_avg_sq.any() and torch.equal(s.hidden(), w0)


def test_laborieux_sign_of_zero_does_not_change_the_update():
    """Their torch.sign(0) = 0 makes the consolidation condition false at W_h = 0; ours (sign(0) = +1)
    may make it true, but f_meta(0) = 1, so the step is the same (only the forward value differs)."""
    p = MetaplasticBinaryParams(m=5.0)
    for backend in ("numba", "torch"):
        s = MetaplasticBinary((2, 3), p, backend=backend)
        with torch.no_grad():
            s.hidden_weight.copy_(torch.tensor([[0.0, -0.0, 0.0], [0.0, 0.3, -0.3]]))
        w = s.hidden_weight.double().numpy().copy()
        assert s.effective_weight()[0].tolist() == [1.0, 1.0, 1.0]        # theirs: np.sign(w[0]) = 0
        g = np.array([[1e-3, -1e-3, -1e-3], [-2.0, 1.0, -1.0]], dtype=np.float32)
        s.update(torch.from_numpy(g))
        ref = _LaborieuxAdamMeta(p.lr, p.betas, p.eps, p.m, p.weight_decay).step(w, g.astype(np.float64))
        np.testing.assert_allclose(s.hidden_weight.numpy(), ref, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_laborieux_accumulated_half_gradients_equal_one_update_of_their_sum(backend):
    """Monte-Carlo accumulation (base.SynapseModel.accumulate): two samples whose losses were scaled
    by 1/2 give the step of one update with the sum of those halved gradients."""
    p = MetaplasticBinaryParams(m=2.0, weight_decay=1e-3)
    acc = MetaplasticBinary(LABORIEUX_SHAPE, p, backend=backend)
    one = MetaplasticBinary(LABORIEUX_SHAPE, p, backend=backend)
    gen = torch.Generator().manual_seed(7)
    for _ in range(5):
        g1, g2 = torch.randn(LABORIEUX_SHAPE, generator=gen), torch.randn(LABORIEUX_SHAPE, generator=gen)
        acc.accumulate(0.5 * g1)
        acc.accumulate(0.5 * g2)
        assert acc.n_accumulated == 2
        acc.update()
        one.update(0.5 * g1 + 0.5 * g2)
    for name in ("hidden_weight", "exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(getattr(acc, name), getattr(one, name)), name


@pytest.mark.parametrize("field,bad", [("eps_mode", "kingma"), ("eps_mode", None), ("init", "normal"),
                                       ("init", 0.1)])
def test_laborieux_new_options_are_validated(field, bad):
    with pytest.raises(ValueError, match=f"MetaplasticBinaryParams.{field}"):
        MetaplasticBinaryParams(**{field: bad})


# ==================== bayesbinn ====================
BAYESBINN_SHAPE = (16, 24)
BAYESBINN_N = int(np.prod(BAYESBINN_SHAPE))
# main_permute_mnist_CL.py defaults: --lr 1e-3 (:45), --momentum 0 (:56), --lamda 10 (:77),
# --lamda-std 0 (:80), --temperature 1e-2 (:84), --kl-reweight 1 (:88), --train-samples 1 (:38)
BAYESBINN_SCRIPT = dict(lr=1e-3, beta=0.0, tau=1e-2, reweight=1.0, lambda_init=10.0, lambda_std=0.0)


# ---- transcription ---------------------------------------------------------------------------------
def bayesbinn_tanh(x: np.ndarray) -> np.ndarray:
    """torch.tanh (the code's call) for float32; numpy's for float64."""
    if x.dtype == np.float32:
        return torch.tanh(torch.from_numpy(x)).numpy()
    return np.tanh(x)


def bayesbinn_log(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.float32:
        return torch.log(torch.from_numpy(x)).numpy()
    return np.log(x)


def bayesbinn_mu(lam: np.ndarray) -> np.ndarray:
    """μ = tanh(λ) (BayesBiNN.py:77-79, :193), correctly rounded to λ's dtype."""
    return np.tanh(lam.astype(np.float64)).astype(lam.dtype)


def bayesbinn_init_state(lam0: np.ndarray, dtype) -> dict:
    """BayesBiNN.__init__ (BayesBiNN.py:70-94) from given initial λ: μ = tanh(λ), m = 0, prior 0, t = 0."""
    lam = lam0.astype(dtype)
    return {"lamda": lam, "mu": bayesbinn_mu(lam), "momentum": np.zeros_like(lam),
            "prior_lamda": np.zeros_like(lam), "step": 0}


def bayesbinn_step(st: dict, noises: list[np.ndarray], grad_fn, *, train_set_size: float, lr: float,
                   beta: float, temperature: float, reweight: float, fixed_line_193: bool = False) -> list:
    """One ``BayesBiNN.step(closure)`` with num_samples = len(noises) (BayesBiNN.py:105-195) in the
    state's dtype; ``grad_fn(w)`` is ∂loss/∂w of the closure's loss at the sample w. Returns the samples.
    ``fixed_line_193``: μ ← tanh(new λ) instead of the code's tanh(λ bound at line 125)."""
    f = st["lamda"].dtype.type
    st["step"] += 1                                                          # :115
    lamda = st["lamda"]                                                      # :125
    mu = st["mu"]                                                            # :124
    grad_hat = np.zeros_like(lamda)                                          # :130
    samples, mag = [], np.zeros(lamda.shape)  # mag: Σ|terms|, the scale of float32 rounding errors
    for raw_noise in noises:                                                 # :154
        rou = bayesbinn_log(raw_noise / (f(1) - raw_noise)) / f(2) + st["lamda"]   # :158
        w = bayesbinn_tanh(rou / f(temperature))                             # :160
        grad = grad_fn(w).astype(lamda.dtype)                                # :165-173
        scale = (f(1) - w * w + f(1e-10)) / f(temperature) / (f(1) - mu * mu + f(1e-10))  # :175
        grad_hat = grad_hat + scale * grad                                   # :176
        samples.append(w)
        mag += np.abs(scale * grad)
    grad_hat = grad_hat * f(train_set_size / len(noises))                    # :178
    mag = mag * (train_set_size / len(noises)) + reweight * np.abs(st["lamda"] - st["prior_lamda"])
    st["momentum_mag"] = beta * np.abs(st["momentum"]) + (1 - beta) * mag
    st["lamda_mag"] = np.abs(st["lamda"]) + lr * st["momentum_mag"] / (1 - beta ** st["step"])
    st["momentum"] = (f(beta) * st["momentum"]                               # :182
                      + f(1 - beta) * (grad_hat + f(reweight) * (st["lamda"] - st["prior_lamda"])))
    bias_correction1 = f(1 - beta ** st["step"])                             # :188
    st["lamda"] = st["lamda"] - f(lr) * st["momentum"] / bias_correction1    # :191
    st["mu"] = bayesbinn_mu(st["lamda"] if fixed_line_193 else lamda)        # :193
    return samples


def bayesbinn_new_task(st: dict) -> None:
    """main_permute_mnist_CL.py:231-232: prior_lamda ← lamda, same optimiser (m, step, μ kept)."""
    st["prior_lamda"] = st["lamda"]


def bayesbinn_point_estimate(st: dict) -> np.ndarray:
    """get_mc_predictions without noises (BayesBiNN.py:221-228): 2·[μ > 0] − 1."""
    mean_vector = np.where(st["mu"] <= 0, 0.0, 1.0)
    return 2 * mean_vector - 1


# ---- driving our model with the same noise ---------------------------------------------------------
def bayesbinn_peek_uniform(model: BayesianBinary) -> torch.Tensor:
    """The uniform draw the model's next ``refresh(sample=True)`` will make (a copy of its generator)."""
    gen = model._rng.get(model.lam.device)
    return torch.rand(model.shape, generator=torch.Generator().set_state(gen.get_state()))


def bayesbinn_grad_fn(seed: int, scale: float):
    """A fake closure: ∂loss/∂w = A·w + b (random A, b), so the gradient depends on the sample."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((BAYESBINN_N, BAYESBINN_N)) * (scale / np.sqrt(BAYESBINN_N))
    b = rng.standard_normal(BAYESBINN_N) * scale

    def grad(w: np.ndarray) -> np.ndarray:  # in w's dtype
        return (a @ w.reshape(-1).astype(np.float64) + b).astype(w.dtype).reshape(w.shape)

    return grad


def bayesbinn_close(ours: torch.Tensor, ref: np.ndarray, mag: np.ndarray, what: str, rtol: float = 2e-6) -> None:
    """|ours − ref| ≤ rtol·(|ref| + mag): float32 tolerance relative to the terms summed (mag)."""
    err = np.abs(ours.numpy().astype(np.float64) - ref)
    bound = rtol * (np.abs(ref) + mag) + 1e-30
    assert np.all(err <= bound), f"{what}: max err/bound {np.max(err / bound):.3g} at {np.argmax(err / bound)}"


def bayesbinn_run(model: BayesianBinary, st: dict, steps: int, grad_fn, *, samples: int, hyper: dict,
                  fixed_line_193: bool = False) -> None:
    """``steps`` steps of our model and of the transcription from the same noise; checks every sample
    bit for bit and the state after each step to float32 tolerance. With S > 1 the sum over samples
    rounds differently (Σ scale·(g/S)·N vs (Σ scale·g)·N/S), so the transcription restarts each step
    from our state (a one-step check along our trajectory; S = 1 runs free)."""
    model.train()
    for t in range(steps):
        noises, ours = [], []
        for _ in range(samples):
            noises.append(bayesbinn_peek_uniform(model).numpy().astype(st["lamda"].dtype))
            w = model.refresh(sample=True).detach().numpy().copy()
            ours.append(w)
            g = grad_fn(w)
            if samples == 1:
                model.update(torch.from_numpy(g))
            else:  # loss/S per sample: the backward pass gives g/S
                model.accumulate(torch.from_numpy(g) / samples)
        if samples > 1:
            model.update()
        ws = bayesbinn_step(st, noises, grad_fn, fixed_line_193=fixed_line_193, **hyper)
        for k, (w_ours, w_ref) in enumerate(zip(ours, ws)):
            np.testing.assert_array_equal(w_ours, w_ref, err_msg=f"sample {k} at step {t + 1}")
        bayesbinn_close(model.lam, st["lamda"], st["lamda_mag"], f"lambda after step {t + 1}")
        bayesbinn_close(model.momentum, st["momentum"], st["momentum_mag"], f"momentum after step {t + 1}")
        bayesbinn_close(model.mu, st["mu"], np.zeros(1), f"mu after step {t + 1}")
        assert int(model.step) == st["step"]
        if samples > 1:
            for key, buf in (("lamda", model.lam), ("momentum", model.momentum), ("mu", model.mu)):
                st[key] = buf.numpy().copy()


def bayesbinn_pair(backend: str, seed: int = 0, dtype=np.float32, **over):
    """Our model (script defaults + ``over``) and the transcription's state from the same initial λ."""
    hp = {**BAYESBINN_SCRIPT, **over}
    model = BayesianBinary(BAYESBINN_SHAPE, BayesianBinaryParams(**hp, seed=seed), backend=backend)
    st = bayesbinn_init_state(model.lam.numpy(), dtype)
    hyper = dict(train_set_size=hp["n_data"], lr=hp["lr"], beta=hp["beta"], temperature=hp["tau"],
                 reweight=hp["reweight"])
    return model, st, hyper


# ---- tests -----------------------------------------------------------------------------------------
def test_bayesbinn_defaults_are_the_continual_script():
    p = BayesianBinaryParams()
    assert (p.lr, p.beta, p.tau, p.reweight, p.lambda_init, p.lambda_std) == (1e-3, 0.0, 1e-2, 1.0, 10.0, 0.0)
    assert (p.eval_mode, p.variance, p.lagged_mu, p.reset_at_task) == ("sign", "code", True, False)
    assert BayesianBinary.PROTOCOL == {"train_samples": 1, "eval_samples": 100, "eval_average": "logits",
                                       "loss_reduction": "mean"}
    lam = BayesianBinary((1000,)).lam
    assert set(lam.unique().tolist()) == {-10.0, 10.0}  # BayesBiNN.py:71-72 with lamda_std = 0


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_bayesbinn_defaults_follow_the_code_tau_small(backend):
    """The model at its defaults (only N and the seed given) against the transcription with the
    script's defaults, 200 steps from λ = ±10: the float32 1 − μ² floor, flips, unsaturated samples."""
    model = BayesianBinary(BAYESBINN_SHAPE, BayesianBinaryParams(n_data=500.0, seed=3), backend=backend)
    lam0 = model.lam.clone()
    st = bayesbinn_init_state(model.lam.numpy(), np.float32)
    hyper = dict(train_set_size=500.0, lr=1e-3, beta=0.0, temperature=1e-2, reweight=1.0)
    bayesbinn_run(model, st, 200, bayesbinn_grad_fn(1, 0.05), samples=1, hyper=hyper)
    lam = model.lam.abs()
    assert (lam < 8.0).any() and (lam > 9.0).any()  # both sides of the float32 floor were visited
    assert (torch.sign(model.lam) != torch.sign(lam0)).any()  # and some synapses flipped


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_bayesbinn_momentum_and_bias_correction(backend):
    model, st, hyper = bayesbinn_pair(backend, seed=4, beta=0.9, n_data=300.0, lambda_std=4.0)
    bayesbinn_run(model, st, 200, bayesbinn_grad_fn(2, 0.05), samples=1, hyper=hyper)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_bayesbinn_task_boundary_keeps_momentum_and_step(backend):
    """prior ← λ at the new task, m, t and μ kept (main_permute_mnist_CL.py:231-232), β > 0."""
    model, st, hyper = bayesbinn_pair(backend, seed=5, beta=0.7, n_data=300.0, lambda_std=4.0)
    bayesbinn_run(model, st, 100, bayesbinn_grad_fn(3, 0.05), samples=1, hyper=hyper)
    m_before = model.momentum.clone()
    model.task_boundary()
    bayesbinn_new_task(st)
    assert torch.equal(model.momentum, m_before) and int(model.step) == 100
    np.testing.assert_array_equal(model.lam_prior.numpy(), st["prior_lamda"])
    bayesbinn_run(model, st, 120, bayesbinn_grad_fn(4, 0.05), samples=1, hyper=hyper)  # the next task


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_bayesbinn_three_mc_samples_with_accumulate(backend):
    """S = 3: accumulate() of the 1/S-scaled gradients reproduces ĝ = N/S·Σ scale_s·g_s (:154-178)."""
    model, st, hyper = bayesbinn_pair(backend, seed=6, n_data=400.0, lambda_std=4.0)
    bayesbinn_run(model, st, 200, bayesbinn_grad_fn(5, 0.05), samples=3, hyper=hyper)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_bayesbinn_lagged_mu(backend):
    """Line 193's μ = tanh(λ before the step): held by default, and ``lagged_mu=False`` is the fixed line;
    the two transcriptions part ways from the same noise (the flag is not cosmetic)."""
    model, st, hyper = bayesbinn_pair(backend, seed=7, n_data=500.0)
    grad_fn = bayesbinn_grad_fn(6, 0.05)
    lam0 = model.lam.clone()
    bayesbinn_run(model, st, 200, grad_fn, samples=1, hyper=hyper)

    fixed, st_fixed, _ = bayesbinn_pair(backend, seed=7, n_data=500.0, lagged_mu=False)
    assert torch.equal(fixed.lam, lam0)
    bayesbinn_run(fixed, st_fixed, 200, grad_fn, samples=1, hyper=hyper, fixed_line_193=True)
    assert not np.allclose(st_fixed["lamda"], st["lamda"], rtol=1e-3, atol=1e-3)


def test_bayesbinn_lagged_mu_is_one_update_old():
    """After steps 1 and 2, μ = tanh(λ₀) then tanh(λ₁) (BayesBiNN.py:125, :193)."""
    model = BayesianBinary((50,), BayesianBinaryParams(n_data=100.0, lambda_init=1.0, lambda_std=1.0))
    lams = [model.lam.clone()]
    for _ in range(3):
        model.refresh(sample=True)
        model.update(torch.full((50,), 0.1))
        lams.append(model.lam.clone())
        assert torch.equal(model.lam_mu, lams[-2])
        assert torch.equal(model.mu, torch.tanh(lams[-2].double()).float())


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_bayesbinn_exact_variance_is_the_float64_formula(backend):
    """``variance="exact"`` against the float64 transcription (τ = 0.5, moderate λ, where float32
    rounding of w does not matter): the equations, dtype aside."""
    model, st, hyper = bayesbinn_pair(backend, seed=8, dtype=np.float64, variance="exact", tau=0.5,
                                      n_data=50.0, lambda_init=1.0, lambda_std=1.0)
    model.train()
    grad_fn = bayesbinn_grad_fn(7, 0.05)
    for t in range(200):
        u = bayesbinn_peek_uniform(model).numpy().astype(np.float64)
        w = model.refresh(sample=True).detach().numpy()
        model.update(torch.from_numpy(grad_fn(w)))
        bayesbinn_step(st, [u], grad_fn, **hyper)
        np.testing.assert_allclose(model.lam.numpy(), st["lamda"], rtol=1e-4, atol=1e-5, err_msg=f"step {t + 1}")


@pytest.mark.parametrize("parallel", [False, True])
def test_bayesbinn_backends_agree_bit_for_bit(parallel):
    """numba (serial / parallel kernel) ≡ torch on the CPU (no fused multiply-add in the kernel), with
    accumulate and a task boundary."""
    p = BayesianBinaryParams(n_data=400.0, beta=0.5, lambda_std=4.0, seed=9)
    a = BayesianBinary(BAYESBINN_SHAPE, p, backend="numba", parallel=parallel)
    b = BayesianBinary(BAYESBINN_SHAPE, p, backend="torch")
    grad_fn = bayesbinn_grad_fn(8, 0.05)
    for t in range(150):
        for _ in range(1 + t % 2):
            wa, wb = a.refresh(sample=True).detach().numpy(), b.refresh(sample=True).detach().numpy()
            np.testing.assert_array_equal(wa, wb)
            a.accumulate(torch.from_numpy(grad_fn(wa)))
            b.accumulate(torch.from_numpy(grad_fn(wb)))
        a.update()
        b.update()
        if t == 70:
            a.task_boundary()
            b.task_boundary()
        for name in ("lam", "momentum", "lam_mu", "lam_prior"):
            assert torch.equal(getattr(a, name), getattr(b, name)), (name, t)


def test_bayesbinn_eval_sign_is_their_point_estimate():
    """Weights exactly ±1, 2·[μ > 0] − 1 with the code's (lagged) μ: μ ≤ 0 → −1, so λ = 0 → −1."""
    lam = torch.tensor([-3.0, -1e-30, -0.0, 0.0, 1e-30, 0.2, 12.0])
    s = BayesianBinary((7,), BayesianBinaryParams())
    with torch.no_grad():
        s.lam.copy_(lam)
        s.lam_mu.copy_(lam)
    s.eval()
    w = s.effective_weight().detach()
    assert torch.equal(w, torch.tensor([-1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 1.0]))
    st = {"mu": bayesbinn_mu(lam.numpy())}
    np.testing.assert_array_equal(w.numpy(), bayesbinn_point_estimate(st))
    # after an update that moves λ across 0 the point estimate still follows μ = tanh(λ before it)
    s.update(torch.tensor([0.0, 0.0, 0.0, 0.0, 5e3, 0.0, 0.0]))  # point estimate: λ[4] 1e-30 → −5
    assert s.lam[4] < 0 and s.effective_weight()[4] == 1.0
    s.update(torch.zeros(7))
    assert s.effective_weight()[4] == -1.0
    assert set(s.effective_weight().detach().unique().tolist()) <= {-1.0, 1.0}


@pytest.mark.parametrize("how", ["eval_mode", "draw_eval_sample"])
def test_bayesbinn_eval_sample_is_bernoulli_sigmoid_2lambda(how):
    """Hard draws w = 2·Bernoulli(sigmoid(2λ)) − 1 (train_cl_utils.py:227, BayesBiNN.py:228)."""
    lam = torch.tensor([-1.5, -0.4, 0.0, 0.3, 1.2, 9.0])
    n = 40_000
    s = BayesianBinary((n, 6), BayesianBinaryParams(eval_mode="sample" if how == "eval_mode" else "sign", seed=2))
    with torch.no_grad():
        s.lam.copy_(lam.expand(n, 6))
    s.eval()
    w = (s.effective_weight() if how == "eval_mode" else s.draw_eval_sample()).detach().clone()
    assert set(w.unique().tolist()) <= {-1.0, 1.0}
    p = torch.sigmoid(2 * lam)
    freq = (w > 0).double().mean(0)
    assert torch.all((freq - p).abs() <= 4 * torch.sqrt(p * (1 - p) / n) + 1e-4)
    w2 = (s.draw_eval_sample() if how == "draw_eval_sample" else s.refresh(sample=False)).detach()
    assert not torch.equal(w, w2)  # a fresh draw per refresh


# ==================== magnetoionic ====================
MI_X_MAX = 27.0  # MID:54-57 (start = f(0), stop = f(27))


def mi_f(response: str, x):
    """main.py:88-93 (``set_field``): the device voltage after x pulses."""
    if response == "linear":
        return -0.021 * x + 2.742
    return 1.530 * np.exp(-x / 9.741) + 0.750


def mi_f_inv(response: str, y):
    """main.py:88-93: the pulse count of a voltage."""
    if response == "linear":
        return (y - 2.742) / (-0.021)
    return -9.741 * np.log((y - 0.750) / 1.530)


def mi_authors_step(w1, w2, g, nu1, nu2, lr: float, response: str, clipping: float = 0.0):
    """One MagnetoionicDouble.step (MID:54-105), numpy float64, on device voltages (w1, w2).

    ``g`` is ∂L/∂w for w = w2 − w1; NDL:82-83 give grad_w1 = −g, grad_w2 = +g. Their
    ``physical_clipping`` branch (MID:83-85) never runs at this commit (MID:37 stores the function
    ``physical_clip``, which is never ``== True``), so it is not transcribed.
    """
    f = lambda x: mi_f(response, x)  # noqa: E731
    start, stop = f(0.0), f(MI_X_MAX)                                   # MID:54-57
    grad_w1, grad_w2 = -g, g                                            # NDL:82-83
    w1 = np.clip(w1, stop, start)                                       # MID:75-76
    w2 = np.clip(w2, stop, start)
    x1, x2 = mi_f_inv(response, w1), mi_f_inv(response, w2)             # MID:78-79
    update1 = lr * np.abs(grad_w1) * nu1                                # MID:81-82
    update2 = lr * np.abs(grad_w2) * nu2
    if clipping > 0:                                                    # MID:87-91
        update1 = np.where(update1 < clipping, 0.0, update1)
        update2 = np.where(update2 < clipping, 0.0, update2)
    f1, f2 = f(x1 + update1), f(x2 + update2)                           # MID:93-94
    w1 = np.where(grad_w1 >= 0, f1, w1)                                 # MID:96-97
    w2 = np.where(grad_w2 >= 0, f2, w2)
    idx1 = w1 <= stop                                                   # MID:99-101
    w1[idx1] = stop - (w2[idx1] - start)
    w2[idx1] = start
    idx2 = w2 <= stop                                                   # MID:103-105
    w2[idx2] = stop - (w1[idx2] - start)
    w1[idx2] = start
    return w1, w2


def mi_pair(n: int, response: str, backend: str, lr: float, min_dx: float = 0.0, seed: int = 1):
    """A pair with parameters every version of MagnetoIonicParams has (state set by the caller)."""
    p = MagnetoIonicParams(response=response, lr=lr, min_dx=min_dx, device_variability=0.2,
                           init_range=0.01, seed=seed)
    return MagnetoIonicPair((n,), p, backend=backend)


def mi_set_state(m: MagnetoIonicPair, x1, x2) -> None:
    m.x1.copy_(torch.as_tensor(np.asarray(x1), dtype=torch.float32).expand(m.shape))
    m.x2.copy_(torch.as_tensor(np.asarray(x2), dtype=torch.float32).expand(m.shape))


def mi_clamped(w, response: str):
    """The voltages as their next step sees them (MID:75-76 clamps to [f(27), f(0)] first)."""
    return np.clip(w, mi_f(response, MI_X_MAX), mi_f(response, 0.0))


def mi_run_both(m: MagnetoIonicPair, grads, response: str, lr: float, clipping: float = 0.0):
    """Step ours and the transcription with the same gradients, from our state; returns the
    transcription's voltages and the largest |Δw| seen along the way (their voltages clamped as
    their next step clamps them, MID:75-76: see ``test_mi_authors_overshoot_transient``)."""
    w1 = mi_f(response, m.x1.double().numpy())
    w2 = mi_f(response, m.x2.double().numpy())
    nu1, nu2 = m.nu1.double().numpy(), m.nu2.double().numpy()
    worst = 0.0
    for g in grads:
        g32 = np.asarray(g, dtype=np.float32)
        m.update(torch.from_numpy(g32.copy()))
        w1, w2 = mi_authors_step(w1, w2, g32.astype(np.float64), nu1, nu2, lr, response, clipping)
        ours = mi_f(response, m.x2.double().numpy()) - mi_f(response, m.x1.double().numpy())
        theirs = mi_clamped(w2, response) - mi_clamped(w1, response)
        worst = max(worst, float(np.abs(ours - theirs).max()))
    return w1, w2, worst


def mi_assert_same_state(m: MagnetoIonicPair, w1, w2, response: str, atol_v=1e-5, atol_x=1e-4):
    x1, x2 = m.x1.double().numpy(), m.x2.double().numpy()
    w1, w2 = mi_clamped(w1, response), mi_clamped(w2, response)
    np.testing.assert_allclose(mi_f(response, x1), w1, rtol=0, atol=atol_v)
    np.testing.assert_allclose(mi_f(response, x2), w2, rtol=0, atol=atol_v)
    np.testing.assert_allclose(x1, np.clip(mi_f_inv(response, w1), 0, MI_X_MAX), rtol=0, atol=atol_x)
    np.testing.assert_allclose(x2, np.clip(mi_f_inv(response, w2), 0, MI_X_MAX), rtol=0, atol=atol_x)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("response", ["linear", "exponential"])
@pytest.mark.parametrize("clipping", [0.0, 0.3])
def test_mi_authors_random_gradients(backend, response, clipping):
    """300 steps of zero-mean gradients (10 % exact zeros), from random states: same trajectory."""
    n, lr = 600, 20.0
    m = mi_pair(n, response, backend, lr, min_dx=clipping)
    rng = np.random.default_rng(7)
    mi_set_state(m, rng.uniform(0, 20, n), rng.uniform(0, 20, n))
    grads = []
    for _ in range(300):
        g = rng.standard_normal(n) * 0.15
        g[rng.random(n) < 0.1] = 0.0
        grads.append(g)
    w1, w2, worst = mi_run_both(m, grads, response, lr, clipping)
    assert m.total_refreshes() > 200  # the refresh path ran
    assert worst < 1e-5
    mi_assert_same_state(m, w1, w2, response)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("response", ["linear", "exponential"])
def test_mi_authors_biased_1000_steps(backend, response):
    """1,000 steps with a per-synapse bias (half push w up, half down, lr 200): devices hit their
    bounds over and over. With the earlier refresh (triggered only by the pulsed device) this test
    saw max |Δw| = 0.31 (linear) and 1.3 (exponential)."""
    n, lr = 512, 200.0
    m = mi_pair(n, response, backend, lr)
    rng = np.random.default_rng(0)
    w0 = rng.uniform(-0.005, 0.005, n)  # their init (NDL:38-41): 0.01 V below f(0), w = −u
    f0 = mi_f(response, 0.0)
    mi_set_state(m, mi_f_inv(response, np.full(n, f0 - 0.01)), mi_f_inv(response, f0 - 0.01 + w0))
    bias = np.where(np.arange(n) % 2 == 0, 1.0, -1.0) * 0.01
    grads = [bias + 0.02 * rng.standard_normal(n) for _ in range(1000)]
    w1, w2, worst = mi_run_both(m, grads, response, lr)
    assert m.total_refreshes() > 10_000
    assert worst < 1e-5, f"max |w_ours − w_authors| over 1,000 biased steps = {worst:.3g}"
    mi_assert_same_state(m, w1, w2, response)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("response", ["linear", "exponential"])
def test_mi_authors_devices_at_bounds(backend, response):
    """Start with many devices exactly at their bounds (0 or 27, pulsed or not), 200 steps."""
    n, lr = 400, 10.0
    m = mi_pair(n, response, backend, lr)
    rng = np.random.default_rng(3)
    choice = lambda: np.where(rng.random(n) < 0.6, rng.choice([0.0, MI_X_MAX], n),  # noqa: E731
                              rng.uniform(0, MI_X_MAX, n))
    mi_set_state(m, choice(), choice())
    grads = [rng.standard_normal(n) * 0.3 * (rng.random(n) < 0.7) for _ in range(200)]
    w1, w2, worst = mi_run_both(m, grads, response, lr)
    assert worst < 1e-5
    mi_assert_same_state(m, w1, w2, response)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("response", ["linear", "exponential"])
def test_mi_authors_example_0_27(backend, response):
    """(x₁, x₂) = (0, 27), one pulse of 1.94 on device 1 (g < 0): the authors re-centre the pair
    because device 2 sits at its bound (MID:103-105), giving (0, f⁻¹(f(27) + f(0) − f(1.94))) —
    (0, 25.06) for the linear device — not (1.94, 27)."""
    lr, dx = 1.0, 1.94
    p = MagnetoIonicParams(response=response, lr=lr, device_variability=0.0, init_range=0.0)
    m = MagnetoIonicPair((4,), p, backend=backend)
    # 0: (0, 27) pulsed on device 1; 1: (27, 0) pulsed on device 2 (mirror);
    # 2: (0, 27) pulsed on device 2 (w already at its minimum: the pulse is lost);
    # 3: (27, 5) not pulsed (g = 0): re-centred all the same (the whole tensor is checked)
    mi_set_state(m, [0.0, 27.0, 0.0, 27.0], [27.0, 0.0, 27.0, 5.0])
    g = np.array([-dx, dx, dx, 0.0])
    w1, w2, _ = mi_run_both(m, [g], response, lr)
    f = lambda x: mi_f(response, x)  # noqa: E731
    want = mi_f_inv(response, f(27.0) + f(0.0) - f(dx))
    if response == "linear":
        assert want == pytest.approx(27.0 - dx, abs=1e-9)  # 25.06
    assert m.x1[0].item() == 0.0 and m.x2[0].item() == pytest.approx(want, abs=2e-5)
    assert m.x2[1].item() == 0.0 and m.x1[1].item() == pytest.approx(want, abs=2e-5)
    assert (m.x1[2].item(), m.x2[2].item()) == (0.0, 27.0)
    assert m.x1[3].item() == pytest.approx(mi_f_inv(response, f(27.0) + f(0.0) - f(5.0)), abs=2e-5)
    assert m.x2[3].item() == 0.0
    assert m.n_refresh.tolist() == [1, 1, 0, 1]  # (0, 27) → (0, 27) is no re-programming
    assert m.n_pulse.tolist() == [1, 1, 1, 0]
    mi_assert_same_state(m, w1, w2, response, atol_x=2e-5)
    # the freed range takes the next pulse on device 2 (before, that pulse was lost at the bound)
    w_before = f(m.x2[0].item()) - f(m.x1[0].item())
    m.update(torch.tensor([0.5, 0.0, 0.0, 0.0]))
    assert f(m.x2[0].item()) - f(m.x1[0].item()) < w_before - 1e-3


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_mi_authors_overshoot_transient(backend):
    """The one place ours and theirs differ between steps: from (x₁, x₂) = (27, 0), a single pulse
    larger than the whole range on device 2 (u > 27). Their MID:99-101 re-centres with the
    unclamped f(u) < f(27), leaving w₁ above f(0) (x₁ < 0) until the clamp of the next step
    (MID:75-76); ours saturates the pulse at 27 and gives (0, 0), which is their clamped state."""
    response, lr = "linear", 1.0
    p = MagnetoIonicParams(response=response, lr=lr, device_variability=0.0, init_range=0.0)
    m = MagnetoIonicPair((1,), p, backend=backend)
    mi_set_state(m, [27.0], [0.0])
    w1 = mi_f(response, np.array([27.0]))
    w2 = mi_f(response, np.array([0.0]))
    w1, w2 = mi_authors_step(w1, w2, np.array([30.0]), np.ones(1), np.ones(1), lr, response)
    assert mi_f_inv(response, w1[0]) == pytest.approx(-3.0)  # 3 pulses "above" f(0), raw
    m.update(torch.tensor([30.0]))
    assert (m.x1.item(), m.x2.item()) == (0.0, 0.0)
    mi_assert_same_state(m, w1, w2, response)


def mi_authors_backward(gy, x, w1, w2, n1, n2):
    """NDL:72-84 (``NoisyForward.backward``) in numpy float64, given its two noise draws."""
    resistor = w2 - w1 + n2 - n1                 # NDL:80
    grad_input = gy @ resistor                   # NDL:81
    grad_weight1 = -gy.T @ x                     # NDL:82
    grad_weight2 = gy.T @ x                      # NDL:83
    return grad_input, grad_weight1, grad_weight2


@pytest.mark.parametrize("response", ["linear", "exponential"])
def test_mi_authors_noise_in_backward_only(response):
    """Default noise placement = theirs: the training forward is noise-free (NDL:61-70 with
    device_noise off, NDL:16 / main.py:48), the backward product for ∂L/∂x uses a fresh noisy read
    (NDL:76-81) and the weight gradient is exact (NDL:82-83)."""
    from metaspin_snn.synapses.magnetoionic import backward_read_linear

    sigma, gain = 0.015, 1.0
    m = MagnetoIonicPair((5, 7), MagnetoIonicParams(response=response, read_noise=sigma, init_range=0.01,
                                                    gain=gain, seed=4))
    m.train()
    f1, f2 = (t.double().numpy() for t in m.device_read())
    w = m.effective_weight()
    np.testing.assert_allclose(w.detach().double().numpy(), f2 - f1, rtol=0, atol=1e-6)  # no forward noise
    gen = torch.Generator().manual_seed(11)
    x = (torch.rand(3, 7, generator=gen) * 1e-3).requires_grad_(True)  # their intensity (NDL:44)
    gy = torch.randn(3, 5, generator=gen)
    state = m._gen.get_state()
    y = backward_read_linear(x, w, None, m.backward_read())
    np.testing.assert_allclose(y.detach().double().numpy(), x.detach().double().numpy() @ (f2 - f1).T,
                               rtol=1e-5, atol=1e-9)
    y.backward(gy)
    eps = torch.randn((2, 5, 7), generator=torch.Generator().set_state(state)).double().numpy()
    gi, gw1, gw2 = mi_authors_backward(gy.double().numpy(), x.detach().double().numpy(), f1, f2,
                                       sigma * eps[0], sigma * eps[1])
    np.testing.assert_allclose(x.grad.double().numpy(), gi, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.weight.grad.double().numpy(), gw2, rtol=1e-5, atol=1e-9)  # ∂L/∂w
    np.testing.assert_allclose(-m.weight.grad.double().numpy(), gw1, rtol=1e-5, atol=1e-9)
    assert np.abs(gi - gy.double().numpy() @ (f2 - f1)).max() > 1e-3  # the noise is there


def test_mi_authors_init():
    """NDL:35-41 with init = 0.01 (NDL:15): f(x₁) = f(0) − 0.01, f(x₂) = f(0) − 0.01 − u,
    u ~ U(−0.01, 0.01) — both devices start 0.01 V below f(0), w = −u."""
    for response in ("linear", "exponential"):
        m = MagnetoIonicPair((20_000,), MagnetoIonicParams(response=response, seed=2))
        f0 = mi_f(response, 0.0)
        v1 = mi_f(response, m.x1.double().numpy())
        v2 = mi_f(response, m.x2.double().numpy())
        np.testing.assert_allclose(v1, f0 - 0.01, rtol=0, atol=1e-6)
        u = f0 - 0.01 - v2
        assert u.min() >= -0.01 - 1e-6 and u.max() <= 0.01 + 1e-6
        assert abs(u.mean()) < 3e-4 and u.std() == pytest.approx(0.02 / np.sqrt(12), rel=0.03)


# ==== MESU: kellian-cottart/mesu-pmnist, commit cb38851c10af5c44cc8efdaac0f056739edd2611 ====
# optimizers/mesu.py lines 49-65 (update_mesu), utils/trainFunctions.py lines 97-106 (bayesian_loss_fn:
# log-softmax averaged over the samples, summed over the batch), customLayers/linears/bayesianLinear.py
# lines 59-66 (init: lim = 4/sqrt(in), mu ~ U(-lim, lim), sigma = lim/2).

MESU_SHAPE = (20, 30)


def mesu_authors_step(mu, sigma, grad_mu, grad_sigma, lr_mu, lr_sigma, mu_prior, sigma_prior, N):
    """update_mesu in float64 numpy: the update is *added* by optax.apply_updates."""
    variance = sigma ** 2
    prior_attraction_mu = variance * (mu_prior - mu) / (N * (sigma_prior ** 2))
    prior_attraction_sigma = sigma * (sigma_prior ** 2 - variance) / (N * (sigma_prior ** 2))
    mu_update = lr_mu * (-variance * grad_mu + prior_attraction_mu)
    sigma_update = lr_sigma * 0.5 * (-variance * grad_sigma + prior_attraction_sigma)
    return mu + mu_update, sigma + sigma_update


def mesu_authors_grads(mu, sigma, eps, a, b):
    """∂/∂(μ, σ) of the authors' loss for S samples w_s = μ + σ ε_s of a quadratic per-sample loss
    L_s = ½ Σ a (w_s − b)² and loss = mean_s L_s (their mean over samples): ∂L/∂w_s = a (w_s − b)/S."""
    w = mu[None] + sigma[None] * eps
    gw = a * (w - b) / eps.shape[0]
    return gw.sum(0), (gw * eps).sum(0)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("samples,stacked", [(1, False), (4, False), (10, True)])
def test_mesu_authors_update_with_monte_carlo_samples(backend, samples, stacked):
    """≥ 200 steps of MESU on a quadratic loss, S samples per step, against the transcription — the
    authors' prior (σ_p 1, μ_p 0) and lr 1 with a short window N so the prior term matters."""
    p = MESUParams(N=300.0, seed=3)
    s = MESU(MESU_SHAPE, p, backend=backend)
    rng = np.random.default_rng(0)
    a = rng.uniform(0.2, 1.0, MESU_SHAPE)
    b = rng.normal(0, 0.3, MESU_SHAPE)
    mu, sigma = s.mu.double().numpy().copy(), s.sigma.double().numpy().copy()
    if stacked:
        s.set_mc_samples(samples)
    s.train()
    for _ in range(220):
        if stacked:
            w = s.effective_weight()
            eps = s.noise.double().numpy().copy()
            gw = torch.from_numpy(a * (w.detach().double().numpy() - b) / samples).float()
            s.update(gw)
        else:
            eps_l = []
            for k in range(samples):
                w = s.effective_weight().detach().double().numpy()
                eps_l.append(s.noise.double().numpy().copy())
                s.accumulate(torch.from_numpy(a * (w - b) / samples).float())
            eps = np.stack(eps_l)
            s.update()
        gm, gs = mesu_authors_grads(mu, sigma, eps, a, b)
        mu, sigma = mesu_authors_step(mu, sigma, gm, gs, 1.0, 1.0, 0.0, 1.0, 300.0)
        np.testing.assert_allclose(s.mu.double().numpy(), mu, rtol=2e-5, atol=2e-6, err_msg="mu")
        np.testing.assert_allclose(s.sigma.double().numpy(), sigma, rtol=2e-5, atol=2e-6, err_msg="sigma")


def test_mesu_defaults_are_the_authors_pmnist_config():
    """configurations/pmnist/mlp-bayesian-mesu.json: lr_mu = lr_sigma = 1, sigma_prior 1, mu_prior 0,
    N = 300000, 10 train and 10 test samples; summed loss; BayesianLinear's initialisation."""
    p = MESUParams()
    assert (p.lr_mu, p.lr_sigma, p.sigma_prior, p.mu_prior, p.N) == (1.0, 1.0, 1.0, 0.0, 3e5)
    assert MESU.PROTOCOL == {"train_samples": 10, "eval_samples": 10, "eval_average": "log_softmax",
                             "loss_reduction": "sum"}
    s = MESU((50, 784), p)
    lim = 4 / np.sqrt(784)
    mu = s.mu.numpy()
    assert mu.min() >= -lim and mu.max() <= lim and mu.min() < -0.95 * lim and mu.max() > 0.95 * lim
    assert abs(mu.var() - lim ** 2 / 3) < 0.05 * lim ** 2 / 3           # uniform, not Gaussian
    np.testing.assert_allclose(s.sigma.numpy(), 0.5 * lim, rtol=1e-6)


def test_mesu_summed_loss_step_differs_from_batch_mean():
    """The authors sum the loss over the batch: with B = 8 the gradient is 8× the batch mean's, so the
    step of lr 1 on the summed loss equals lr 8 on the mean loss (in μ) — today's runner default uses
    the summed one for MESU (PROTOCOL), the old runner the mean with lr 30."""
    from metaspin_snn.continual.config import RunConfig
    from metaspin_snn.continual.runner import resolve_protocol
    pr = resolve_protocol(RunConfig(synapse="mesu"))
    assert pr["loss_reduction"] == "sum" and pr["train_samples"] == 10 and pr["eval_samples"] == 10
    assert resolve_protocol(RunConfig(synapse="mesu", loss_reduction="mean", train_samples=1))["train_samples"] == 1
    assert resolve_protocol(RunConfig(synapse="real"))["loss_reduction"] == "mean"
