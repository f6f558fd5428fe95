"""Artifacts are safetensors / npz / json (no pickle), and a truncated marker is detected and rebuilt."""
import re

import pytest

import helpers
import tmkd.core.files
import tmkd.training.rundir
import tmkd.training.teachers
from conftest import REPO, smoke_config


def test_final_folders_hold_no_pickles(smoke_chain):
    run, _ = smoke_chain
    finals = list(run.glob("teachers/*/*/final")) + list(run.glob("students/*/*/final"))
    assert len(finals) > 20
    suffixes = {p.suffix for f in finals for p in f.iterdir()}
    assert suffixes <= {".json", ".safetensors", ".npz"}, suffixes
    for path in run.rglob("*.npz"):
        tmkd.core.files.load_npz(path)                      # allow_pickle=False: an object array would raise


PICKLE_LOADS = [r"\bimport pickle\b", r"\bpickle\.loads?\(", r"torch\.load\((?![^)]*weights_only=True)[^)]*\)",
                r"np\.load\((?![^)]*allow_pickle=False)[^)]*\)", r"\bjoblib\.load\("]


def pickle_loads(source: str) -> list:
    """Every place in `source` that could unpickle a file."""
    return [m.group(0) for pattern in PICKLE_LOADS for m in re.finditer(pattern, source)]


def test_the_pickle_scan_finds_what_it_looks_for():
    planted = "import pickle\nx = torch.load(p)\ny = np.load(f)\nz = pickle.load(f)\n"
    assert len(pickle_loads(planted)) == 4
    assert pickle_loads("torch.load(p, weights_only=True); np.load(f, allow_pickle=False)") == []


def test_code_never_loads_a_pickle():
    files = [REPO / "helpers.py", REPO / "run_chain.py", *sorted((REPO / "tmkd").rglob("*.py")),
             *sorted((REPO / "benchmarks").glob("*.py"))]
    assert len(files) > 10
    found = {f.name: pickle_loads(f.read_text()) for f in files}
    assert not any(found.values()), found


@pytest.mark.slow
def test_truncated_done_marker_is_detected_and_the_teacher_rebuilt(tmp_path, capsys):
    cfg = smoke_config(tmp_path / "run", teacher_lrs=(2e-3,))
    final = tmkd.training.teachers.train_teacher(cfg, "rte", 2e-3)
    weights = (final / "model.safetensors").read_bytes()
    (final / "done.json").write_text('{"spec": "4')              # cut short by a crash
    tmkd.training.teachers.train_teacher(cfg, "rte", 2e-3)
    assert "final model is incomplete or corrupt" in capsys.readouterr().out
    assert helpers.read_json(final / "done.json") is not None
    assert (final / "model.safetensors").read_bytes() == weights   # same seed, same model


def test_truncated_spec_marker_starts_the_step_afresh(tmp_path, capsys):
    out = tmp_path / "step"
    tmkd.training.rundir.claim_step(out, {"a": 1})
    (out / "spec.json").write_text('{"a"')
    assert tmkd.training.rundir.claim_step(out, {"a": 1}) is False
    assert "spec.json is unreadable" in capsys.readouterr().out
    assert helpers.read_json(out / "spec.json") == {"a": 1}


def test_metrics_rows_are_replaced_not_duplicated(tmp_path):
    row = {"task": "rte", "method": "mo1", "model": "rte/x", "split": "validation", "sweep": "", "accuracy": 0.5}
    tmkd.training.rundir.record_metrics(tmp_path, [row])
    tmkd.training.rundir.record_metrics(tmp_path, [row | {"accuracy": 0.75}, row | {"split": "other"}])
    m = helpers.read_metrics(tmp_path)
    assert len(m) == 2 and m[m["split"] == "validation"]["accuracy"].tolist() == [0.75]
    assert not list(tmp_path.glob(".*tmp*"))
    before = (tmp_path / "metrics.csv").read_bytes()
    tmkd.training.rundir.record_metrics(tmp_path, [])        # nothing new (a corpus-size curve whose every size is the corpus)
    assert (tmp_path / "metrics.csv").read_bytes() == before


@pytest.mark.parametrize("folder", [False, True])
def test_an_atomic_write_that_fails_keeps_the_old_version_and_leaves_no_temporary(tmp_path, folder):
    """tmkd.core.files.atomic, the one write path: a reader sees the old file (or folder) or the whole new one."""
    path = tmp_path / ("model" if folder else "model.json")

    def write(text):
        with tmkd.core.files.atomic(path, folder=folder) as tmp:
            (tmp / "weights" if folder else tmp).write_text(text)
            if text == "broken":
                raise RuntimeError("killed mid-write")
    write("old")
    with pytest.raises(RuntimeError, match="killed mid-write"):
        write("broken")
    assert (path / "weights" if folder else path).read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    write("new")
    assert (path / "weights" if folder else path).read_text() == "new" and len(list(tmp_path.iterdir())) == 1
