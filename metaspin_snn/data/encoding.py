"""Spike encoders. Inputs ``x`` are intensities in ``[0, 1]`` of shape ``[B, ...]``; outputs are
float32 spike (or current) tensors ``[T, B, ...]``.

* ``rate``: Bernoulli (Poisson-like) spikes, P(s[t] = 1) = clip(gain·x, 0, 1) i.i.d. over t.
* ``latency``: one spike per input at t = round((T−1)·(1 − x)) (linear time-to-first-spike:
  bright inputs fire early; x = 0 never fires when ``skip_zero``), cf. snntorch.spikegen.latency(linear=True).
* ``direct``: the analog value presented as a constant input current at every step.
* ``events``: N-MNIST event binning lives in :mod:`metaspin_snn.data.nmnist`.
"""
from __future__ import annotations

import torch


def _check(x: torch.Tensor, num_steps: int, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        raise ValueError(f"{name}: x must be a tensor [B, ...], got {type(x).__name__}")
    if not isinstance(num_steps, int) or num_steps <= 0:
        raise ValueError(f"{name}: num_steps must be a positive int, got {num_steps!r}")
    if torch.isnan(x).any():
        raise ValueError(f"{name}: x contains NaN")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name}: x must lie in [0, 1] (got min {x.min().item():.3g}, max {x.max().item():.3g})")


def rate(x: torch.Tensor, num_steps: int, gain: float = 1.0,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """Bernoulli rate code: s[t] ~ Bernoulli(clip(gain·x, 0, 1)), independent over t and inputs."""
    _check(x, num_steps, "rate")
    if gain < 0:
        raise ValueError(f"rate: gain must be >= 0, got {gain}")
    p = (x.float() * gain).clamp_(0.0, 1.0).expand(num_steps, *x.shape)
    return torch.bernoulli(p, generator=generator)


def latency(x: torch.Tensor, num_steps: int, skip_zero: bool = True) -> torch.Tensor:
    """Linear latency code: one spike at t = round((T − 1)·(1 − x)); inputs with x = 0 stay silent
    when ``skip_zero``."""
    _check(x, num_steps, "latency")
    t = torch.round((num_steps - 1) * (1.0 - x.float())).long()
    out = torch.zeros(num_steps, *x.shape, dtype=torch.float32, device=x.device)
    fire = (x > 0) if skip_zero else torch.ones_like(x, dtype=torch.bool)
    out.scatter_(0, t.unsqueeze(0), fire.float().unsqueeze(0))
    return out


def direct(x: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Direct-current input: the analog value repeated at every step, ``[T, B, ...]``."""
    _check(x, num_steps, "direct")
    return x.float().unsqueeze(0).expand(num_steps, *x.shape).contiguous()


ENCODINGS = ("direct", "rate", "latency")


def encode(x: torch.Tensor, num_steps: int, kind: str, generator: torch.Generator | None = None,
           gain: float = 1.0) -> torch.Tensor:
    """Dispatch by name: ``"rate"``, ``"latency"`` or ``"direct"``."""
    if kind == "rate":
        return rate(x, num_steps, gain, generator)
    if kind == "latency":
        return latency(x, num_steps)
    if kind == "direct":
        return direct(x, num_steps)
    raise ValueError(f"encoding must be 'rate', 'latency' or 'direct', got {kind!r}")
