"""Students side by side (student_workers, tmkd.training.pool): the same students and rows as one at a time, nothing counted
as reused that was just trained, a worker's failure raised with its message, and refused where it cannot apply."""
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import helpers
import tmkd.core.config
import tmkd.training.experiments
import tmkd.training.identity
import tmkd.training.pool
import tmkd.training.rundir
import tmkd.training.students
from conftest import REPO, smoke_config


def test_workers_beside_several_processes_per_step_are_refused(tmp_path):
    with pytest.raises(tmkd.core.config.TMKDError, match="student_workers=2 and nproc=2: set one to 1"):
        smoke_config(tmp_path, nproc=2, student_workers=2)


def test_workers_are_not_part_of_any_identity(tmp_path):
    one, two = smoke_config(tmp_path), smoke_config(tmp_path, student_workers=2)
    for step in ("run", "teacher", "student", "stage1", "stage2"):
        assert "student_workers" in tmkd.training.identity.settings_excluded(step)
    assert tmkd.training.identity.identity(one, "run") == tmkd.training.identity.identity(two, "run")


def test_worker_count_never_exceeds_the_students_and_is_one_on_a_gpu(tmp_path, monkeypatch, capsys):
    import torch
    cfg = smoke_config(tmp_path, student_workers=3)
    assert [tmkd.training.pool.worker_count(cfg, n) for n in (0, 1, 2, 5)] == [1, 1, 2, 3]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert tmkd.training.pool.worker_count(cfg, 5) == 1
    assert "on a GPU the students train one at a time" in capsys.readouterr().out


def test_a_workers_output_keeps_its_lines_and_drops_the_trainers_loss_logs():
    class Box(list):
        put = list.append
    box = Box()
    out = tmkd.training.pool._Lines(box)
    out.write("> qnli/mo1-k3-a0.7-s42: 800 examples\n{'loss': '0.69', 'epoch': '0.5'}\n  kept ep")
    out.write("och 2\n")
    assert box == ["> qnli/mo1-k3-a0.7-s42: 800 examples", "  kept epoch 2"]


def test_the_last_busy_worker_takes_every_core(monkeypatch):
    """Two workers on 2 cores train with one thread each; when one has no student left, the other widens to both
    cores at its next step (and narrows again if a second one were busy)."""
    import torch
    monkeypatch.setattr(tmkd.training.pool.os, "cpu_count", lambda: 2)
    busy = multiprocessing.get_context("spawn").Value("i", 2)
    widen, other = tmkd.training.pool._widening(busy), tmkd.training.pool._widening(busy)
    before = torch.get_num_threads()
    try:
        widen.on_step_begin(None, None, None)
        assert torch.get_num_threads() == 1
        other.done()                                     # the other worker found the queue empty
        assert busy.value == 1
        widen.on_step_begin(None, None, None)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def train_arm(cfg, method="mo1"):
    return {r["model"]: (r["accuracy"], r["top_class_share"]) for r in tmkd.training.experiments.run_method(cfg, "rte", method)}


@pytest.mark.slow
def test_two_workers_train_the_students_one_at_a_time_would(run_copy, tmp_path, monkeypatch, capfd):
    import shutil
    shutil.copytree(run_copy.run_path, tmp_path / "two")
    seeds = (42, 43, 44)
    one = smoke_config(run_copy.run_path, seeds=seeds)
    two = smoke_config(tmp_path / "two", seeds=seeds, student_workers=2)
    alone = train_arm(one)
    capfd.readouterr()

    predicted = []                                          # what the caller scores itself

    def predict_logits(model, ds, batch_size=64, desc="", **kwargs):
        predicted.append(desc)
        return real_predict(model, ds, batch_size, desc, **kwargs)
    real_predict = tmkd.training.students.predict_logits
    monkeypatch.setattr(tmkd.training.students, "predict_logits", predict_logits)
    side_by_side = train_arm(two)
    out = capfd.readouterr().out
    assert "3 students on 2 processes x 1 thread(s)" in out  # the third goes to whichever worker is free first
    assert "3/3 rte/mo1-k3-a0.7-s4" in out and "> rte/mo1-k3-a0.7-s44" in out
    assert predicted == []                                  # the workers scored them all; the caller reads them
    assert "finished earlier, skipped" not in out          # trained just now by the workers: not "reused"
    assert side_by_side == alone                            # smoke students: the same to the last digit
    assert not multiprocessing.active_children()
    train_arm(two)                                          # finished: no worker starts, each one is reused
    again = capfd.readouterr().out
    assert "processes x" not in again and again.count("finished earlier, skipped") == len(seeds)


@pytest.mark.slow
def test_a_failure_in_a_worker_is_raised_with_its_message_and_stops_the_others(run_copy, tmp_path):
    config = run_copy.run_path / "teachers" / "rte"
    for teacher in helpers.teacher_names(run_copy):       # the student's vocabulary cannot be its teachers'
        path = config / teacher / "final" / "config.json"
        path.write_text(path.read_text().replace('"vocab_size":', '"vocab_size": 7, "was_vocab_size":'))
    cfg = smoke_config(run_copy.run_path, seeds=(42, 43), student_workers=2)
    with pytest.raises(tmkd.core.config.TMKDError, match="student vocabulary .* differs from teacher"):
        train_arm(cfg)
    assert not multiprocessing.active_children()


# The whole chain with two workers: tests/test_interrupt.py (its one chain runs with student_workers=2).


def workers_of(pid: int) -> list:
    """The spawned workers among the children of process `pid`."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            out.append(int(stat.parent.name))
    return out


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_workers_end_when_their_parent_is_killed(run_copy):
    """A killed kernel or chain takes its workers with it: none goes on writing a student the re-run resumes."""
    script = (f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
              "import tmkd.core.config, tmkd.training.experiments\n"
              f"cfg = tmkd.core.config.make_config('smoke', run_dir={str(run_copy.run_path)!r}, student_workers=2, "
              "seeds=(42, 43), student_epochs=400.0)\n"
              "tmkd.training.experiments.run_method(cfg, 'rte', 'no_kd')\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    for line in proc.stdout:
        if "students on 2 processes" in line:
            break
    deadline = time.time() + 60
    while len(workers := workers_of(proc.pid)) < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert len(workers) == 2, "the two workers did not start"
    time.sleep(2)
    assert all(running(w) for w in workers)                 # training, with their parent alive
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while any(running(w) for w in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(running(w) for w in workers), "a worker outlived its killed parent"
