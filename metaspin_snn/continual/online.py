"""The ``learner = "online"`` option of the continual-learning runner: an
:class:`~metaspin_snn.networks.online.OnlineSNN` (local, event-driven plasticity; one sample at a time,
no BPTT) wrapped so that :func:`~metaspin_snn.continual.runner.run_stream` trains, evaluates,
checkpoints and reports it like the gradient-trained networks.

* training a task = ``epochs`` passes of :meth:`OnlineSNN.fit_online` over the task's training split in
  an order drawn from the runner's per-(seed, task, epoch) generator; images are rate-coded inside the
  learner (its own saved generator), event streams (N-MNIST) are fed as their binary frames;
* evaluation = the learner's prediction rule (argmax of output spike counts, ties by membrane), with
  spikes per sample per layer; ``loss`` = cross-entropy of the spike-count scores (reporting only);
* task boundary → :meth:`OnlineSNN.task_boundary`; checkpoint → its ``state_dict`` (resume-exact);
* hidden-variable histograms = the probabilistic-metaplasticity variable m per synapse (rule "pmp").

Zohora, Karia, Soures & Kudithipudi, "Probabilistic metaplasticity for continual learning with
memristors in spiking networks", Sci. Rep. 14 (2024) — see :mod:`metaspin_snn.networks.online`.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.encoding import rate
from ..networks.online import OnlineConfig, OnlineSNN, _lif_torch
from ..networks.training import EvalResult

if TYPE_CHECKING:
    from .config import RunConfig
    from .scenarios import Scenario
    from .streams import Task

__all__ = ["OnlineLearner", "online_config", "check_online_params", "ONLINE_SET_BY_RUNNER"]

# OnlineConfig fields the runner sets from the stream / other config keys.
ONLINE_SET_BY_RUNNER = {"n_in": "the stream's input size", "n_out": "the scenario's number of outputs",
                        "input": "the stream (images: rate, events: spikes)",
                        "num_steps": "config key 'num_steps' (images) or the event frames' bins",
                        "input_gain": "config key 'rate_gain'", "seed": "config key 'seed'"}
_NESTED = ("pmp_hidden", "pmp_out")


def online_config(params: dict[str, Any], *, n_in: int, n_out: int, input: str, num_steps: int,
                  input_gain: float, seed: int) -> OnlineConfig:
    """:class:`OnlineConfig` from the ``online_params`` table: keys are OnlineConfig fields, or
    ``"pmp_hidden.<f>"`` / ``"pmp_out.<f>"`` for fields of the layers'
    :class:`~metaspin_snn.synapses.events.ProbabilisticMetaplasticity`. Raises ``ValueError`` naming
    ``online_params.<key>`` for an unknown key, a key the runner sets, or a bad value."""
    fields = {f.name for f in dataclasses.fields(OnlineConfig)}
    base = OnlineConfig()
    kw: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for k, v in params.items():
        head, dot, sub = k.partition(".")
        if dot:
            if head not in _NESTED:
                raise ValueError(f"config key 'online_params.{k}': only {' and '.join(_NESTED)} take "
                                 f"sub-fields")
            sub_fields = {f.name for f in dataclasses.fields(getattr(base, head))}
            if sub not in sub_fields:
                raise ValueError(f"config key 'online_params.{k}': not a field of "
                                 f"{type(getattr(base, head)).__name__} (known: {', '.join(sorted(sub_fields))})")
            nested.setdefault(head, {})[sub] = v
            continue
        if k in ONLINE_SET_BY_RUNNER:
            raise ValueError(f"config key 'online_params.{k}': set by the runner from {ONLINE_SET_BY_RUNNER[k]}")
        if k not in fields or k in _NESTED:
            raise ValueError(f"config key 'online_params.{k}': not a field of OnlineConfig (known: "
                             f"{', '.join(sorted(fields - set(ONLINE_SET_BY_RUNNER) - set(_NESTED)))}, "
                             f"pmp_hidden.<field>, pmp_out.<field>)")
        kw[k] = v
    for head, sub in nested.items():
        try:
            kw[head] = dataclasses.replace(getattr(base, head), **sub)
        except (ValueError, TypeError) as e:
            raise ValueError(f"config key 'online_params.{head}.*': {e}") from e
    try:
        return OnlineConfig(**kw, n_in=n_in, n_out=n_out, input=input, num_steps=num_steps,
                            input_gain=input_gain, seed=seed)
    except (ValueError, TypeError) as e:
        bad = next((k for k in kw if f".{k}" in str(e) or f"{k} " in str(e)), None)
        raise ValueError(f"config key 'online_params{'.' + bad if bad else ''}': {e}") from e


def check_online_params(params: dict[str, Any], num_steps: int, rate_gain: float, seed: int) -> None:
    """Validate ``online_params`` before any data is loaded (placeholder sizes)."""
    online_config(params, n_in=4, n_out=2, input="rate", num_steps=num_steps, input_gain=rate_gain, seed=seed)


class OnlineLearner(nn.Module):
    """:class:`OnlineSNN` behind the runner's model interface. It has no gradient-trained
    parameters; ``state_dict`` is the learner's own (weights, m, feedback, generator states)."""

    def __init__(self, net: OnlineSNN) -> None:
        super().__init__()
        self.net = net

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def build(cls, config: "RunConfig", tasks: "list[Task]", scenario: "Scenario") -> "OnlineLearner":
        """Input size/kind from the tasks, outputs from the scenario, the rest from ``online_params``."""
        kinds = {t.kind for t in tasks}
        shapes = {t.input_shape for t in tasks}
        if len(kinds) != 1 or len(shapes) != 1:
            raise ValueError(f"learner 'online': all tasks must share one input kind and shape, got "
                             f"{sorted(kinds)}, {sorted(shapes)}")
        if scenario.heads(tasks) != 1:
            raise ValueError("config key 'scenario': learner 'online' has one shared output layer; "
                             "task-IL with per-task heads is not supported")
        events = next(iter(kinds)) == "events"
        n_in = int(np.prod(next(iter(shapes))))
        steps = int(tasks[0].n_steps_native) if events else config.num_steps
        oc = online_config(config.online_params, n_in=n_in, n_out=scenario.n_outputs(tasks),
                           input="spikes" if events else "rate", num_steps=steps,
                           input_gain=config.rate_gain, seed=config.seed)
        return cls(OnlineSNN(oc))

    # ---- runner hooks ----------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("OnlineLearner has no differentiable forward pass; use train_task/evaluate")

    def train_task(self, task: "Task", scenario: "Scenario", orders: list[torch.Tensor]) -> tuple[float, int]:
        """One :meth:`OnlineSNN.fit_online` pass per element of ``orders`` (index permutations of the
        training split). Returns (0.0: no loss is minimised, samples presented)."""
        n = 0
        y_all = task.train_y
        for order in orders:
            x = task.inputs("train", order)
            self.net.fit_online(x, scenario.targets(task, y_all[order]))
            n += int(order.numel())
        return 0.0, n

    @torch.no_grad()
    def evaluate(self, task: "Task", scenario: "Scenario", batch_size: int) -> EvalResult:
        """Accuracy with :meth:`OnlineSNN.predict`'s rule and noise (same generator seed, same
        batching), cross-entropy of the scores, and spikes per sample for the hidden and output layer."""
        c = self.net.config
        n_test = task.size("test")
        x_all = self.net._as_inputs(task.inputs("test", torch.arange(n_test)), "evaluate")
        y_all = scenario.targets(task, task.test_y)
        g = torch.Generator().manual_seed(c.seed + 1)
        correct, loss_sum, sp = 0, 0.0, np.zeros(2)
        for a in range(0, n_test, batch_size):
            x = x_all[a:a + batch_size]
            s_in = x.transpose(0, 1) if c.input == "spikes" else rate(x, c.num_steps, gain=c.input_gain, generator=g)
            s_h, _ = _lif_torch(c.gain_hidden * (s_in @ self.net.w_hidden.T), c.beta, c.threshold)
            s_o, vsum = _lif_torch(c.gain_out * (s_h @ self.net.w_out.T), c.beta, c.threshold)
            score = s_o.sum(0) + 1e-3 * torch.tanh(vsum)
            y = y_all[a:a + batch_size]
            correct += int((score.argmax(1) == y).sum())
            loss_sum += float(F.cross_entropy(score, y, reduction="sum"))
            sp += [float(s_h.sum()), float(s_o.sum())]
        return EvalResult(accuracy=correct / n_test, loss=loss_sum / n_test, n=n_test,
                          spikes_per_sample=[float(v) / n_test for v in sp])

    def task_boundary(self) -> None:
        self.net.task_boundary()

    def hidden_histograms(self, bins: int) -> dict[str, dict]:
        """Histogram of the metaplastic variable m per layer (rule "pmp"); empty otherwise."""
        out: dict[str, dict] = {}
        for name, st in (("hidden.m", self.net.state_hidden), ("out.m", self.net.state_out)):
            if st.m is None:
                continue
            v = st.m.detach().float().flatten().numpy()
            counts, edges = np.histogram(v, bins=bins)
            out[name] = {"edges": edges.tolist(), "counts": counts.tolist(),
                         "mean_abs": float(np.abs(v).mean()), "std": float(v.std())}
        return out

    # ---- checkpointing ---------------------------------------------------------------------------
    def state_dict(self, *args: Any, **kwargs: Any) -> dict:  # type: ignore[override]
        return self.net.state_dict()

    def load_state_dict(self, state: dict, strict: bool = True, assign: bool = False) -> Any:  # type: ignore[override]
        self.net.load_state_dict(state)
