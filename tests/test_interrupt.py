"""A chain killed with SIGKILL at several points is finished by re-running the same command, and its metrics
equal those of an uninterrupted run."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd

import helpers
import tmkd.training.rundir
from conftest import REPO

KILL_POINTS = [   # (what is happening, a file that shows it is happening now)
    ("teacher training", lambda run: any(run.glob("teachers/qnli/*/checkpoint-*"))),
    ("logit caching", lambda run: any(run.glob("logits/rte/*/train.npz"))),
    ("between chapters", lambda run: (run / "executed" / "03_student_sweeps.done.json").exists()),
    ("student training", lambda run: any(run.glob("students/qnli/*/checkpoint-*"))),
    ("stage 1", lambda run: any(run.glob("students/rte/*-stage1-*/checkpoint-*"))),
    ("stage 2", lambda run: any(run.glob("students/qnli/t*kd-k*/checkpoint-*"))),
]


def start_chain(run):
    cmd = [sys.executable, str(REPO / "run_chain.py"), "--profile", "smoke", "--run-dir", str(run)]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=os.environ | {"PYTHONHASHSEED": "0"})


def kill_when(run, happening, timeout=600):
    """Start the chain and SIGKILL its whole process group as soon as `happening(run)` is true."""
    proc = start_chain(run)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if happening(run):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.wait()
    return False


def comparable(metrics):
    return metrics.sort_values(list(tmkd.training.rundir.METRIC_KEY)).reset_index(drop=True)


def test_chain_killed_at_many_points_ends_like_an_uninterrupted_run(smoke_chain, tmp_path):
    reference, _ = smoke_chain
    run = tmp_path / "run"
    killed = [name for name, happening in KILL_POINTS if kill_when(run, happening)]
    assert len(killed) >= 4, f"killed only during {killed}"
    final = subprocess.run([sys.executable, str(REPO / "run_chain.py"), "--profile", "smoke", "--run-dir", str(run)],
                           cwd=REPO, capture_output=True, text=True, env=os.environ | {"PYTHONHASHSEED": "0"})
    assert final.returncode == 0, final.stderr[-3000:]
    got, want = comparable(helpers.read_metrics(run)), comparable(helpers.read_metrics(reference))
    pd.testing.assert_frame_equal(got, want)
