"""Several processes for the heavy steps (tmkd.core.parallel): 2 gloo processes on the CPU give a consistent run directory
and teachers as good as one process's; 1-process and 2-process steps never mix; the batch stays the configured one."""
import os
import subprocess
import sys

import pytest

import helpers
import tmkd.core.config
import tmkd.core.files
import tmkd.inputs.data
import tmkd.training.identity
import tmkd.training.logit_cache
import tmkd.core.parallel
import tmkd.training.rundir
import tmkd.training.teachers
from conftest import REPO, smoke_config

# Two processes train on other batches in another order than one process (per-device batch 8 x 2 instead of 16):
# the same teachers up to training noise. Smoke dev sets have 160 examples; 0.10 is 16 of them.
ACCURACY_TOLERANCE = 0.10


def one_task(run_dir, **settings):
    values = dict(tasks=("rte",), sweep_task="rte", stage1_task="rte", stage2_task="rte", stage1_pool_tasks=("rte",),
                  teacher_lrs=(1e-3, 2e-3)) | settings
    return smoke_config(run_dir, **values)


def optimizer_steps(cfg, name) -> int:
    """Steps a finished teacher took: examples x epochs / effective batch when the processes share the data (each
    process training on all of it with its per-device batch would take world_size times more)."""
    log = helpers.read_json(tmkd.training.teachers.teacher_dir(cfg, "rte", name) / "final" / "log_history.json")
    return max(r["step"] for r in log)


def dev_accuracies(cfg) -> dict:
    m = helpers.read_metrics(cfg.run_path)
    return dict(zip(m[m["method"] == "teacher"]["model"], m[m["method"] == "teacher"]["accuracy"]))


def assert_consistent(cfg, world: int):
    """Every final model complete with its marker (hash of its weights), spec.json with the world size, no
    leftover temporary folders or checkpoints, one metrics row per model and split."""
    for name in helpers.teacher_names(cfg):
        out = tmkd.training.teachers.teacher_dir(cfg, "rte", name)
        done = helpers.read_json(out / "final" / "done.json")
        assert done is not None, f"{name}: no done marker"
        assert tmkd.core.files.file_sha256(out / "final" / "model.safetensors") == done["weights_sha256"]
        assert (out / "final" / "config.json").exists() and (out / "final" / "log_history.json").exists()
        spec = helpers.read_json(out / "spec.json")
        assert spec.get("processes") == ({"world_size": world, "per_device_batch": 16 // world} if world > 1 else None)
        assert not list(out.glob(".final.tmp-*")) and not list(out.glob("checkpoint-*"))
    m = helpers.read_metrics(cfg.run_path)
    assert not m.duplicated(list(tmkd.training.rundir.METRIC_KEY)).any()
    assert len(m) == len(cfg.teacher_lrs) + 1                       # each teacher and the ensemble on rte's dev


@pytest.mark.slow
def test_teachers_on_two_processes_give_a_consistent_run_and_the_accuracy_of_one(tmp_path, capfd):
    one = one_task(tmp_path / "one")
    two = one_task(tmp_path / "two", nproc=2)
    for cfg in (one, two):
        helpers.train_teachers(cfg)
        helpers.cache_all_logits(cfg)
        helpers.evaluate_teachers(cfg)
    assert "on 2 CPU processes" in capfd.readouterr().out
    assert_consistent(one, 1)
    assert_consistent(two, 2)
    for name in helpers.teacher_names(one):        # the data was shared, not trained twice: the same steps
        assert optimizer_steps(two, name) == optimizer_steps(one, name) == 320 // 16 * 4
    acc_one, acc_two = dev_accuracies(one), dev_accuracies(two)
    for model, acc in acc_one.items():
        assert acc > 0.7, f"{model}: the 1-process teacher did not learn ({acc})"
        assert acc_two[model] == pytest.approx(acc, abs=ACCURACY_TOLERANCE), model
    # the logit files are the same whichever process computed them (the 2-process run's teachers, read back)
    for name in helpers.teacher_names(two):
        again = tmkd.training.logit_cache.teacher_logits(two, "rte", name, "validation")
        assert again["logits"].shape == (len(helpers.task_data(two, "rte")["validation"]), 2)
    # a finished 2-process teacher is skipped without starting any process
    tmkd.training.teachers.train_teacher(two, "rte", two.teacher_lrs[0])
    out = capfd.readouterr().out
    assert "finished earlier, skipped" in out and "CPU processes" not in out


@pytest.mark.slow
def test_a_script_under_torchrun_writes_one_consistent_run_directory(tmp_path):
    """The issue's report: chapter 01 and 02's code under `torchrun --nproc_per_node 2` (gloo). Each rank runs
    every line; the main one writes, the others wait and read."""
    run = tmp_path / "run"
    script = tmp_path / "chapters.py"
    script.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "import helpers, tmkd.core.config, tmkd.training.rundir\n"
        f"cfg = tmkd.core.config.make_config('smoke', run_dir={str(run)!r}, tasks=('rte',), sweep_task='rte', "
        "stage1_task='rte', stage2_task='rte', stage1_pool_tasks=('rte',), teacher_lrs=(2e-3,))\n"
        "tmkd.training.rundir.check_run_dir(cfg)\n"
        "helpers.train_teachers(cfg)\n"
        "helpers.cache_all_logits(cfg)\n"
        "helpers.evaluate_teachers(cfg)\n"
        "print(f\"rank {os.environ['RANK']} done\", flush=True)\n")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rank 0 done" in proc.stdout and "rank 1 done" in proc.stdout
    cfg = tmkd.core.config.make_config("smoke", run_dir=str(run), tasks=("rte",), sweep_task="rte", stage1_task="rte",
                              stage2_task="rte", stage1_pool_tasks=("rte",), teacher_lrs=(2e-3,))
    out = tmkd.training.teachers.teacher_dir(cfg, "rte", helpers.teacher_names(cfg)[0])
    done = helpers.read_json(out / "final" / "done.json")
    assert done and tmkd.core.files.file_sha256(out / "final" / "model.safetensors") == done["weights_sha256"]
    assert helpers.read_json(out / "spec.json")["processes"] == {"world_size": 2, "per_device_batch": 8}
    assert optimizer_steps(cfg, helpers.teacher_names(cfg)[0]) == 320 // 16 * 4     # DDP: each rank half the data
    m = helpers.read_metrics(run)
    assert len(m) == 2 and not m.duplicated(list(tmkd.training.rundir.METRIC_KEY)).any()
    assert len(list((run / "data").glob("rte-*"))) == 1 and not list((run / "data").glob("*.tmp-*"))
    logits = tmkd.training.logit_cache.teacher_logits(cfg, "rte", helpers.teacher_names(cfg)[0], "validation")   # valid, not rebuilt
    assert logits["logits"].shape[0] == 160


def test_one_and_two_process_steps_never_mix(tmp_path, stub_training):
    one = one_task(tmp_path / "run", teacher_lrs=(2e-3,))
    helpers.train_teachers(one)
    two = one_task(tmp_path / "run", teacher_lrs=(2e-3,), nproc=2)
    spec = tmkd.training.identity.identity(two, "teacher", task="rte", lr=2e-3, labels=tmkd.core.config.TASKS["rte"].labels,
                            data=tmkd.inputs.data.split_fingerprint(two, "rte", "train"))
    assert spec["processes"] == {"world_size": 2, "per_device_batch": 8}
    out = tmkd.training.teachers.teacher_dir(one, "rte", helpers.teacher_names(one)[0])
    assert not tmkd.training.rundir.step_finished(out, spec)
    with pytest.raises(tmkd.core.config.TMKDError, match="another configuration.*processes"):
        tmkd.training.rundir.claim_step(out, spec)
    tmkd.training.rundir.check_run_dir(two)                      # the data and the run are the same: only the steps differ


def test_the_configured_batch_is_the_effective_one(monkeypatch):
    from tmkd.training.trainer import per_device_batch
    assert per_device_batch(16) == 16
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert per_device_batch(16) == 4
    with pytest.raises(tmkd.core.config.TMKDError, match="does not split over 4"):
        per_device_batch(18)
    with pytest.raises(tmkd.core.config.TMKDError, match="teacher_batch_size=15 does not split over nproc=2"):
        tmkd.core.config.make_config("smoke", nproc=2, teacher_batch_size=15)


def test_run_chain_takes_nproc_into_every_chapter(tmp_path):
    import run_chain
    args = run_chain.parser().parse_args(["--profile", "smoke", "--run-dir", str(tmp_path / "r"), "--nproc", "2"])
    cfg, overrides, _ = run_chain.prepare(args)
    assert cfg.nproc == 2 and overrides["nproc"] == 2          # reaches the chapters as OVERRIDES


def fail_in(rank: int, error: str):
    """A worker that raises in one process while the other waits at a barrier."""
    from tmkd.core import parallel
    if parallel.rank() == rank:
        raise {"TMKDError": tmkd.core.config.TMKDError, "RuntimeError": RuntimeError}[error]("the corpus file is missing")
    parallel.barrier()


@pytest.mark.slow
@pytest.mark.parametrize("error", ["TMKDError", "RuntimeError"])
def test_a_worker_failure_is_raised_here_with_its_own_message(error):
    """Not the lost connection the other process sees: what the failing one raised (a TMKDError as it is)."""
    expected = tmkd.core.config.TMKDError if error == "TMKDError" else RuntimeError
    with pytest.raises(expected, match="the corpus file is missing") as info:
        tmkd.core.parallel.launch(fail_in, 1, error, nproc=2)
    assert "Connection" not in str(info.value)
