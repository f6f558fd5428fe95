"""The paper's losses and Eq. 6 on hand-computed examples, and m-o-m combination on a toy case."""
import math

import numpy as np
import pytest
import torch

import helpers
import tmkd.core.config
import tmkd.training.logit_cache
import tmkd.model.method


def test_golden_loss_is_cross_entropy_with_the_gold_label():
    logits = torch.tensor([[0.0, math.log(3.0)]])          # softmax -> [0.25, 0.75]
    assert helpers.golden_loss(logits, torch.tensor([1])).item() == pytest.approx(-math.log(0.75), abs=1e-6)


def test_soft_loss_is_mse_per_teacher_head_averaged_over_teachers():
    student = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])     # (B=1, N=2, C=2)
    teacher = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    # head 1: ((1-0)^2 + (2-0)^2) / 2 = 2.5 ; head 2: ((0-1)^2 + (0-1)^2) / 2 = 1.0 ; mean = 1.75
    assert helpers.mse_soft_loss(student, teacher).item() == pytest.approx(1.75, abs=1e-6)


def test_soft_loss_uses_raw_logits_not_probabilities():
    # logits that differ only by a constant have equal softmax but a non-zero MSE: the target is pre-softmax
    student = torch.tensor([[[0.0, 1.0]]])
    assert helpers.mse_soft_loss(student, student + 2.0).item() == pytest.approx(4.0, abs=1e-6)


def test_tmkd_loss_mixes_golden_and_soft_with_alpha():
    golden = torch.tensor([[0.0, math.log(3.0)]])
    soft = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])
    teacher = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    labels = torch.tensor([1])
    # 0.3 * (-ln 0.75) + 0.7 * 1.75 = 0.3 * 0.287682 + 1.225 = 1.311305
    assert helpers.tmkd_loss(golden, soft, labels, teacher, 0.7).item() == pytest.approx(1.311305, abs=1e-5)
    assert helpers.tmkd_loss(golden, soft, None, teacher, 1.0).item() == pytest.approx(1.75, abs=1e-6)
    assert helpers.tmkd_loss(golden, None, labels, None, 0.0).item() == pytest.approx(0.287682, abs=1e-5)


def test_stage_one_loss_needs_no_labels_and_kd_needs_teachers():
    golden, soft = torch.zeros(1, 2), torch.zeros(1, 1, 2)
    with pytest.raises(ValueError, match="needs gold labels"):
        helpers.tmkd_loss(golden, soft, None, torch.zeros(1, 1, 2), 0.5)
    with pytest.raises(ValueError, match="needs teacher logits"):
        helpers.tmkd_loss(golden, soft, torch.tensor([0]), None, 0.5)


def test_kl_alternative_with_temperature():
    student = torch.tensor([[[0.0, math.log(3.0)]]])      # p = [0.25, 0.75]
    teacher = torch.tensor([[[0.0, 0.0]]])                # q = [0.5, 0.5]
    # KL(q||p) = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.143841
    assert tmkd.model.method.kl_soft_loss(student, teacher, 1.0).item() == pytest.approx(0.143841, abs=1e-5)
    # T = 2: p = softmax([0, ln3 / 2]) = [0.366025, 0.633975]; KL = 0.155952 - 0.118700 = 0.037252; x T^2 = 0.149009
    assert tmkd.model.method.kl_soft_loss(student, teacher, 2.0).item() == pytest.approx(0.149009, abs=1e-5)


def test_eq6_prediction_averages_all_heads_probabilities():
    golden = torch.tensor([[0.0, math.log(3.0)]])         # [0.25, 0.75]
    soft = torch.tensor([[[0.0, 0.0]]])                   # [0.5, 0.5]
    torch.testing.assert_close(helpers.head_probabilities(golden, soft, 0.7), torch.tensor([[0.375, 0.625]]))
    # alpha = 1: the golden head was never trained, only the soft heads vote
    torch.testing.assert_close(helpers.head_probabilities(golden, soft, 1.0), torch.tensor([[0.5, 0.5]]))
    # no teachers, or alpha = 0 (soft heads untrained): the golden head alone
    torch.testing.assert_close(helpers.head_probabilities(golden, None, 0.0), torch.tensor([[0.25, 0.75]]))
    torch.testing.assert_close(helpers.head_probabilities(golden, soft, 0.0), torch.tensor([[0.25, 0.75]]))


TOY = np.array([
    [[.9, .1], [.4, .6], [.6, .4], [.2, .8]],     # student 1
    [[.8, .2], [.3, .7], [.45, .55], [.45, .55]],  # student 2
    [[.3, .7], [.45, .55], [.4, .6], [.9, .1]],   # student 3
])


def test_mom_average_and_vote_differ_where_they_should():
    # example 3: votes 1, 1, 0 -> class 1; mean probabilities (.2+.45+.9)/3 = .517 for class 0 -> class 0
    assert tmkd.model.method.combine_students(TOY, "avg").tolist() == [0, 1, 1, 0]
    assert tmkd.model.method.combine_students(TOY, "vote").tolist() == [0, 1, 1, 1]


def test_mom_vote_breaks_a_three_way_tie_by_mean_probability():
    probs = np.array([[[.5, .3, .2]], [[.1, .6, .3]], [[.05, .25, .7]]])   # votes 0, 1, 2
    # mean = [.217, .383, .4] -> class 2
    assert tmkd.model.method.combine_students(probs, "vote").tolist() == [2]


def test_mom_aligns_students_by_example_id_not_position():
    ids_a, ids_b = np.array([10, 11, 12]), np.array([12, 10, 11])
    probs_b = np.array([[.1, .9], [.8, .2], [.7, .3]])                 # rows for ids 12, 10, 11
    aligned = tmkd.training.logit_cache.align_examples(probs_b, ids_b, ids_a)
    assert aligned.tolist() == [[.8, .2], [.7, .3], [.1, .9]]
    with pytest.raises(tmkd.core.config.TMKDError, match="no cached value"):
        tmkd.training.logit_cache.align_examples(probs_b, ids_b, np.array([10, 99]))
