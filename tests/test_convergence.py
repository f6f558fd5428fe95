"""Chapter 03's convergence check: the takeaway names each arm's kept epoch and says which arms were still improving
at their last allowed epoch; a run with fixed epochs says so and draws nothing."""
import pandas as pd

import tmkd.config
from tmkd.report import plot_convergence
from tmkd.takeaways import convergence_sentence


def curves(rows):
    frame = pd.DataFrame(rows, columns=["task", "method", "epoch", "select_accuracy"])
    frame["best"] = False
    for _, g in frame.groupby(["task", "method"]):
        frame.loc[g["select_accuracy"].idxmax(), "best"] = True       # idxmax: the first of equal scores
    frame["last_epoch"] = frame.groupby(["task", "method"])["epoch"].transform("max")
    return frame


def test_an_arm_best_at_its_last_allowed_epoch_is_called_still_improving():
    cfg = tmkd.config.make_config("smoke", student_epochs=4, student_patience=2)
    c = curves([("qnli", "no_kd", e, a) for e, a in [(1, 60), (2, 65), (3, 64), (4, 63)]]
               + [("qnli", "mo1", e, a) for e, a in [(1, 58), (2, 62), (3, 66), (4, 68.5)]])
    text = convergence_sentence(c, cfg)
    assert "student, no KD 2 (65.0 %)" in text and "m-o-1 (MKD) 4 (68.5 %)" in text
    assert "Still improving at the last epoch: m-o-1 (MKD);" in text
    assert plot_convergence(c) is not None


def test_arms_that_peaked_earlier_are_each_compared_at_their_best():
    cfg = tmkd.config.make_config("smoke", student_epochs=5, student_patience=2)
    c = curves([("qnli", "mo1", e, a) for e, a in [(1, 58), (2, 66), (3, 66), (4, 65)]])   # a tie: the earlier kept
    text = convergence_sentence(c, cfg)
    assert "m-o-1 (MKD) 2 (66.0 %)" in text and "Every arm stopped improving" in text


def test_fixed_epochs_draw_no_curve_and_say_why():
    cfg = tmkd.config.make_config("smoke")
    empty = pd.DataFrame(columns=["task", "method", "epoch", "select_accuracy", "best", "last_epoch"])
    assert plot_convergence(empty) is None
    assert "student_patience = 0" in convergence_sentence(empty, cfg)
