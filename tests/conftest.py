"""Shared fixtures: a smoke run with trained teachers and cached logits, and the smoke chain run by papermill."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import helpers  # noqa: E402


def smoke_config(run_dir, **overrides):
    return helpers.make_config("smoke", run_dir=str(run_dir), **overrides)


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


def run_chain(run_dir, *args, timeout=900):
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
