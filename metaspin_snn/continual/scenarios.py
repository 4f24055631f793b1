"""The three continual-learning scenarios of van de Ven & Tolias (2019, "Three scenarios for
continual learning", arXiv:1904.07734).

* ``"task"`` — task-incremental: the task id is given at train and test time. Two ways to use it:
  ``task_il="heads"`` (one output head per task, the usual multi-head setting) or ``task_il="norm"``
  (one shared head, but one set of normalisation parameters per task — Laborieux et al. 2021 keep the
  batch-norm affine parameters per permuted-MNIST task; we label that setting *task-IL-like*, since
  the id only selects normalisation statistics/affine parameters).
* ``"domain"`` — domain-incremental: one shared head, no task id; the target is the label *within*
  the task (split MNIST: 0 = first digit of the pair, 1 = second, i.e. parity for (0,1), (2,3), ...).
* ``"class"`` — class-incremental: one shared head over all classes seen in the stream, no task id;
  targets are the tasks' ``global_classes``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch

from .streams import Task

ScenarioKind = Literal["task", "domain", "class"]
TaskILMode = Literal["heads", "norm"]
SCENARIOS: tuple[str, ...] = ("task", "domain", "class")
TASK_IL_MODES: tuple[str, ...] = ("heads", "norm")


@dataclass(frozen=True)
class Scenario:
    """How labels, output heads, normalisation sets and the task id are set up for a stream."""

    kind: ScenarioKind = "domain"
    task_il: TaskILMode = "heads"

    def __post_init__(self) -> None:
        if self.kind not in SCENARIOS:
            raise ValueError(f"scenario must be 'task', 'domain' or 'class', got {self.kind!r}")
        if self.task_il not in TASK_IL_MODES:
            raise ValueError(f"task_il must be 'heads' or 'norm', got {self.task_il!r}")

    @property
    def label(self) -> str:
        if self.kind == "task":
            return "task-IL (multi-head)" if self.task_il == "heads" else "task-IL-like (per-task normalisation)"
        return {"domain": "domain-IL", "class": "class-IL"}[self.kind]

    def n_outputs(self, tasks: Sequence[Task]) -> int:
        """Output units (per head)."""
        if self.kind == "class":
            return 1 + max(max(t.global_classes) for t in tasks)
        return max(t.n_classes for t in tasks)

    def heads(self, tasks: Sequence[Task]) -> int:
        return len(tasks) if (self.kind == "task" and self.task_il == "heads") else 1

    def n_norm_sets(self, tasks: Sequence[Task]) -> int:
        return len(tasks) if (self.kind == "task" and self.task_il == "norm") else 1

    def task_arg(self, task: Task) -> int | None:
        """What the network's ``task`` argument receives: the id for task-IL, else None."""
        return self.task_arg_of(task.id)

    def task_arg_of(self, task_id: int) -> int | None:
        """:meth:`task_arg` of the task with id ``task_id`` (= its position in the stream)."""
        return task_id if self.kind == "task" else None

    def targets(self, task: Task, local: torch.Tensor) -> torch.Tensor:
        """Training/test targets from a task's local labels."""
        if self.kind == "class":
            return torch.tensor(task.global_classes, dtype=torch.int64)[local]
        return local
