"""One writer per run directory: a second writer is refused at once naming the holder; a dead holder's lock is
taken over; a chain's kernels share the chain's lock."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

import tmkd.core.config
import tmkd.training.rundir
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
    held = lock.acquire(tmp_path / "run")
    assert held.path == path
    assert "taking over the lock of a run that is gone" in capsys.readouterr().out
    assert json.loads(path.read_text())["pid"] == os.getpid()
    held.release()
    assert not path.exists()


def test_another_machines_lock_counts_until_its_heartbeat_stops(tmp_path):
    path = write_lock(tmp_path / "run", host="another-colab-runtime", pid=1)
    with pytest.raises(tmkd.core.config.TMKDError, match="in use by another run"):
        lock.acquire(tmp_path / "run")
    old = time.time() - lock.STALE_AFTER_S - 10
    os.utime(path, (old, old))
    held = lock.acquire(tmp_path / "run")
    assert json.loads(path.read_text())["token"] == held.token
    held.release()
    assert not path.exists()


def test_the_chains_kernels_share_its_lock(tmp_path, monkeypatch):
    path = write_lock(tmp_path / "run", token="chain-token")
    monkeypatch.setenv("TMKD_LOCK_TOKEN", "chain-token")
    held = lock.acquire(tmp_path / "run")
    assert held.path == path
    held.release()                                                  # not ours to release: it stays
    assert path.exists()
