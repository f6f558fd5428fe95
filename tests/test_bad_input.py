"""Bad input is refused with a message that names the problem and the fix, and writes nothing."""

import json

import numpy as np
import pytest
import torch

import helpers
import tmkd.training.specs
import tmkd.inputs.base_model
import tmkd.core.config
import tmkd.training.rundir
import tmkd.training.students
from conftest import REPO, run_chain, smoke_config
from test_data import write_tsv

RTE_HEADER = ["index", "sentence1", "sentence2", "label"]


def rte_folder(tmp_path, train_rows=None, dev=True, header=RTE_HEADER):
    d = tmp_path / "glue"
    write_tsv(d / "RTE" / "train.tsv", header, train_rows or [["0", "p", "h", "entailment"]])
    if dev:
        write_tsv(d / "RTE" / "dev.tsv", header, [["0", "p", "h", "not_entailment"]])
    return d


def assert_refused(cfg, match):
    with pytest.raises(tmkd.core.config.TMKDError, match=match):
        helpers.task_data(cfg, "rte")
    assert not (cfg.run_path / "data").exists() or not any((cfg.run_path / "data").iterdir())


def test_unknown_profile_and_task():
    with pytest.raises(tmkd.core.config.TMKDError, match="unknown profile 'fast'.*choose one of"):
        tmkd.core.config.make_config("fast")
    with pytest.raises(tmkd.core.config.TMKDError, match=r"tasks='cola' is not one of \['rte', 'qnli', 'mnli', 'snli'\]"):
        tmkd.core.config.make_config("smoke", tasks=("cola",))


def test_unknown_setting_and_alpha_outside_unit_interval():
    with pytest.raises(tmkd.core.config.TMKDError, match="unknown setting.*teacher_lr'"):
        tmkd.core.config.make_config("smoke", teacher_lr=1e-3)
    with pytest.raises(tmkd.core.config.TMKDError, match=r"alpha=1.5 is outside \[0, 1\]"):
        tmkd.core.config.make_config("smoke", alpha=1.5)
    with pytest.raises(tmkd.core.config.TMKDError, match=r"alphas=-0.1 is outside \[0, 1\]"):
        tmkd.core.config.make_config("smoke", alphas=(0.5, -0.1))


def test_offline_profile_without_data_dir():
    with pytest.raises(tmkd.core.config.TMKDError, match="pass --data-dir"):
        tmkd.core.config.make_config("offline")


def test_data_dir_missing_a_split(tmp_path):
    cfg = smoke_config(tmp_path / "run", data_dir=str(rte_folder(tmp_path, dev=False)))
    assert_refused(cfg, r"no validation file in .*RTE \(looked for dev.tsv\)")


def test_data_dir_missing_a_column(tmp_path):
    d = rte_folder(tmp_path, header=["index", "premise", "sentence2", "label"])
    cfg = smoke_config(tmp_path / "run", data_dir=str(d))
    assert_refused(cfg, r"missing column\(s\) \['sentence1'\]")


def test_labels_outside_the_task_label_set(tmp_path):
    d = rte_folder(tmp_path, train_rows=[["0", "p", "h", "entailment"], ["1", "p", "h", "neutral"]])
    cfg = smoke_config(tmp_path / "run", data_dir=str(d))
    assert_refused(cfg, r"label\(s\) \['neutral'\] are not in rte's label set")


def test_empty_split_after_filtering(tmp_path):
    d = rte_folder(tmp_path, train_rows=[["0", "p", "h", "-"], ["1", "p", "h", ""]])
    cfg = smoke_config(tmp_path / "run", data_dir=str(d))
    assert_refused(cfg, "no examples left after dropping rows without a gold label")


def test_teachers_of_another_label_set():
    with pytest.raises(tmkd.core.config.TMKDError, match="teacher labels .* differ from the task's"):
        helpers.align_labels(np.zeros((2, 3)), ["entailment", "neutral", "contradiction"],
                             ["entailment", "not_entailment"])


def test_student_heads_must_match_the_number_of_cached_teachers(teacher_run):
    base = tmkd.inputs.base_model.base_model_path(teacher_run)
    student = tmkd.training.students.build_student(base, 1, 3, tmkd.core.config.TASKS["rte"].labels)
    batch = {"input_ids": torch.tensor([[2, 5, 3]]), "labels": torch.tensor([0]),
             "teacher_logits": torch.zeros(1, 2, 2)}
    with pytest.raises(ValueError, match="2 cached teachers but the student has 3 soft heads"):
        student(**batch)


def test_student_vocabulary_must_be_the_teachers(teacher_run, tmp_path):
    from transformers import BertConfig, BertModel
    other = tmp_path / "other-vocab"
    BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(str(other))
    student = tmkd.training.students.build_student(other, 1, 3, tmkd.core.config.TASKS["rte"].labels)
    with pytest.raises(tmkd.core.config.TMKDError, match="student vocabulary \\(50 tokens\\) differs from teacher"):
        tmkd.training.students.check_vocabulary(teacher_run, student, "rte", helpers.teacher_names(teacher_run))


def test_run_dir_with_another_configuration_is_refused_unless_forced(run_copy):
    changed = tmkd.core.config.make_config("smoke", run_dir=str(run_copy.run_path), teacher_epochs=1)
    with pytest.raises(tmkd.core.config.TMKDError, match=r"holds a run with another configuration \(teacher_epochs: 4.0 -> 1.0\)"):
        tmkd.training.rundir.check_run_dir(changed)
    tmkd.training.rundir.check_run_dir(changed, force=True)      # --force takes the directory over
    assert helpers.read_json(run_copy.run_path / "run.json")["teacher_epochs"] == 1


def test_run_chain_refuses_bad_input_with_exit_code_2(tmp_path):
    proc = run_chain(tmp_path / "run", "--only", "42")
    assert proc.returncode == 2 and "--only ['42']: no such chapter" in proc.stderr
    import subprocess
    import sys
    bad = subprocess.run([sys.executable, str(REPO / "run_chain.py"), "--profile", "nope"], cwd=REPO,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown profile 'nope'" in bad.stderr


def test_results_of_a_student_that_is_not_trained_name_the_chapter_that_trains_it(tmp_path):
    """Chapter 06 at alpha = 1 compares TMKD with the one-stage m-o-1 at alpha = 1; asked before chapter 04 trained
    it, the reader is told which student is missing and which chapter makes it (not a Hub error about a repo id)."""
    import tmkd.training.experiments
    cfg = smoke_config(tmp_path / "run", alpha=1.0)
    spec = tmkd.training.specs.method_specs(cfg, "qnli", "mo1")[0]
    with pytest.raises(tmkd.core.config.TMKDError, match=r"qnli/mo1-k3-a1-s42 is not trained .* \(04: the one-stage"):
        tmkd.training.students.student_predictions(cfg, spec, "validation")


def test_a_run_directory_of_an_older_format_is_refused_with_its_format_and_what_to_do(tmp_path):
    """A run directory written before the current format (run.json without "format") is refused, never read through
    compatibility code; --force recomputes in it. run.json records the library versions each start ran with."""
    from tmkd.training.rundir import RUN_FORMAT, check_run_dir, library_versions
    cfg = smoke_config(tmp_path / "run")
    check_run_dir(cfg)
    ident = helpers.read_json(cfg.run_path / "run.json")
    assert ident["format"] == RUN_FORMAT and ident["versions"] == [library_versions()]
    assert {"python", "torch", "transformers", "datasets", "accelerate"} <= set(ident["versions"][0])
    check_run_dir(cfg)                                                        # the same run: accepted, unchanged
    assert helpers.read_json(cfg.run_path / "run.json") == ident
    old = {k: v for k, v in ident.items() if k not in ("format", "versions")}
    (cfg.run_path / "run.json").write_text(json.dumps(old))
    with pytest.raises(tmkd.core.config.TMKDError, match=rf"format 1; this code reads format {RUN_FORMAT} only. "
                                                         r"Use a new --run-dir, or --force"):
        check_run_dir(cfg)
    check_run_dir(cfg, force=True)
    assert helpers.read_json(cfg.run_path / "run.json") == ident
