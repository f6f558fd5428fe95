"""metrics.csv records the pairs each student trained on, so a table can state the stage-1 corpus against the
labelled pairs (the paper's regime: 4M stage-1 pairs before QNLI's 105k labelled ones)."""
import helpers
import tmkd.inputs.data
import tmkd.training.experiments
from conftest import stub_run


def test_every_student_row_records_the_pairs_it_trained_on(tmp_path, stub_training):
    cfg = stub_run(tmp_path / "run", seeds=(1,))
    helpers.train_teachers(cfg)
    tmkd.training.experiments.run_method(cfg, "qnli", "no_kd")
    helpers.run_stage1(cfg, "tmkd")
    tmkd.training.experiments.run_stage2(cfg, "tmkd", "qnli")
    m = helpers.read_metrics(cfg.run_path)
    students = m[~m["method"].isin(["teacher", "teacher_ensemble"])]
    labelled = len(tmkd.inputs.data.split_dataset(cfg, "qnli", "train"))
    corpus = len(tmkd.inputs.data.split_dataset(cfg, cfg.stage1_task, "stage1"))
    assert corpus != labelled                                  # the two counts are told apart below
    pairs = {(r.stage, r.method): int(r.train_pairs) for r in students.itertuples()}
    assert pairs == {(0, "no_kd"): labelled, (1, "tmkd"): corpus, (2, "tmkd"): labelled}
