"""A teacher interrupted mid-training resumes from its checkpoint and ends where an uninterrupted run ends."""
import numpy as np
import pytest
from conftest import smoke_config
from transformers import TrainerCallback

import helpers
import tmkd.training.specs
import tmkd.inputs.data
import tmkd.training.logit_cache
import tmkd.model.method
import tmkd.training.teachers
import tmkd.training.trainer


class Crash(Exception):
    pass


class CrashAfterSave(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Crash(f"simulated crash after checkpoint {self.step}")


def dev_logits(cfg):
    name = helpers.teacher_names(cfg)[0]
    return tmkd.training.logit_cache.teacher_logits(cfg, "rte", name, "validation")["logits"]


@pytest.mark.slow
def test_teacher_resume_gives_the_uninterrupted_result(tmp_path, capsys):
    plain = smoke_config(tmp_path / "plain", teacher_lrs=(2e-3,))
    crashed = smoke_config(tmp_path / "crashed", teacher_lrs=(2e-3,))
    tmkd.training.teachers.train_teacher(plain, "rte", 2e-3)
    with pytest.raises(Crash):
        tmkd.training.teachers.train_teacher(crashed, "rte", 2e-3, callbacks=[CrashAfterSave(40)])
    out = tmkd.training.teachers.teacher_dir(crashed, "rte", "teacher-lr2e-03")
    assert (out / "checkpoint-40").exists() and not (out / "final").exists()
    tmkd.training.teachers.train_teacher(crashed, "rte", 2e-3)
    assert "resuming from checkpoint-40" in capsys.readouterr().out
    np.testing.assert_allclose(dev_logits(crashed), dev_logits(plain), atol=1e-5)
    gold = helpers.task_data(plain, "rte")["validation"]["label"]
    assert tmkd.model.method.accuracy(dev_logits(crashed), gold) == tmkd.model.method.accuracy(dev_logits(plain), gold) > 0.7


def test_finished_teacher_is_skipped(teacher_run, capsys):
    tmkd.training.teachers.train_teacher(teacher_run, "rte", teacher_run.teacher_lrs[0])
    assert "finished earlier, skipped" in capsys.readouterr().out


@pytest.mark.slow
def test_incomplete_checkpoint_is_removed_and_an_earlier_one_used(tmp_path, capsys):
    cfg = smoke_config(tmp_path / "run", teacher_lrs=(2e-3,), save_steps=10)
    with pytest.raises(Crash):
        tmkd.training.teachers.train_teacher(cfg, "rte", 2e-3, callbacks=[CrashAfterSave(30)])
    out = tmkd.training.teachers.teacher_dir(cfg, "rte", "teacher-lr2e-03")
    (out / "checkpoint-30" / "model.safetensors").write_bytes(b"\0" * 10)    # a save cut short
    assert tmkd.training.trainer.last_good_checkpoint(out).endswith("checkpoint-20")
    assert "checkpoint-30: model.safetensors unreadable" in capsys.readouterr().out
    assert not (out / "checkpoint-30").exists()


@pytest.mark.slow
def test_checkpoints_on_local_disk_are_synced_to_the_run_directory_and_resume_there(tmp_path, capsys):
    """Colab: checkpoints on the runtime's disk, copied to the run directory in Drive (one per step); a new
    runtime (local disk empty) resumes from the Drive copy and ends where an uninterrupted run ends."""
    import shutil
    plain = smoke_config(tmp_path / "plain", teacher_lrs=(2e-3,))
    drive = smoke_config(tmp_path / "drive", teacher_lrs=(2e-3,), checkpoint_dir=str(tmp_path / "local"),
                         checkpoint_sync_minutes=0, save_steps=20)
    tmkd.training.teachers.train_teacher(plain, "rte", 2e-3)
    with pytest.raises(Crash):
        tmkd.training.teachers.train_teacher(drive, "rte", 2e-3, callbacks=[CrashAfterSave(40)])
    out = tmkd.training.teachers.teacher_dir(drive, "rte", "teacher-lr2e-03")
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-40"]      # one checkpoint per step in Drive
    assert len(list((tmp_path / "local").rglob("checkpoint-*"))) == 2           # save_total_limit locally
    shutil.rmtree(tmp_path / "local")                                            # a new runtime
    tmkd.training.teachers.train_teacher(drive, "rte", 2e-3)
    log = capsys.readouterr().out
    assert "copying checkpoint-40 back from the run directory" in log and "resuming from checkpoint-40" in log
    np.testing.assert_allclose(dev_logits(drive), dev_logits(plain), atol=1e-5)
    assert not list(out.glob("checkpoint-*")) and not list((tmp_path / "local").rglob("checkpoint-*"))


@pytest.mark.slow
def test_early_stopping_student_resumes_to_the_uninterrupted_result_and_keeps_its_best_epoch(tmp_path, capsys):
    """student_patience: each epoch is scored on the select slice; a crash after epoch 2's checkpoint resumes with the
    scores so far, and the kept weights are the best epoch's (the saved model scores the best select accuracy)."""
    import tmkd.training.experiments
    import tmkd.training.students
    runs = {}
    for name in ("plain", "crashed"):
        cfg = smoke_config(tmp_path / name, teacher_lrs=(2e-3,), student_patience=1, student_epochs=6.0)
        spec = tmkd.training.specs.base_spec(cfg, "rte", teachers=(), alpha=0.0)
        if name == "crashed":
            with pytest.raises(Crash):
                tmkd.training.students.train_student(cfg, spec, callbacks=[CrashAfterSave(40)])   # 20 steps per epoch
        tmkd.training.students.train_student(cfg, spec)
        runs[name] = (cfg, spec)
    assert "resuming from checkpoint-40" in capsys.readouterr().out
    curves = {n: tmkd.training.students.select_curve(c, s) for n, (c, s) in runs.items()}
    assert curves["plain"] == curves["crashed"] and len(curves["plain"]) >= 2
    scores = [a for _, a in curves["plain"]]
    best = scores.index(max(scores))
    assert len(scores) == min(6, best + 2)                  # stopped one epoch after the best (patience 1), or at 6
    cfg, spec = runs["plain"]
    model = tmkd.training.students.load_student(cfg, spec)
    select = tmkd.inputs.data.split_dataset(cfg, "rte", "select")
    probs = np.exp(tmkd.training.trainer.predict_logits(model, select))
    assert tmkd.model.method.accuracy(probs, np.asarray(select["label"])) == pytest.approx(max(scores))
    rows = {n: tmkd.training.students.student_rows(c, s, "no_kd") for n, (c, s) in runs.items()}
    assert [r["accuracy"] for r in rows["plain"]] == [r["accuracy"] for r in rows["crashed"]]
    assert rows["plain"][0]["best_epoch"] == curves["plain"][best][0]
    assert not (tmkd.training.students.student_dir(cfg, spec) / "best-select.safetensors").exists()
