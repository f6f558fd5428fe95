"""A stage-1 corpus from a file (tmkd.inputs.corpus): read, tokenized and scored shard by shard; a scoring killed mid-way
resumes at the first unscored shard and ends with the logits of an uninterrupted one; 2 processes score what 1
scores; corrupt shards are rescored; bad files are refused with the file and the expected columns named."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import helpers
import tmkd.training.specs
import tmkd.inputs.base_model
import tmkd.core.config
import tmkd.inputs.corpus
import tmkd.inputs.data
import tmkd.training.experiments
import tmkd.training.identity
import tmkd.training.logit_cache
import tmkd.training.students
from conftest import REPO, smoke_config

PAIRS, SHARD = 10_000, 2_000      # five shards: enough to kill mid-way, to split over two processes, to corrupt one


def write_corpus(path, n: int, seed: int = 7):
    """n unlabeled pairs in the smoke vocabulary, one JSON object per line (the generator's pairs, labels dropped)."""
    df = tmkd.inputs.data.generate_split("rte", "corpus", n, seed)
    with open(path, "w", encoding="utf-8") as f:
        for a, b in zip(df["text_a"], df["text_b"]):
            f.write(json.dumps({"text_a": a, "text_b": b}) + "\n")
    return path


def corpus_config(run_dir, corpus, **settings):
    values = dict(tasks=("rte",), sweep_task="rte", stage1_task="rte", stage2_task="rte", stage1_pool_tasks=("rte",),
                  teacher_lrs=(1e-3, 2e-3), stage1_corpus=str(corpus), stage1_shard_pairs=SHARD) | settings
    return smoke_config(run_dir, **values)


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    """A run with two (untrained: the stub) teachers and a PAIRS-pair corpus file, not yet tokenized or scored."""
    import tmkd.training.teachers
    from conftest import StubTrainer
    root = tmp_path_factory.mktemp("corpus")
    corpus = write_corpus(root / "pairs.jsonl", PAIRS)
    mp = pytest.MonkeyPatch()
    mp.setattr(tmkd.training.teachers, "fit", lambda model, ds, out, args, callbacks=(), sync_every_s=0: StubTrainer(model, args.output_dir))
    cfg = corpus_config(root / "run", corpus)
    helpers.train_teachers(cfg)
    mp.undo()
    return cfg


def copy_run(cfg, dest, **settings):
    shutil.copytree(cfg.run_path, dest)
    return corpus_config(dest, cfg.stage1_corpus, **settings)


def all_logits(cfg):
    return {t: np.concatenate([np.asarray(a) for a in tmkd.training.logit_cache.corpus_logits(cfg, "rte", t)["shards"]])
            for t in helpers.teacher_names(cfg)}


@pytest.fixture(scope="module")
def uninterrupted(corpus_run, tmp_path_factory):
    cfg = copy_run(corpus_run, tmp_path_factory.mktemp("plain") / "run")
    return cfg, all_logits(cfg)


@pytest.mark.slow
def test_the_corpus_is_tokenized_and_scored_in_shards(uninterrupted):
    cfg, logits = uninterrupted
    tokens = tmkd.inputs.corpus.corpus_tokens(cfg)
    assert len(tokens) == PAIRS and tokens.n_shards == PAIRS // SHARD
    for t, arr in logits.items():
        assert arr.shape == (PAIRS, 2) and np.isfinite(arr).all()
        folder = next((cfg.run_path / "logits" / "rte" / t).glob("stage1-*"))
        assert sorted(p.name for p in folder.glob("shard-*.npy")) == [f"shard-{k:05d}.npy" for k in range(5)]
    a, b = next(tmkd.inputs.corpus.read_pairs(cfg.stage1_corpus, 1))
    tokenizer = tmkd.inputs.base_model.load_tokenizer(tmkd.inputs.base_model.base_model_path(cfg))
    assert list(tokens[0]["input_ids"]) == tokenizer(a[0], b[0], truncation=True, max_length=cfg.max_seq_len)["input_ids"]


def score_in_subprocess(cfg, teacher, kill_after_shards: int = 0) -> str:
    """corpus_logits in a fresh process (one thread, batches of 8: each shard takes a few seconds), SIGKILLed as
    soon as `kill_after_shards` shards are written when that is > 0. Returns its output."""
    script = (f"import sys; sys.path.insert(0, {str(REPO)!r}); import helpers, tmkd.core.config, tmkd.training.logit_cache\n"
              f"cfg = tmkd.core.config.make_config('smoke', run_dir={str(cfg.run_path)!r}, tasks=('rte',), sweep_task='rte', "
              f"stage1_task='rte', stage2_task='rte', stage1_pool_tasks=('rte',), teacher_lrs=(1e-3, 2e-3), "
              f"stage1_corpus={cfg.stage1_corpus!r}, stage1_shard_pairs={SHARD}, eval_batch_size=8)\n"
              f"tmkd.training.logit_cache.corpus_logits(cfg, 'rte', {teacher!r})\n")
    log = cfg.run_path.parent / f"score-{time.time_ns()}.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-c", script], env=os.environ | {"OMP_NUM_THREADS": "1"},
                                stdout=f, stderr=subprocess.STDOUT)
        if kill_after_shards:
            folder = cfg.run_path / "logits" / "rte" / teacher
            deadline = time.time() + 600
            while (len(list(folder.glob("stage1-*/shard-*.json"))) < kill_after_shards and time.time() < deadline
                   and proc.poll() is None):
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=900)
    out = log.read_text()
    assert kill_after_shards or proc.returncode == 0, out[-3000:]
    return out


@pytest.mark.slow
def test_scoring_killed_mid_way_resumes_at_the_first_unscored_shard(corpus_run, tmp_path):
    teacher = helpers.teacher_names(corpus_run)[0]
    plain = copy_run(corpus_run, tmp_path / "plain")
    score_in_subprocess(plain, teacher)
    killed = copy_run(corpus_run, tmp_path / "killed")
    score_in_subprocess(killed, teacher, kill_after_shards=2)
    scored = len(list((killed.run_path / "logits" / "rte" / teacher).glob("stage1-*/shard-*.json")))
    assert 2 <= scored < PAIRS // SHARD, f"killed after {scored} shards: the test needs a kill mid-way"
    out = score_in_subprocess(killed, teacher)                          # the same command again
    assert re.findall(r"stage-1 shard (\d+) of 5 scored", out) == [str(k) for k in range(scored + 1, 6)]
    assert "tokenized" not in out                                      # the tokenized shards were kept too
    got = tmkd.training.logit_cache.corpus_logits(killed, "rte", teacher)["shards"]
    want = tmkd.training.logit_cache.corpus_logits(plain, "rte", teacher)["shards"]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)                            # identical, not merely close


@pytest.mark.slow
def test_two_processes_score_what_one_scores(corpus_run, uninterrupted, tmp_path, capfd):
    _, expected = uninterrupted
    cfg = copy_run(corpus_run, tmp_path / "run", nproc=2)
    got = all_logits(cfg)
    assert "score_corpus on 2 CPU processes" in capfd.readouterr().out
    for t in expected:                    # other thread counts: equal up to float rounding
        np.testing.assert_allclose(got[t], expected[t], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_a_corrupt_logits_shard_is_rescored_alone(uninterrupted, tmp_path, capsys):
    base, expected = uninterrupted
    cfg = copy_run(base, tmp_path / "run")
    teacher = helpers.teacher_names(cfg)[1]
    shard = next((cfg.run_path / "logits" / "rte" / teacher).glob("stage1-*/shard-00003.npy"))
    shard.write_bytes(shard.read_bytes()[:200])                 # truncated by a crash
    capsys.readouterr()
    again = all_logits(cfg)
    out = capsys.readouterr().out
    assert out.count("scored") == 1 and "shard 4 of 5 scored" in out
    np.testing.assert_array_equal(again[teacher], expected[teacher])


def test_stage1_trains_from_the_memory_mapped_shards(tmp_path, stub_training):
    """The corpus file as stage 1's training set: tokens and every teacher's logits per example, in the task's label
    order, and the student named after the file."""
    corpus = write_corpus(tmp_path / "my pairs.jsonl", 700)
    cfg = corpus_config(tmp_path / "run", corpus, stage1_shard_pairs=300)
    helpers.train_teachers(cfg)
    spec = tmkd.training.specs.stage1_spec(cfg, "tmkd")
    assert spec.name.startswith("tmkd-stage1-file-my_pairs-")
    ds = tmkd.training.students.student_train_data(cfg, spec)
    assert len(ds) == 700 and "label" not in ds.column_names
    from tmkd.training.trainer import collate
    batch = collate([ds[i] for i in (0, 299, 300, 699)])
    assert batch["teacher_logits"].shape == (4, 2, 2)
    direct = np.stack([tmkd.training.logit_cache.teacher_logits(cfg, "rte", t, "stage1")["logits"] for t in spec.teachers], axis=1)
    np.testing.assert_allclose(batch["teacher_logits"].numpy(), direct[[0, 299, 300, 699]], atol=0)
    tmkd.training.students.train_student(cfg, spec)
    assert stub_training[-1].name == spec.name
    assert helpers.stage1_overlap(cfg) == {}


def test_a_changed_corpus_file_is_another_corpus(tmp_path):
    corpus = write_corpus(tmp_path / "pairs.jsonl", 200)
    cfg = corpus_config(tmp_path / "run", corpus)
    before = tmkd.training.identity.identity(cfg, "stage1")
    with open(corpus, "a", encoding="utf-8") as f:
        f.write(json.dumps({"text_a": "w1 w2", "text_b": "w3"}) + "\n")
    after = tmkd.training.identity.identity(cfg, "stage1")
    assert before["stage1_corpus"]["sha256"] != after["stage1_corpus"]["sha256"]
    assert tmkd.inputs.corpus.count_pairs(corpus) == 201


@pytest.mark.parametrize("fmt", ["tsv", "parquet"])
def test_tsv_and_parquet_files_give_the_pairs_of_the_jsonl(tmp_path, fmt):
    df = tmkd.inputs.data.generate_split("rte", "corpus", 250, 3)[["text_a", "text_b"]].rename(
        columns={"text_a": "question", "text_b": "passage"})
    path = tmp_path / f"pairs.{fmt}"
    if fmt == "tsv":
        df.to_csv(path, sep="\t", index=False)
    else:
        df.to_parquet(path)
    chunks = list(tmkd.inputs.corpus.read_pairs(path, 100))
    assert [len(a) for a, _ in chunks] == [100, 100, 50]
    assert sum((a for a, _ in chunks), []) == list(df["question"])
    assert sum((b for _, b in chunks), []) == list(df["passage"])
    assert sum(len(a) for a, _ in tmkd.inputs.corpus.read_pairs(path, 100, limit=120)) == 120
    assert tmkd.inputs.corpus.count_pairs(path) == 250


def test_bad_corpus_files_are_refused_with_the_file_and_the_columns(tmp_path):
    with pytest.raises(tmkd.core.config.TMKDError, match="neither 'task', 'pool' nor the path of a corpus file"):
        tmkd.core.config.make_config("smoke", stage1_corpus="pairs.csv")
    with pytest.raises(tmkd.core.config.TMKDError, match="no such file"):
        tmkd.inputs.corpus.check_corpus_file(tmp_path / "missing.jsonl")
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"q": "a", "p": "b", "score": 1}) + "\n")
    with pytest.raises(tmkd.core.config.TMKDError, match=r"wrong\.jsonl needs two text columns named \(text_a, text_b\)"):
        tmkd.inputs.corpus.check_corpus_file(wrong)
    ragged = tmp_path / "ragged.tsv"
    ragged.write_text("question\tpassage\nw1\tw2\nw3\n")
    with pytest.raises(tmkd.core.config.TMKDError, match=r"ragged\.tsv, line 3: 1 tab-separated fields"):
        list(tmkd.inputs.corpus.read_pairs(ragged, 10))
    two = tmp_path / "two.tsv"
    two.write_text("left\tright\nw1\tw2\n")
    assert tmkd.inputs.corpus.corpus_columns(two) == ("left", "right")      # exactly two columns need no names
    import run_chain
    args = run_chain.parser().parse_args(["--run-dir", str(tmp_path / "r"), "--set", f"stage1_corpus={wrong}"])
    with pytest.raises(tmkd.core.config.TMKDError, match="wrong.jsonl needs two text columns"):
        run_chain.prepare(args)                                  # before any chapter starts
