"""Shared fixtures: a smoke run with trained teachers and cached logits, the smoke chain run by papermill, and a
stubbed Trainer for tests of the real training path that need no training.

Fast lane: `python -m pytest -q -m "not slow" tests`. A test is slow when it trains for real or runs the chain:
it uses one of SLOW_FIXTURES or carries @pytest.mark.slow."""
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import helpers  # noqa: E402
import tmkd.core.config  # noqa: E402

SLOW_FIXTURES = {"teacher_run", "run_copy", "smoke_chain"}
# The real GLUE files beside the clone (../shared/data/glue); a clone elsewhere (under /tmp, say) has none, and the
# tests that read them say so and skip.
SHARED_GLUE = REPO.parent / "shared" / "data" / "glue"
needs_shared_glue = pytest.mark.skipif(not SHARED_GLUE.exists(), reason=f"no shared GLUE files at {SHARED_GLUE}")


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def smoke_config(run_dir, **overrides):
    return tmkd.core.config.make_config("smoke", run_dir=str(run_dir), **overrides)


@pytest.fixture(scope="session")
def teacher_run(tmp_path_factory):
    """Smoke teachers for every smoke task, their dev metrics and every cached logit file (read-only: copy it)."""
    cfg = smoke_config(tmp_path_factory.mktemp("teachers"))
    helpers.train_teachers(cfg)
    helpers.cache_all_logits(cfg)
    helpers.evaluate_teachers(cfg)
    return cfg


@pytest.fixture
def run_copy(teacher_run, tmp_path):
    """A private copy of the teacher run that a test may change."""
    dest = tmp_path / "run"
    shutil.copytree(teacher_run.run_path, dest)
    return smoke_config(dest)


def run_chain(run_dir, *args, timeout=1800):
    """python run_chain.py --profile smoke --run-dir RUN_DIR ARGS; returns the CompletedProcess."""
    cmd = [sys.executable, str(REPO / "run_chain.py"), "--profile", "smoke", "--run-dir", str(run_dir), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=os.environ | {"PYTHONHASHSEED": "0"})


@pytest.fixture(scope="session")
def smoke_chain(tmp_path_factory):
    """The whole smoke chain, uninterrupted, in a temporary run directory."""
    run = tmp_path_factory.mktemp("chain") / "run"
    proc = run_chain(run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return run, proc


class StubTrainer:
    """What finish_step needs of a Trainer: the (untrained) model saved as it is, an empty log, its output folder."""
    def __init__(self, model, output_dir=""):
        self.model, self.state = model, SimpleNamespace(log_history=[])
        self.args = SimpleNamespace(output_dir=output_dir)

    def save_model(self, folder):
        self.model.save_pretrained(folder)


@pytest.fixture
def stub_training(monkeypatch):
    """Replace the Trainer's training for teachers and students by nothing; returns the list of trained folders
    (one entry per training that would have run), in order."""
    import tmkd.training.students
    import tmkd.training.teachers
    trained = []

    def fit(model, train_ds, out, args, callbacks=(), sync_every_s=0.0):
        assert len(train_ds) > 0
        trained.append(Path(out))
        return StubTrainer(model, args.output_dir)

    monkeypatch.setattr(tmkd.training.teachers, "fit", fit)
    monkeypatch.setattr(tmkd.training.students, "fit", fit)
    return trained


def stub_run(run_dir, **overrides):
    """A smoke configuration on two tasks and two teachers, small enough for stubbed training in seconds."""
    values = dict(tasks=("rte", "qnli"), teacher_lrs=(1e-3, 2e-3), train_size=64, dev_size=32,
                  sweep_layers=(1, 3), sweep_head_layers=(1, 2), alphas=(0.5, 0.7)) | overrides
    return smoke_config(run_dir, **values)
