"""Continual-learning metrics against hand-computed matrices (GEM Eq. 2; RWalk Eq. 4–6)."""
import math

import numpy as np
import pytest

from metaspin_snn.continual import metrics as M

R = np.array([[0.90, 0.10, 0.12],
              [0.70, 0.95, 0.20],
              [0.60, 0.80, 0.97]])
B = np.array([0.10, 0.11, 0.09])


def test_acc_bwt_fwt_by_hand():
    assert M.average_accuracy(R) == pytest.approx((0.60 + 0.80 + 0.97) / 3)
    # BWT = ((0.60-0.90) + (0.80-0.95)) / 2
    assert M.backward_transfer(R) == pytest.approx((-0.30 - 0.15) / 2)
    # FWT = ((R[0,1]-b1) + (R[1,2]-b2)) / 2 = ((0.10-0.11) + (0.20-0.09)) / 2
    assert M.forward_transfer(R, B) == pytest.approx((-0.01 + 0.11) / 2)


def test_forgetting_uses_max_over_previous_steps():
    # task 0 peaks at step 0 (0.90); task 1 peaks at step 1 (0.95)
    assert M.forgetting_per_step(R) == pytest.approx([None, 0.20, ((0.90 - 0.60) + (0.95 - 0.80)) / 2])
    R2 = np.array([[0.5, 0.0, 0.0], [0.8, 0.9, 0.0], [0.7, 0.9, 0.9]])  # task 0 improved, then forgot
    assert M.forgetting(R2) == pytest.approx(((0.8 - 0.7) + 0.0) / 2)


def test_intransigence_against_reference():
    ref = [0.98, 0.98, 0.98]
    assert M.intransigence(R, ref) == pytest.approx(np.mean([0.08, 0.03, 0.01]))
    assert M.intransigence(R, None) is None


def test_single_task_and_bad_input():
    one = [[0.9]]
    m = M.all_metrics(one, [0.1])
    assert m["acc"] == pytest.approx(0.9) and m["bwt"] is None and m["fwt"] is None and m["forgetting"] is None
    with pytest.raises(ValueError, match="square"):
        M.average_accuracy([[0.1, 0.2]])
    with pytest.raises(ValueError, match="NaN"):
        M.backward_transfer([[math.nan, 0], [0, 1]])
    with pytest.raises(ValueError, match="b \\(random-init"):
        M.forward_transfer(R, [0.1, 0.1])
