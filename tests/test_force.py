"""FORCE recomputes each step at most once per run: chapters 03, 04 and 06 ask for the same students several times
(the sweeps' default student, the 1-o-1 student inside m-o-m, the alpha = 0.7 TMKD student)."""
from collections import Counter

import helpers
import tmkd.training.experiments
import tmkd.training.logit_cache
from conftest import stub_run


def chapters_03_to_06(cfg, force):
    helpers.run_sweeps(cfg, ("optimizer", "head_layers", "layers"), force)   # chapter 03
    for task in cfg.tasks:                                         # chapter 04
        tmkd.training.experiments.one_vs_many(cfg, task, force=force)
    for method in ("tmkd", "tkd"):                                 # chapter 05
        helpers.run_stage1(cfg, method, force)
    for task in helpers.stage2_tasks(cfg):                         # chapter 06
        for method in ("tmkd", "tkd", "mo1_matched"):
            tmkd.training.experiments.run_stage2(cfg, method, task, force=force)
    helpers.alpha_sweep(cfg, force)


def test_force_trains_each_student_once_per_run(tmp_path, stub_training, monkeypatch):
    cfg = stub_run(tmp_path / "run", alphas=(0.5, 0.7), sweep_task="qnli")
    helpers.train_teachers(cfg)
    helpers.cache_all_logits(cfg)
    teachers = len(stub_training)
    chapters_03_to_06(cfg, force=False)
    distinct = Counter(stub_training[teachers:])
    assert max(distinct.values()) == 1 and len(distinct) >= 15

    monkeypatch.setenv("TMKD_RUN_TOKEN", "chain-run-1")       # one chain run: every chapter gets this token
    del stub_training[:]
    chapters_03_to_06(cfg, force=True)
    forced = Counter(stub_training)
    assert set(forced) == set(distinct), set(forced) ^ set(distinct)
    assert max(forced.values()) == 1, [p.name for p, n in forced.items() if n > 1]
    helpers.train_teachers(cfg, force=True)                     # teachers too: once per run
    helpers.train_teachers(cfg, force=True)
    assert len(stub_training) == len(forced) + teachers

    monkeypatch.setenv("TMKD_RUN_TOKEN", "chain-run-2")       # the next forced run recomputes again, once
    del stub_training[:]
    chapters_03_to_06(cfg, force=True)
    assert Counter(stub_training) == forced


def test_forced_logits_are_recomputed_once_per_run(tmp_path, stub_training, monkeypatch):
    cfg = stub_run(tmp_path / "run", tasks=("rte", "qnli"))
    helpers.train_teachers(cfg)
    name = helpers.teacher_names(cfg)[0]
    path = helpers.logits_path(cfg, "rte", name, "train")
    tmkd.training.logit_cache.teacher_logits(cfg, "rte", name, "train")
    monkeypatch.setenv("TMKD_RUN_TOKEN", "run-a")
    tmkd.training.logit_cache.teacher_logits(cfg, "rte", name, "train", force=True)
    first = path.stat().st_mtime_ns
    tmkd.training.logit_cache.teacher_logits(cfg, "rte", name, "train", force=True)
    assert path.stat().st_mtime_ns == first
    monkeypatch.setenv("TMKD_RUN_TOKEN", "run-b")
    tmkd.training.logit_cache.teacher_logits(cfg, "rte", name, "train", force=True)
    assert path.stat().st_mtime_ns != first


def test_an_interrupted_forced_chain_resumes_with_the_same_run(tmp_path, monkeypatch):
    import os

    import run_chain
    tokens = []

    def chapter(nb, executed, parameters):
        tokens.append(os.environ["TMKD_RUN_TOKEN"])
        if len(tokens) == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(run_chain, "run_chapter", chapter)
    argv = ["--profile", "smoke", "--run-dir", str(tmp_path / "run"), "--force", "--only", "02", "03"]
    assert run_chain.main(argv) == 130                         # Ctrl-C in the second chapter
    assert (tmp_path / "run" / ".force-run.json").exists()
    assert run_chain.main(argv) == 0                           # the same command: the same forced run goes on
    assert len(set(tokens)) == 1 and len(tokens) == 4
    assert not (tmp_path / "run" / ".force-run.json").exists()
    assert run_chain.main(argv) == 0                           # a new forced run recomputes again
    assert len(set(tokens)) == 2
