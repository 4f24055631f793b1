"""Properties shared by the three learning-rule synapses: finite state for any finite gradient
(hypothesis), NaN → ValueError with the state untouched, state_dict round trip, parameter validation."""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from metaspin_snn.synapses import (MESU, BayesianBinary, BayesianBinaryParams, MESUParams, MetaplasticBinary,
                                   MetaplasticBinaryParams)

MODELS = [
    (MetaplasticBinary, MetaplasticBinaryParams),
    (MESU, MESUParams),
    (BayesianBinary, BayesianBinaryParams),
]
SHAPE = (4, 6)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}


def _check_bounds(model):
    for name, t in _state(model).items():
        assert torch.isfinite(t).all(), name
    p = model.params
    if isinstance(model, MESU):
        assert (model.sigma >= p.sigma_min).all() and (model.sigma <= p.sigma_max).all()
        assert (model.mu.abs() <= p.mu_max).all()
    if isinstance(model, BayesianBinary):
        assert (model.lam.abs() <= p.lambda_max).all()


finite32 = st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False, width=32)
EXTREMES = [float(np.float32(x)) for x in (0.0, -0.0, 3.4e38, -3.4e38, 1.2e-38, 1.0, -1e20)]
grads = st.one_of(
    arrays(np.float32, SHAPE, elements=finite32),
    arrays(np.float32, SHAPE, elements=st.sampled_from(EXTREMES)),
)


@pytest.mark.parametrize("cls,pcls", MODELS)
@pytest.mark.parametrize("backend", ["numba", "torch"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(gs=st.lists(grads, min_size=1, max_size=4), train=st.booleans())
def test_state_stays_finite_for_any_finite_gradient(cls, pcls, backend, gs, train):
    model = cls(SHAPE, pcls(), backend=backend)
    model.train(train)
    for g in gs:
        model.effective_weight()
        model.update(torch.from_numpy(g))
        _check_bounds(model)
    assert torch.isfinite(model.effective_weight()).all()


@pytest.mark.parametrize("cls,pcls", MODELS)
@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_gradient_raises_and_leaves_state(cls, pcls, backend, bad):
    model = cls(SHAPE, pcls(), backend=backend)
    model.effective_weight()
    model.update(torch.randn(SHAPE))
    before = _state(model)
    g = torch.randn(SHAPE)
    g[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        model.update(g)
    after = _state(model)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("cls,pcls", MODELS)
def test_wrong_gradient_shape_raises(cls, pcls):
    model = cls(SHAPE, pcls())
    with pytest.raises(ValueError, match="shape"):
        model.update(torch.zeros(3, 3))


@pytest.mark.parametrize("cls,pcls", MODELS)
def test_state_dict_round_trip_carries_hidden_state(cls, pcls):
    a = cls(SHAPE, pcls())
    gen = torch.Generator().manual_seed(5)
    for _ in range(3):
        a.effective_weight()
        a.update(torch.randn(SHAPE, generator=gen))
    b = cls(SHAPE, pcls(seed=123))
    assert not torch.equal(a.hidden(), b.hidden())
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.hidden(), b.hidden())
    for k, v in a.state_dict().items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, b.state_dict()[k]), k
    # same state and same generator state → same next sample and same next update
    assert torch.equal(a.refresh(), b.refresh())
    g = torch.randn(SHAPE, generator=gen)
    a.update(g)
    b.update(g)
    assert torch.equal(a.hidden(), b.hidden())


BAD_PARAMS = [
    (MetaplasticBinaryParams, "lr", -1.0), (MetaplasticBinaryParams, "eps", 0.0),
    (MetaplasticBinaryParams, "m", -0.5), (MetaplasticBinaryParams, "weight_decay", float("nan")),
    (MetaplasticBinaryParams, "init_scale", -1.0), (MetaplasticBinaryParams, "betas", (0.9, 1.0)),
    (MESUParams, "N", 0.0), (MESUParams, "sigma_prior", -0.1), (MESUParams, "sigma_min", 0.0),
    (MESUParams, "sigma_init", 100.0), (MESUParams, "lr_mu", -1.0), (MESUParams, "mu_max", 0.0),
    (BayesianBinaryParams, "tau", 0.0), (BayesianBinaryParams, "beta", 1.0),
    (BayesianBinaryParams, "n_data", -3.0), (BayesianBinaryParams, "eval_mode", "median"),
    (BayesianBinaryParams, "lambda_init", 1e3), (BayesianBinaryParams, "lr", "0.1"),
]


@pytest.mark.parametrize("pcls,field,value", BAD_PARAMS)
def test_out_of_range_params_name_the_field(pcls, field, value):
    with pytest.raises(ValueError, match=rf"{pcls.__name__}\.{field}"):
        pcls(**{field: value})


@pytest.mark.parametrize("cls,pcls", MODELS)
def test_params_are_frozen_and_type_checked(cls, pcls):
    p = pcls()
    with pytest.raises(Exception):
        p.seed = 3  # frozen dataclass
    other = MODELS[(MODELS.index((cls, pcls)) + 1) % 3][1]()
    with pytest.raises(TypeError, match="params must be"):
        cls(SHAPE, other)


@pytest.mark.parametrize("cls,pcls", MODELS)
def test_forced_numba_backend_refuses_float64_state(cls, pcls):
    model = cls(SHAPE, pcls(), backend="numba").double()
    model.effective_weight()
    with pytest.raises(ValueError, match="float32 CPU"):
        model.update(torch.zeros(SHAPE, dtype=torch.float32))
    auto = cls(SHAPE, pcls()).double()            # "auto" falls back to the torch reference
    auto.effective_weight()
    auto.update(torch.ones(SHAPE, dtype=torch.float64))
    assert all(torch.isfinite(t).all() for t in auto.state_dict().values() if isinstance(t, torch.Tensor))
