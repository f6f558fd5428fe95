"""How the chain's kernels wait for work: passively beside other busy processes, the library's default otherwise, and
always what the user set. (Speed itself is measured in benchmarks/, not here.)"""
import os
import subprocess
import sys
import time

import run_chain


def test_passive_only_when_others_are_busy(monkeypatch):
    monkeypatch.setattr(run_chain, "USER_WAIT_POLICY", None)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setattr(run_chain, "others_busy", lambda: False)
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
