"""Step identity through the real training path (training stubbed): a changed setting that can change a step's
result either trains the step anew or is refused with a clear message, never reuses the finished step."""
import dataclasses
import shutil

import pytest

import helpers
import tmkd.training.specs
import tmkd.inputs.base_model
import tmkd.core.config
import tmkd.inputs.data
import tmkd.training.experiments
import tmkd.training.identity
import tmkd.training.students
import tmkd.training.teachers
from conftest import stub_run

# A valid value other than stub_run's for every setting. A new Config field fails test_every_setting_has_an_alternate
# until it gets one here, so that the identity tests below cover it.
ALTERNATES = {
    "profile": "offline", "run_dir": "elsewhere", "data_dir": "ANOTHER_GLUE_FOLDER", "tasks": ("rte", "qnli", "mnli"),
    "base_model": "OTHER_BASE", "max_seq_len": 20, "train_size": 48, "dev_size": 24, "seed": 7, "seeds": (5, 6),
    "select_size": 40, "pooling": "mean", "stage1_size": 20, "weak_margin": 0.3, "equivalence_margin": 2.0,
    "teacher_lrs": (1e-3, 3e-3), "teacher_epochs": 2.0, "teacher_batch_size": 8,
    "student_layers": 2, "student_head_layers": 2, "student_init": "random", "student_lr": 1e-3,
    "student_epochs": 2.0, "student_batch_size": 8, "student_patience": 1, "precision": "bf16", "optimizer": "sgd", "alpha": 0.5, "soft_loss": "kl",
    "kd_temperature": 2.0, "sweep_task": "qnli", "sweep_optimizers": ("adamw",), "sweep_head_layers": (1,),
    "sweep_layers": (1,), "stage1_task": "rte", "stage1_corpus": "task", "stage1_pool_tasks": ("qnli", "rte"),
    "stage1_share": 0.2, "side_seeds": 1, "stage1_sizes": (0, 8),
    "stage1_shard_pairs": 1000, "nproc": 2, "student_workers": 2, "stage1_epochs": 2.0, "stage2_task": "rte", "alphas": (0.9,), "warmup": 0.2, "group_by_length": True,
    "checkpoint_dir": "/tmp/local-checkpoints", "checkpoint_sync_minutes": 1.0, "keep_weights": "needed", "check_free_space": False, "save_steps": 3, "logging_steps": 2, "eval_batch_size": 16, "speed_batch_size": 8, "speed_repeats": 1,
}
FIELDS = [f.name for f in dataclasses.fields(tmkd.core.config.Config)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A run whose teachers, logits and students (one stage, stage 1, stage 2) were 'trained' by the stub.
    Its data is the generated data written as a GLUE-layout folder, so that another base model reads the same."""
    import tmkd.training.students
    import tmkd.training.teachers
    from conftest import StubTrainer
    other = tmp_path_factory.mktemp("other")
    write_glue_folder(other / "glue")
    shutil.copytree(other / "glue", other / "glue2")
    tmkd.inputs.base_model.build_smoke_model(other / "base", seed=7)
    mp = pytest.MonkeyPatch()
    for module in (tmkd.training.teachers, tmkd.training.students):
        mp.setattr(module, "fit", lambda model, ds, out, args, callbacks=(), sync_every_s=0: StubTrainer(model, args.output_dir))
    cfg = stub_run(tmp_path_factory.mktemp("identity") / "run", data_dir=str(other / "glue"))
    helpers.train_teachers(cfg)
    for spec in steps(cfg):
        tmkd.training.students.train_student(cfg, spec)
    mp.undo()
    return cfg, {"base_model": str(other / "base"), "data_dir": str(other / "glue2")}


def write_glue_folder(folder):
    for task in ("rte", "qnli"):
        spec = tmkd.core.config.TASKS[task]
        for split, name in (("train", "train.tsv"), ("validation", "dev.tsv")):
            df = tmkd.inputs.data.generate_split(task, split, 200 if split == "train" else 64, 42).rename(columns={
                "text_a": spec.local_columns[0], "text_b": spec.local_columns[1], "label": spec.local_label})
            (folder / spec.folder).mkdir(parents=True, exist_ok=True)
            df.to_csv(folder / spec.folder / name, sep="\t", index=False)


def steps(cfg):
    """One student of each kind: one stage (m-o-1), stage 1 and stage 2 (TMKD)."""
    return [tmkd.training.specs.base_spec(cfg, cfg.sweep_task), tmkd.training.specs.stage1_spec(cfg, "tmkd"), tmkd.training.specs.stage2_spec(cfg, "tmkd")]


def changed(cfg, field, tmp_path, folders):
    run = tmp_path / "run"
    shutil.copytree(cfg.run_path, run)
    value = folders.get(field, ALTERNATES[field])
    new = dataclasses.replace(cfg, run_dir=str(run), **{field: value} if field != "run_dir" else {})
    return dataclasses.replace(new, profile="smoke") if field == "profile" else new


def test_every_setting_has_an_alternate():
    missing = sorted(set(FIELDS) - set(ALTERNATES))
    assert not missing, f"add a valid alternate value for {missing} to ALTERNATES"
    cfg = stub_run("x", data_dir="GLUE_FOLDER")
    for field in FIELDS:
        assert getattr(cfg, field) != ALTERNATES[field], field


@pytest.mark.parametrize("field", FIELDS)
def test_a_changed_setting_never_reuses_a_finished_teacher(field, finished, tmp_path, stub_training, capsys):
    cfg, folders = finished
    if field in tmkd.training.identity.settings_excluded("teacher"):
        pytest.skip(f"{field} cannot change a teacher (identity.settings_excluded)")
    new = changed(cfg, field, tmp_path, folders)
    try:
        tmkd.training.teachers.train_teacher(new, "rte", cfg.teacher_lrs[0])
        assert stub_training, f"{field}: the teacher was neither retrained nor refused"
    except tmkd.core.config.TMKDError as e:
        assert "another configuration" in str(e) and field in str(e), str(e)
    assert "finished earlier, skipped" not in capsys.readouterr().out


@pytest.mark.parametrize("field", FIELDS)
def test_a_changed_setting_never_reuses_a_finished_student(field, finished, tmp_path, stub_training, capsys):
    cfg, folders = finished
    new = changed(cfg, field, tmp_path, folders)
    checked = 0
    for kind, spec in zip(("student", "stage1", "stage2"), ("one stage", "stage 1", "stage 2")):
        if field in tmkd.training.identity.settings_excluded(kind):
            continue
        checked += 1
        before = len(stub_training)
        try:
            tmkd.training.students.train_student(new, steps(new)[("student", "stage1", "stage2").index(kind)])
            assert len(stub_training) == before + 1, f"{field}: {spec} student neither retrained nor refused"
        except tmkd.core.config.TMKDError as e:
            assert "another configuration" in str(e) or "not finished" in str(e) or "not trained" in str(e), str(e)
        assert "finished earlier, skipped" not in capsys.readouterr().out, f"{field}: {kind} reused"
    if not checked:
        pytest.skip(f"{field} cannot change any student (identity.settings_excluded)")


def test_unchanged_settings_reuse_every_finished_step(finished, tmp_path, stub_training, capsys):
    cfg, folders = finished
    new = changed(cfg, "speed_repeats", tmp_path, folders)      # a setting that changes no result
    tmkd.training.teachers.train_teacher(new, "rte", cfg.teacher_lrs[0])
    for spec in steps(cfg):
        tmkd.training.students.train_student(new, spec)
    assert not stub_training
    assert capsys.readouterr().out.count("finished earlier, skipped") == 4


def test_excluded_settings_each_have_a_reason():
    from tmkd.training.identity import NO_EFFECT, SELECTION
    for reasons in (NO_EFFECT, SELECTION):
        assert all(isinstance(r, str) and len(r) > 10 for r in reasons.values())
        assert set(reasons) <= set(FIELDS)
    assert tmkd.training.identity.settings_excluded("stage2") < tmkd.training.identity.settings_excluded("student")   # stage 2 sees stage 1's


def test_step_specs_differ_by_seed():
    cfg = stub_run("x")
    a, b = tmkd.training.specs.base_spec(cfg, "rte"), tmkd.training.specs.base_spec(cfg, "rte", seed=7)
    assert a.name != b.name and a.name.endswith("-s42") and b.name.endswith("-s7")


def test_a_split_is_identified_by_its_inputs(tmp_path):
    """What a teacher, a logit file and a student's predictions are keyed on: the same split of the same data in
    another run directory (a copied run keeps its caches), another for another split, task, data setting or
    stage-1 size; computed from the settings, before (and without) any data is built."""
    key = tmkd.inputs.data.split_fingerprint
    cfg = stub_run(tmp_path / "a")
    same = stub_run(tmp_path / "b")
    assert key(cfg, "rte", "train") == key(same, "rte", "train")
    others = {key(cfg, "rte", "select"), key(cfg, "qnli", "train"), key(stub_run(tmp_path / "a", dev_size=24), "rte", "train"),
              key(cfg, "rte", "stage1"), key(stub_run(tmp_path / "a", stage1_size=20), "rte", "stage1")}
    assert len(others | {key(cfg, "rte", "train")}) == 6
    assert not (tmp_path / "a" / "data").exists()


def test_a_script_prints_each_reused_step_and_a_chapter_one_line_per_cell(capsys):
    """Outside a chapter every reused step is one progress line; a chapter (collect_reuse, as start_chapter sets up)
    counts them and each cell ends with one summary line, the count starting afresh after it."""
    import logging

    from tmkd.training.rundir import REUSE_LOGGER, collect_reuse, note_reused
    note_reused("student", "rte/a")
    assert capsys.readouterr().out.count("= rte/a: finished earlier, skipped") == 1
    log = collect_reuse()
    try:
        for kind, name in (("student", "rte/a"), ("teacher", "rte/t"), ("student", "rte/b")):
            note_reused(kind, name)
        assert "skipped" not in capsys.readouterr().out
        assert log.summary() == "2 students and 1 teacher finished earlier, reused"
        assert log.summary() == ""
    finally:
        logging.getLogger(REUSE_LOGGER).removeHandler(log)
    note_reused("teacher", "rte/t")
    assert "= rte/t: finished earlier, skipped" in capsys.readouterr().out
    foreign = logging.NullHandler()              # a host's handler (pytest's log capture attaches its own) is no chapter
    logging.getLogger(REUSE_LOGGER).addHandler(foreign)
    try:
        note_reused("teacher", "rte/t")
        assert "= rte/t: finished earlier, skipped" in capsys.readouterr().out
    finally:
        logging.getLogger(REUSE_LOGGER).removeHandler(foreign)
