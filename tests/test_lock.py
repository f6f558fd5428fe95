"""One writer per run directory: a second writer is refused at once naming the holder; a dead holder's lock is
taken over; a chain's kernels share the chain's lock."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

import helpers
import tmkd.core.config
import tmkd.training.rundir
from conftest import REPO
from tmkd.core import lock


def write_lock(run, **holder):
    run.mkdir(parents=True, exist_ok=True)
    info = {"token": "someone-else", "host": socket.gethostname(), "pid": os.getppid(), "what": "run_chain.py",
            "started": "2026-11-28T03:00:00+00:00"} | holder
    (run / lock.LOCK_NAME).write_text(json.dumps(info))
    return run / lock.LOCK_NAME


def test_a_lock_still_being_written_is_read_again_and_its_holder_named(tmp_path):
    """Two chains started together: the second found the first's lock created but still empty and named the holder
    'pid None on None'. It now reads the lock again until its content is there."""
    import threading
    run = tmp_path / "run"
    run.mkdir()
    (run / lock.LOCK_NAME).write_text("")                            # created, content not yet written
    later = threading.Timer(0.3, lambda: write_lock(run))
    later.start()
    try:
        with pytest.raises(tmkd.core.config.TMKDError, match=rf"in use by another run: run_chain.py \(pid {os.getppid()} on"):
            lock.acquire(run)
    finally:
        later.join()


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    write_lock(tmp_path / "run")                                     # held by a live process (our parent)
    with pytest.raises(tmkd.core.config.TMKDError, match=rf"in use by another run: run_chain.py \(pid {os.getppid()} on "
                                                rf"{socket.gethostname()}, started 2026-11-28T03:00:00\+00:00\)"):
        lock.acquire(tmp_path / "run")


def test_a_dead_holders_lock_is_taken_over(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = write_lock(tmp_path / "run", pid=dead.pid)
    assert lock.acquire(tmp_path / "run") == path
    assert "taking over the lock of a run that is gone" in capsys.readouterr().out
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release(tmp_path / "run")
    assert not path.exists()


def test_another_machines_lock_counts_until_its_heartbeat_stops(tmp_path):
    path = write_lock(tmp_path / "run", host="another-colab-runtime", pid=1)
    with pytest.raises(tmkd.core.config.TMKDError, match="in use by another run"):
        lock.acquire(tmp_path / "run")
    old = time.time() - lock.STALE_AFTER_S - 10
    os.utime(path, (old, old))
    lock.acquire(tmp_path / "run")
    lock.release(tmp_path / "run")


def test_the_chains_kernels_share_its_lock(tmp_path, monkeypatch):
    path = write_lock(tmp_path / "run", token="chain-token")
    monkeypatch.setenv("TMKD_LOCK_TOKEN", "chain-token")
    assert lock.acquire(tmp_path / "run") == path
    lock.release(tmp_path / "run")                                  # not ours to release: it stays
    assert path.exists()


def start(run, *args):
    cmd = [sys.executable, str(REPO / "run_chain.py"), "--profile", "smoke", "--run-dir", str(run), *args]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=os.environ | {"PYTHONHASHSEED": "0"})


def comparable(metrics):
    return metrics.sort_values(list(tmkd.training.rundir.METRIC_KEY)).reset_index(drop=True)


@pytest.mark.slow
def test_two_chains_on_one_run_directory(smoke_chain, tmp_path):
    run = tmp_path / "run"
    first, second = start(run), start(run)
    t0 = time.time()
    while first.poll() is None and second.poll() is None:
        assert time.time() - t0 < 60, "neither chain was refused within a minute"
        time.sleep(0.2)
    refused, winner = (first, second) if first.poll() is not None else (second, first)
    out, err = refused.communicate()
    assert refused.returncode == 2 and "is in use by another run: run_chain.py --profile smoke (pid" in err, err
    assert err.count("\n") == 1 and time.time() - t0 < 30
    out, err = winner.communicate(timeout=1800)
    assert winner.returncode == 0, err[-2000:]
    assert not (run / lock.LOCK_NAME).exists()                      # released at the end
    pd.testing.assert_frame_equal(comparable(helpers.read_metrics(run)), comparable(helpers.read_metrics(smoke_chain[0])))


@pytest.mark.slow
def test_ctrl_c_stops_promptly_and_the_same_command_finishes(smoke_chain, tmp_path):
    run = tmp_path / "run"
    chain = start(run)
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
    again = start(run)
    out, err = again.communicate(timeout=1800)
    assert again.returncode == 0, err[-2000:]
    pd.testing.assert_frame_equal(comparable(helpers.read_metrics(run)), comparable(helpers.read_metrics(smoke_chain[0])))
