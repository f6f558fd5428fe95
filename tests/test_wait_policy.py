"""How the chain's kernels wait for work: passively beside other busy processes, the library's default otherwise, and
always what the user set. (Speed itself is measured in benchmarks/, not here.)"""
import os
import signal
import subprocess
import sys
import time

import pytest

import run_chain


def test_passive_only_when_others_are_busy(monkeypatch):
    monkeypatch.setattr(run_chain, "USER_WAIT_POLICY", None)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setattr(run_chain, "others_busy", lambda: False)
    monkeypatch.setattr(run_chain, "other_chains", lambda: False)
    run_chain.wait_policy()
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setattr(run_chain, "other_chains", lambda: True)          # another chain, idle at this moment
    run_chain.wait_policy()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setattr(run_chain, "other_chains", lambda: False)
    run_chain.wait_policy()
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setattr(run_chain, "others_busy", lambda: True)
    run_chain.wait_policy()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_a_policy_the_user_set_is_kept(monkeypatch):
    monkeypatch.setattr(run_chain, "USER_WAIT_POLICY", "ACTIVE")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setattr(run_chain, "others_busy", lambda: True)
    run_chain.wait_policy()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_a_spinning_process_counts_as_busy():
    if not os.path.exists("/proc/stat"):
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert run_chain.others_busy()
    finally:
        spinner.kill()
        spinner.wait()


def test_another_chain_counts_even_while_idle_but_not_this_process_or_its_kernels():
    """Two chains started in the same second each saw the other idle: a running chain counts whether busy or not."""
    if not os.path.exists("/proc/stat"):
        return
    if run_chain.other_chains():
        pytest.skip("a chain or notebook kernel is running on this machine: nothing to compare against")
    own = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "ipykernel_launcher"])
    other = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "import time; time.sleep(30)" run_chain.py & wait'],
                             start_new_session=True)                # a grandchild: another chain's process
    try:
        time.sleep(0.3)
        assert run_chain.other_chains()
        os.killpg(other.pid, signal.SIGKILL)
        other.wait()
        time.sleep(0.1)
        assert not run_chain.other_chains(), "this process's own kernel (a child) counted"
    finally:
        if other.poll() is None:
            os.killpg(other.pid, signal.SIGKILL)
        own.kill()
        own.wait()
        other.wait()
