"""Settings from the command line, a JSON file or a chapter's OVERRIDES: one parser and one validation, the
Config's own, with help taken from where each field is documented; bad input refused before anything runs."""
import dataclasses
import json
import os
import time

import pytest

import helpers
import tmkd.core.config
import run_chain
from tmkd.core.config import coerce
from test_data import write_tsv

FIELDS = dataclasses.fields(tmkd.core.config.Config)


def as_text(value):
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


@pytest.mark.parametrize("profile", sorted(tmkd.core.config.PROFILES))
def test_every_setting_round_trips_through_its_text_form(profile):
    cfg = tmkd.core.config.make_config(profile, data_dir="/data" if profile == "offline" else "")
    for f in FIELDS:
        value = getattr(cfg, f.name)
        if value == () or f.name in ("run_dir", "data_dir"):
            continue
        assert coerce(f.name, as_text(value)) == value, f.name
        assert coerce(f.name, value) == value, f.name


def test_overrides_however_papermill_passed_them():
    as_json = tmkd.core.config.make_config("smoke", '{"teacher_lrs": [2e-5, 3e-5], "teacher_epochs": "1"}')
    as_yaml_strings = tmkd.core.config.make_config("smoke", {"teacher_lrs": "2e-5,3e-5", "teacher_epochs": "1"})
    as_values = tmkd.core.config.make_config("smoke", {"teacher_lrs": [2e-5, 3e-5], "teacher_epochs": 1})
    assert as_json == as_yaml_strings == as_values
    assert as_values.teacher_lrs == (2e-5, 3e-5) and as_values.teacher_epochs == 1.0
    single = tmkd.core.config.make_config("smoke", {"tasks": "rte", "sweep_task": "rte", "stage1_task": "rte",
                                           "stage2_task": "rte"})
    assert single.tasks == ("rte",)                    # not ('r', 't', 'e')
    assert tmkd.core.config.make_config("smoke", "") == tmkd.core.config.make_config("smoke", None) == tmkd.core.config.Config()


@pytest.mark.parametrize("key, value, message", [
    ("seed", "x", r"seed='x' is not a whole number"),
    ("teacher_epochs", 0, r"teacher_epochs=0 must be >= 0.01"),
    ("student_lr", -1, r"student_lr=-1 is outside \[1e-08, 1\]"),
    ("max_seq_len", 0, r"max_seq_len=0 is outside \[8, 512\]"),
    ("student_layers", 2.5, r"student_layers=2.5 is not a whole number"),
    ("teacher_lrs", "2e-5,x", r"teacher_lrs='x' is not a number"),
    ("tasks", "rte,cola", r"tasks='cola' is not one of"),
    ("group_by_length", "maybe", r"group_by_length='maybe' is not true or false"),
    ("optimizer", "adam", r"optimizer='adam' is not one of \['adamw', 'sgd'\]"),
    ("teacher_lr", 1e-3, r"unknown setting 'teacher_lr': valid ones are \['alpha', 'alphas'"),
])
def test_bad_values_are_refused_naming_the_setting(key, value, message):
    with pytest.raises(tmkd.core.config.TMKDError, match=message):
        tmkd.core.config.make_config("smoke", {key: value})


def test_overrides_that_are_not_a_mapping():
    with pytest.raises(tmkd.core.config.TMKDError, match="not a JSON object"):
        tmkd.core.config.make_config("smoke", "{teacher_epochs: 1}")
    with pytest.raises(tmkd.core.config.TMKDError, match="must be a mapping"):
        tmkd.core.config.make_config("smoke", "[1, 2]")


def test_set_and_config_file(tmp_path):
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({"teacher_epochs": 2, "tasks": ["rte", "qnli"], "sweep_task": "qnli"}))
    got = run_chain.parse_settings(["teacher_epochs=1", "teacher_lrs=1e-3,2e-3"], str(settings))
    assert got == {"teacher_epochs": 1.0, "tasks": ("rte", "qnli"), "sweep_task": "qnli", "teacher_lrs": (1e-3, 2e-3)}
    with pytest.raises(tmkd.core.config.TMKDError, match="write KEY=VALUE"):
        run_chain.parse_settings(["teacher_epochs"], "")
    with pytest.raises(tmkd.core.config.TMKDError, match="use --run-dir"):
        run_chain.parse_settings(["run_dir=/x"], "")


def test_help_documents_every_setting_from_its_field(capsys):
    with pytest.raises(SystemExit):
        run_chain.main(["--help"])
    out = capsys.readouterr().out
    for f in FIELDS:
        assert f"  {f.name} ({f.type}, default " in out and f.metadata["help"][:30] in out, f.name


def refused(capsys, argv, message, run=None):
    t0 = time.time()
    assert run_chain.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and err.count("\n") == 1, err
    assert time.time() - t0 < 5
    if run is not None:
        assert not run.exists(), "a refused chain wrote to its run directory"
    return err


def glue_with(tmp_path, train_bytes=None, dev=True):
    d = tmp_path / "glue"
    header = ["index", "sentence1", "sentence2", "label"]
    for task in ("RTE", "QNLI"):
        cols = header if task == "RTE" else ["index", "question", "sentence", "label"]
        write_tsv(d / task / "train.tsv", cols, [["0", "a", "b", "entailment"], ["1", "c", "d", "not_entailment"]])
        if dev:
            write_tsv(d / task / "dev.tsv", cols, [["0", "a", "b", "entailment"]])
    if train_bytes is not None:
        (d / "RTE" / "train.tsv").write_bytes(train_bytes)
    return d


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary", "RTE/train.tsv, line 1: bytes that are not UTF-8 text"),
    (b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\n",
     "RTE/train.tsv, line 3: 3 tab-separated fields where the header has 4"),
    (b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\t0\n1\ta\tb\t1\n",
     "RTE/train.tsv, line 2: label(s) ['0', '1'] are not in rte's label set ['entailment', 'not_entailment']. "
     "These look like label ids"),
    (b"index\tpremise\tsentence2\tlabel\n0\ta\tb\tentailment\n", "missing column(s) ['sentence1']"),
])
def test_bad_data_is_refused_before_any_chapter_starts(tmp_path, capsys, content, message):
    run = tmp_path / "run"
    refused(capsys, ["--profile", "offline", "--set", "tasks=rte,qnli", "--data-dir", str(glue_with(tmp_path, content)),
                     "--run-dir", str(run)], message, run)


def test_a_missing_split_is_refused_before_any_chapter_starts(tmp_path, capsys):
    run = tmp_path / "run"
    refused(capsys, ["--profile", "offline", "--set", "tasks=rte,qnli", "--data-dir", str(glue_with(tmp_path, dev=False)),
                     "--run-dir", str(run)], "rte: no validation file in", run)


def test_run_dir_that_is_a_file_or_not_writable(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    refused(capsys, ["--profile", "smoke", "--run-dir", str(f)], "is a file: choose a folder")
    refused(capsys, ["--profile", "smoke", "--run-dir", str(f / "run")], "is not writable")
    if os.geteuid() != 0:                      # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        refused(capsys, ["--profile", "smoke", "--run-dir", str(ro / "run")], "is not writable")


def test_settings_reach_every_chapter_as_overrides_and_the_run_records_them(tmp_path, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(run_chain, "run_chapter", lambda nb, executed, parameters: seen.append((nb.stem, parameters)))
    run = tmp_path / "run"
    argv = ["--profile", "smoke", "--run-dir", str(run), "--set", "teacher_epochs=1", "--set", "tasks=rte,qnli",
            "--only", "02", "03"]
    assert run_chain.main(argv) == 0
    assert [name for name, _ in seen] == ["02_teacher_logits", "03_student_sweeps"]
    for _, parameters in seen:
        assert parameters["OVERRIDES"] == {"teacher_epochs": 1.0, "tasks": ["rte", "qnli"]}
        assert tmkd.core.config.make_config("smoke", parameters["OVERRIDES"]).tasks == ("rte", "qnli")
    assert helpers.read_json(run / "chain.json")["overrides"] == {"teacher_epochs": 1.0, "tasks": ["rte", "qnli"]}
    assert helpers.read_json(run / "run.json")["teacher_epochs"] == 1.0
    assert not (run / ".lock.json").exists()
    out = capsys.readouterr().out
    assert "[1/2] 02_teacher_logits: running ... done in" in out and "chain finished in" in out
