import math

import pytest
import torch

from metaspin_snn.data import direct, encode, latency, rate
from metaspin_snn.seed import seed_everything


def test_rate_matches_probability_within_bound():
    p = torch.tensor([0.0, 0.05, 0.3, 0.5, 0.9, 1.0])
    T, B = 4000, 25
    s = rate(p.expand(B, -1), T, generator=torch.Generator().manual_seed(1))
    assert s.shape == (T, B, 6) and set(s.unique().tolist()) <= {0.0, 1.0}
    n = T * B
    emp = s.mean(dim=(0, 1))
    for pi, ei in zip(p.tolist(), emp.tolist()):
        bound = 5 * math.sqrt(max(pi * (1 - pi), 1e-12) / n) + 1e-9
        assert abs(ei - pi) <= bound
    assert torch.allclose(rate(p[None], 3000, gain=0.5, generator=torch.Generator().manual_seed(0)).mean((0, 1)),
                          0.5 * p, atol=0.04)


def test_latency_ordering_one_spike():
    x = torch.tensor([[1.0, 0.75, 0.5, 0.1, 0.0]])
    s = latency(x, 9)
    assert s.shape == (9, 1, 5)
    assert s.sum(0).tolist() == [[1, 1, 1, 1, 0]]
    t_first = s.argmax(0)[0].tolist()[:4]
    assert t_first == sorted(t_first) and t_first[0] == 0 and t_first[-1] == round(8 * 0.9)


def test_direct_and_dispatch_errors():
    x = torch.rand(3, 4)
    assert torch.equal(direct(x, 5)[2], x)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rate(x * 3, 5)
    with pytest.raises(ValueError, match="NaN"):
        direct(torch.tensor([float("nan")]), 2)
    with pytest.raises(ValueError, match="num_steps"):
        latency(x, 0)
    with pytest.raises(ValueError, match="encoding"):
        encode(x, 3, "poisson2")


def test_seed_everything_reproduces_every_stream():
    import numpy as np
    import numba

    @numba.njit
    def draw():
        return np.random.random()

    def streams():
        g = seed_everything(123)
        return (rate(torch.rand(4, 10), 5).sum().item(), torch.randn(3).tolist(), np.random.rand(),
                draw(), torch.rand(2, generator=g).tolist())

    assert streams() == streams()
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)
