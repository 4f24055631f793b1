"""Scenario bookkeeping (van de Ven & Tolias 2019): outputs, heads, task ids and targets."""
import pytest
import torch

from metaspin_snn.continual.scenarios import Scenario
from metaspin_snn.continual.streams import Task


def _task(k, classes, glob):
    y = torch.tensor([0, 1, 1, 0])
    x = torch.zeros(4, 2, 2, dtype=torch.uint8)
    return Task(k, f"t{k}", x, y, x, y, classes, glob)


TASKS = [_task(0, (0, 1), (0, 1)), _task(1, (2, 3), (2, 3)), _task(2, (4, 5), (4, 5))]


def test_domain_il():
    s = Scenario("domain")
    assert s.n_outputs(TASKS) == 2 and s.heads(TASKS) == 1 and s.n_norm_sets(TASKS) == 1
    assert s.task_arg(TASKS[1]) is None
    assert torch.equal(s.targets(TASKS[2], torch.tensor([0, 1])), torch.tensor([0, 1]))  # within-pair label


def test_class_il():
    s = Scenario("class")
    assert s.n_outputs(TASKS) == 6 and s.heads(TASKS) == 1 and s.task_arg(TASKS[2]) is None
    assert torch.equal(s.targets(TASKS[2], torch.tensor([0, 1, 1])), torch.tensor([4, 5, 5]))


def test_task_il_heads_and_norm():
    h = Scenario("task", "heads")
    assert h.heads(TASKS) == 3 and h.n_norm_sets(TASKS) == 1 and h.task_arg(TASKS[2]) == 2
    assert h.n_outputs(TASKS) == 2
    n = Scenario("task", "norm")
    assert n.heads(TASKS) == 1 and n.n_norm_sets(TASKS) == 3 and "task-IL-like" in n.label
    with pytest.raises(ValueError, match="scenario"):
        Scenario("taskil")
