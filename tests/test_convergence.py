"""Generated sentences on a run's own numbers: chapter 03's convergence check (each arm's kept epoch, which arms were still
improving; a run with fixed epochs says so and draws nothing) and chapter 07's split of a student's parameters."""
import pandas as pd

import tmkd.core.config
from tmkd.reporting.report import plot_convergence
from tmkd.reporting.takeaways import convergence_sentence


def curves(rows):
    frame = pd.DataFrame(rows, columns=["task", "method", "epoch", "select_accuracy"])
    frame["best"] = False
    for _, g in frame.groupby(["task", "method"]):
        frame.loc[g["select_accuracy"].idxmax(), "best"] = True       # idxmax: the first of equal scores
    frame["last_epoch"] = frame.groupby(["task", "method"])["epoch"].transform("max")
    return frame


def test_an_arm_best_at_its_last_allowed_epoch_is_called_still_improving():
    cfg = tmkd.core.config.make_config("smoke", student_epochs=4, student_patience=2)
    c = curves([("qnli", "no_kd", e, a) for e, a in [(1, 60), (2, 65), (3, 64), (4, 63)]]
               + [("qnli", "mo1", e, a) for e, a in [(1, 58), (2, 62), (3, 66), (4, 68.5)]])
    text = convergence_sentence(c, cfg)
    assert "student, no KD 2 (65.0 %)" in text and "m-o-1 (MKD) 4 (68.5 %)" in text
    assert "Still improving at the last epoch: m-o-1 (MKD);" in text
    ax = plot_convergence(c).axes[0]
    lines = {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}
    assert set(lines) == {"student, no KD", "m-o-1 (MKD)"}
    assert list(lines["m-o-1 (MKD)"].get_ydata()) == [58, 62, 66, 68.5]
    rings = [(line.get_xdata()[0], line.get_ydata()[0]) for line in ax.lines if line.get_label().startswith("_")]
    assert sorted(rings) == [(2, 65), (4, 68.5)]                        # each arm's kept epoch is ringed


def test_arms_that_peaked_earlier_are_each_compared_at_their_best():
    cfg = tmkd.core.config.make_config("smoke", student_epochs=5, student_patience=2)
    c = curves([("qnli", "mo1", e, a) for e, a in [(1, 58), (2, 66), (3, 66), (4, 65)]])   # a tie: the earlier kept
    text = convergence_sentence(c, cfg)
    assert "m-o-1 (MKD) 2 (66.0 %)" in text and "Every arm stopped improving" in text


def test_fixed_epochs_draw_no_curve_and_say_why():
    cfg = tmkd.core.config.make_config("smoke")
    empty = pd.DataFrame(columns=["task", "method", "epoch", "select_accuracy", "best", "last_epoch"])
    assert plot_convergence(empty) is None
    assert "student_patience = 0" in convergence_sentence(empty, cfg)


def test_the_size_sentence_splits_parameters_into_layers_and_embeddings():
    from tmkd.reporting.takeaways import size_sentence
    rows = [("qnli/teacher", 22.0e6, 100.0), ("qnli/student-k1", 13.0e6, 500.0), ("qnli/student-k3", 17.0e6, 250.0),
            ("qnli/student-k5", 21.0e6, 150.0)]
    speed = pd.DataFrame(rows, columns=["model", "params", "examples_per_s"]).assign(device="cpu")
    text = size_sentence(speed)
    assert "Each encoder layer holds 2.0 M parameters; the other 11.0 M" in text
    assert "the 3-layer student keeps 77 % of the teacher's 22.0 M parameters, yet runs 2.5x" in text
    assert "Fewer than two" in size_sentence(speed[speed["model"] != "qnli/student-k5"][1:2])
