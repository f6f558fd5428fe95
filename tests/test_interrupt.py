"""One chain's whole life, against an uninterrupted smoke chain: started twice on one run directory (the second is
refused at once, naming the holder), stopped with Ctrl-C (promptly, without a traceback, its lock released), killed
with SIGKILL at several points (each time re-run with the same command), run with two student workers throughout;
it ends with the metrics of the uninterrupted run, to the last digit. It keeps only the weights a later chapter reads
(keep_weights="needed", where the uninterrupted run keeps all): the same metrics, every model's weights gone by the
end and recorded, and a second run skips every chapter. (Issue 42 merged four chains into this one: tests/test_lock.py's
two-chains and Ctrl-C tests and tests/test_pool.py's two-workers chain; every assertion kept.)"""
import os
import signal
import subprocess
import sys
import time

import pandas as pd

import helpers
import tmkd.training.rundir
from tmkd.core import lock
from conftest import REPO, run_chain

KILL_POINTS = [   # (what is happening, a file that shows it is happening now)
    ("teacher training", lambda run: any(run.glob("teachers/qnli/*/checkpoint-*"))),
    ("logit caching", lambda run: any(run.glob("logits/rte/*/train.npz"))),
    ("between chapters", lambda run: (run / "executed" / "03_student_sweeps.done.json").exists()),
    ("student training", lambda run: any(run.glob("students/qnli/*/checkpoint-*"))),
    ("stage 1", lambda run: any(run.glob("students/rte/*-stage1-*/checkpoint-*"))),
    ("stage 2", lambda run: any(run.glob("students/qnli/t*kd-k*/checkpoint-*"))),
]


# Neither the workers nor the weights policy is part of any identity: the run is the same run.
WORKERS = ("--set", "student_workers=2", "--set", "keep_weights=needed")


def start_chain(run, pipe=False):
    cmd = [sys.executable, str(REPO / "run_chain.py"), "--profile", "smoke", "--run-dir", str(run), *WORKERS]
    out = subprocess.PIPE if pipe else subprocess.DEVNULL
    return subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=out, text=True, start_new_session=True,
                            env=os.environ | {"PYTHONHASHSEED": "0"})


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


def two_chains_one_refused(run):
    """Two chains started together on one run directory: one is refused within seconds, naming the holder; the other
    goes on (returned)."""
    first, second = start_chain(run, pipe=True), start_chain(run, pipe=True)
    t0 = time.time()
    while first.poll() is None and second.poll() is None:
        assert time.time() - t0 < 60, "neither chain was refused within a minute"
        time.sleep(0.2)
    refused, winner = (first, second) if first.poll() is not None else (second, first)
    out, err = refused.communicate()
    assert refused.returncode == 2 and "is in use by another run: run_chain.py --profile smoke (pid" in err, err
    assert err.count("\n") == 1 and time.time() - t0 < 30
    return winner


def ctrl_c_during_teacher_training(run, chain):
    """Ctrl-C (SIGINT to the process group) while a teacher trains: the chain stops within 30 s, says how to go on,
    prints no traceback and releases its lock."""
    t0 = time.time()
    while not any(run.glob("teachers/qnli/*/checkpoint-*")):
        assert chain.poll() is None and time.time() - t0 < 900
        time.sleep(0.05)
    os.killpg(chain.pid, signal.SIGINT)                              # what Ctrl-C in a terminal sends
    t1 = time.time()
    out, err = chain.communicate(timeout=60)
    assert chain.returncode == 130 and time.time() - t1 < 30
    assert "interrupted" in err and "run the same command again to continue" in err
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    assert not (run / lock.LOCK_NAME).exists()


def test_a_chain_refused_stopped_and_killed_at_many_points_ends_like_an_uninterrupted_run(smoke_chain, tmp_path):
    reference, _ = smoke_chain
    run = tmp_path / "run"
    ctrl_c_during_teacher_training(run, two_chains_one_refused(run))
    killed = [name for name, happening in KILL_POINTS if kill_when(run, happening)]
    assert len(killed) >= 4, f"killed only during {killed}"
    final = start_chain(run, pipe=True)
    out, err = final.communicate(timeout=1800)
    assert final.returncode == 0, err[-3000:]
    assert not (run / lock.LOCK_NAME).exists()                      # released at the end
    got, want = comparable(helpers.read_metrics(run)), comparable(helpers.read_metrics(reference))
    pd.testing.assert_frame_equal(got, want)
    assert len(want) > 100 and got["accuracy"].tolist() == want["accuracy"].tolist()   # to the last digit
    logs = "".join(p.read_text() for p in (run / "executed").glob(".*.progress.log"))
    assert "students on 2 processes x 1 thread(s)" in logs                 # the live run's log, not the chapters
    assert not any("processes x" in p.read_text() for p in (run / "executed").glob("*.ipynb"))
    weights_removed_like_the_reference_kept_them(run, reference)
    again = run_chain(run, *WORKERS)
    assert again.returncode == 0 and again.stdout.count("done earlier, skipped") == 8, again.stdout + again.stderr


def weights_removed_like_the_reference_kept_them(run, reference):
    """keep_weights="needed": by the end no model keeps its weights (the pre-trained bases are inputs, not models),
    and each one's removal records the size of the weights the uninterrupted run kept for the same model."""
    def models(root, name):
        return {p.parent.relative_to(root): p for p in root.rglob(name) if p.parent.name == "final"}
    kept, removed = models(reference, "model.safetensors"), models(run, tmkd.training.rundir.REMOVED)
    assert not models(run, "model.safetensors")
    assert len(kept) > 80 and set(removed) == set(kept)
    assert {k: helpers.read_json(p)["weights_bytes"] for k, p in removed.items()} == \
        {k: p.stat().st_size for k, p in kept.items()}
