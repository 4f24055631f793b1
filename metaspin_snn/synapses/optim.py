"""``torch.optim.Optimizer`` adapter: one ``step()`` for synapse models and ordinary parameters."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from .base import SynapseModel, all_finite, synapse_models


class SynapticOptimizer(torch.optim.Optimizer):
    """Runs every synapse model's fused update on ∂L/∂w_eff and an inner torch optimiser on the
    ordinary parameters (biases, norm affine, learnable β/θ), in one ``step()``.

    ``SynapticOptimizer(model, lambda ps: torch.optim.Adam(ps, lr=1e-3))``. The effective weights
    are the optimiser's ``params`` (so ``zero_grad`` clears them); their update rule is the synapse
    model's, not this optimiser's.
    """

    def __init__(self, model: nn.Module,
                 make_inner: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
                 ) -> None:
        self.synapses: list[SynapseModel] = synapse_models(model)
        ordinary = [p for p in model.parameters() if p.requires_grad]
        leaves = [s.effective_weight() for s in self.synapses]
        if not leaves and not ordinary:
            raise ValueError("SynapticOptimizer: model has neither synapse models nor trainable parameters")
        super().__init__(leaves if leaves else ordinary, defaults={})
        self.inner = make_inner(ordinary) if (make_inner is not None and ordinary) else None

    def zero_grad(self, set_to_none: bool = True) -> None:
        for s in self.synapses:
            s.weight.grad = None
        if self.inner is not None:
            self.inner.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.check_finite()  # every gradient first: a NaN anywhere changes no state at all
        for s in self.synapses:
            if s.n_accumulated > 0:
                s.update()
            elif s.weight.grad is not None:
                s.update(s.weight.grad)
        if self.inner is not None:
            self.inner.step()
        return loss

    def check_finite(self) -> None:
        """``ValueError`` naming the first synapse model or parameter whose gradient holds NaN/inf
        (nothing is updated)."""
        for i, s in enumerate(self.synapses):
            g = s.weight.grad if s.n_accumulated == 0 else s.accumulated_grad()
            if g is not None and not all_finite(g):
                raise ValueError(f"SynapticOptimizer.step: synapse model {i} ({type(s).__name__}) has a NaN or inf "
                                 "gradient; no state was changed")
        if self.inner is not None:
            for group in self.inner.param_groups:
                for p in group["params"]:
                    if p.grad is not None and not all_finite(p.grad):
                        raise ValueError(f"SynapticOptimizer.step: parameter of shape {tuple(p.shape)} has a NaN or "
                                         "inf gradient; no state was changed")

    def accumulate_sample(self) -> None:
        """After the backward pass of one Monte-Carlo weight sample (loss scaled by 1/S): every
        synapse model with a gradient adds its per-sample statistics (``SynapseModel.accumulate``);
        ordinary parameters keep accumulating ``.grad`` as usual. ``step()`` then uses the sums."""
        for s in self.synapses:
            if s.weight.grad is not None:
                s.accumulate()

    def finish_samples(self) -> None:
        """After the last Monte-Carlo sample: every synapse model's ``weight.grad`` ← the summed
        (= mean, with 1/S-scaled losses) gradient, so plugins that read ∂L/∂w (SI's path integral)
        see it; ``step()`` still steps on the accumulated statistics."""
        for s in self.synapses:
            if s.n_accumulated > 0:
                s.weight.grad = s.accumulated_grad().clone()

    def state_dict(self) -> dict:  # synapse state lives in the model's state_dict
        return {"inner": self.inner.state_dict() if self.inner is not None else None}

    def load_state_dict(self, state_dict: dict) -> None:
        if self.inner is not None and state_dict.get("inner") is not None:
            self.inner.load_state_dict(state_dict["inner"])
