"""What a profile will cost before it starts: examples x epochs per model, the time on the device found (from a
short measured warm-up of a teacher step, a student step and a prediction batch, not a constant) and the disk (or
Drive) space its models and checkpoints need."""
from __future__ import annotations

import time

import torch

from .base_model import base_model_path
from .config import SMOKE_MODEL, Config
from .corpus import count_pairs
from .data import dev_splits, local_file
from .environment import device_name
from .method import TMKDStudent, student_config
from .trainer import AUTOCAST, device, device_precision

# Public GLUE / SNLI sizes (train, all dev splits), for the Hub: the estimate reads no dataset.
HUB_SIZES = {"rte": (2490, 277), "qnli": (104743, 5463), "mnli": (392702, 19647), "snli": (549367, 9842)}


def split_sizes(cfg: Config, task: str) -> tuple:
    """(train, dev) examples the run will use: subsets applied; local files counted by line, no parsing."""
    if cfg.base_model == SMOKE_MODEL and not cfg.data_dir:
        full = (cfg.train_size or 200, (cfg.dev_size or 200) * len(dev_splits(task)))
    elif cfg.data_dir:
        count = lambda s: sum(1 for _ in open(local_file(cfg.data_dir, task, s), "rb")) - 1   # noqa: E731
        full = (count("train"), sum(count(s) for s in dev_splits(task)))
    else:
        full = HUB_SIZES[task]
    if cfg.base_model == SMOKE_MODEL and not cfg.data_dir:
        full = ((cfg.train_size or 200) * 2 + cfg.select_size, full[1])       # the generated train file
    train = min(full[0] - cfg.select_size, cfg.train_size) if cfg.train_size else full[0] - cfg.select_size
    dev = min(full[1], cfg.dev_size * len(dev_splits(task))) if cfg.dev_size else full[1]
    return train, dev, max(full[0] - cfg.select_size - train, 0)           # train, dev, unused (data.train_parts)


def workload(cfg: Config) -> dict:
    """Examples x epochs the chain trains and predicts, by kind of model."""
    n_teachers, n_seeds = len(cfg.teacher_lrs), len(cfg.seeds)
    sizes = {t: split_sizes(cfg, t) for t in dict.fromkeys((*cfg.tasks, *cfg.stage1_pool_tasks))}
    teacher = sum(n_teachers * cfg.teacher_epochs * sizes[t][0] for t in cfg.tasks)
    teacher += sum(cfg.teacher_epochs * sizes[t][0] for t in cfg.tasks)            # chapter 03's pooling check
    predict = sum(n_teachers * (sizes[t][0] + sizes[t][1] + cfg.select_size) for t in cfg.tasks)
    students = []                                                                  # (examples x epochs, count)
    sweeps = len(set(cfg.sweep_optimizers) | {cfg.optimizer}) + len(set(cfg.sweep_head_layers)) + len(set(cfg.sweep_layers)) - 2
    students.append((sizes[cfg.sweep_task][0] * cfg.student_epochs, max(sweeps, 1)))
    students += [(sizes[t][0] * cfg.student_epochs, 1) for t in cfg.tasks]          # the pooling check's students
    one_stage = (3 + n_teachers) * n_seeds        # no_kd, 1avg-o-1, m-o-1 and one per teacher (1-o-1 is one of them)
    students += [(sizes[t][0] * cfg.student_epochs, one_stage) for t in cfg.tasks]
    pool = cfg.stage1_pool_tasks if cfg.stage1_corpus == "pool" else (cfg.stage1_task,)
    corpus = sum(sizes[t][2] for t in pool)
    if cfg.corpus_file:                                                            # the user's pairs, counted
        corpus = count_pairs(cfg.corpus_file)
    corpus = min(corpus, cfg.stage1_size) if cfg.stage1_size else corpus
    students.append((corpus * cfg.stage1_epochs, 2 * n_seeds))                     # TMKD and TKD stage 1, per seed
    predict += n_teachers * corpus
    for t in cfg.tasks:                                                            # stage 2: TMKD, TKD, control
        students.append((sizes[t][0] * cfg.student_epochs, 2 * n_seeds))
        students.append((sizes[t][0] * cfg.student_epochs + corpus * cfg.stage1_epochs, n_seeds))
    students.append((sizes[cfg.stage2_task][0] * cfg.student_epochs, len(set(cfg.alphas) - {cfg.alpha})))
    n_students = sum(k for _, k in students)
    mean_dev = sum(sizes[t][1] for t in cfg.tasks) / len(cfg.tasks)
    return {"teacher_examples": teacher, "student_examples": sum(n * k for n, k in students),
            "students": n_students, "teachers": n_teachers * len(cfg.tasks) + 1,
            "predict_examples": predict + n_students * mean_dev, "sizes": sizes}


@torch.no_grad()
def _predict_rate(model, batch, prec: str | None = None) -> float:
    """Examples/s of a prediction batch in `prec` (default: the GPU's precision; fp32 on a CPU)."""
    model.eval()
    cuda = batch["input_ids"].is_cuda
    dtype = AUTOCAST.get(prec or (device_precision() if cuda else "fp32"))

    def run():
        with torch.autocast(batch["input_ids"].device.type, dtype=dtype, enabled=dtype is not None):
            return model(**batch)
    _timed(run, 1)
    return len(batch["input_ids"]) / _timed(run, 3)


def _train_rate(model, batch, prec: str | None = None) -> float:
    """Examples/s of a training step (forward, backward, AdamW) in `prec` (default: this device's precision)."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    cuda = batch["input_ids"].is_cuda
    dtype = AUTOCAST.get(prec or (device_precision() if cuda else "fp32"))

    def step():
        with torch.autocast(batch["input_ids"].device.type, dtype=dtype, enabled=dtype is not None):
            loss = model(**batch).logits.float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
    _timed(step, 1)
    return len(batch["input_ids"]) / _timed(step, 3)


def _timed(fn, repeats: int) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


# Shapes of Hub models, for an estimate on a machine that cannot download them (timing needs shapes, not weights).
KNOWN_SHAPES = {"bert-base-uncased": {}, "bert-large-uncased": dict(hidden_size=1024, num_hidden_layers=24,
                                                                     num_attention_heads=16, intermediate_size=4096)}


def base_shape(cfg: Config):
    """The BERT config of the teachers' base: read from its folder or the Hub, else its known shape."""
    from transformers import AutoConfig, BertConfig
    try:
        return AutoConfig.from_pretrained(base_model_path(cfg))
    except OSError:
        if cfg.base_model not in KNOWN_SHAPES:
            raise
        print(f"  ({cfg.base_model} not reachable here: timing a model of its shape with random weights)")
        return BertConfig(**KNOWN_SHAPES[cfg.base_model])


def measure_rates(cfg: Config) -> dict:
    """Examples/s of one teacher training step, one student training step and one prediction batch, on this
    device in its precision, at the profile's batch sizes and max_seq_len, with models of the real shapes built
    from their config (a few seconds; no weights are loaded)."""
    import transformers
    from transformers import AutoModelForSequenceClassification
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()          # the smoke base is built here on a first run
    shape = base_shape(cfg)
    dev = device()
    teacher = AutoModelForSequenceClassification.from_config(shape.__class__(**{**shape.to_dict(), "num_labels": 2}))
    teacher = teacher.to(dev)

    def batch(size):
        ids = torch.randint(5, shape.vocab_size, (size, cfg.max_seq_len), device=dev)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    prec = device_precision(cfg)
    rates = {"teacher_train": _train_rate(teacher, batch(cfg.teacher_batch_size), prec),
             "teacher_predict": _predict_rate(teacher, batch(cfg.eval_batch_size), prec)}
    student = TMKDStudent(student_config(shape.to_dict(), cfg.student_layers, ("a", "b"), len(cfg.teacher_lrs)))
    rates["student_train"] = _train_rate(student.to(dev), batch(cfg.student_batch_size), prec)
    rates["params_teacher"] = sum(p.numel() for p in teacher.parameters())
    rates["params_student"] = sum(p.numel() for p in student.parameters())
    del teacher, student
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return rates


def estimate(cfg: Config, rates: dict | None = None) -> dict:
    """The workload, the expected hours on this device (measured rates) and the space the run directory needs.
    Prints a few lines; returns the numbers."""
    w = workload(cfg)
    r = rates or measure_rates(cfg)
    seconds = (w["teacher_examples"] / r["teacher_train"] + w["student_examples"] / r["student_train"]
               + w["predict_examples"] / r["teacher_predict"])
    # + 25 % for evaluation and sync, + 15 s per chapter (a kernel starts) and 3 s per model (load, save);
    # nproc processes share the examples (assumed to scale linearly; each step starts its workers: ~20 s)
    hours = (seconds * 1.25 / cfg.nproc + 15 * 8 + (3 + 20 * (cfg.nproc > 1)) * (w["teachers"] + w["students"])) / 3600
    gb = 1e-9
    finals = (w["teachers"] * r["params_teacher"] + w["students"] * r["params_student"]) * 4 * gb
    checkpoint = r["params_teacher"] * 12 * gb     # weights + two Adam moments (fp32)
    on = device_name()
    print(f"estimate for profile {cfg.profile} on {on} ({device_precision(cfg)})"
          + (f", {cfg.nproc} processes:" if cfg.nproc > 1 else ":"))
    print(f"  teachers: {w['teachers']} x {cfg.teacher_epochs:g} epochs on "
          + ", ".join(f"{t} {n:,}" for t, (n, *_) in w["sizes"].items() if t in cfg.tasks)
          + f" examples = {w['teacher_examples']:,.0f} training examples at {r['teacher_train']:,.0f}/s (measured)")
    print(f"  students: {w['students']} runs, {w['student_examples']:,.0f} training examples at "
          f"{r['student_train']:,.0f}/s; predictions: {w['predict_examples']:,.0f} examples at {r['teacher_predict']:,.0f}/s")
    size = lambda gigabytes: f"{gigabytes:.1f} GB" if gigabytes >= 1 else f"{gigabytes * 1000:.0f} MB"   # noqa: E731
    print(f"  about {f'{hours:.1f} h' if hours >= 1 else f'{hours * 60:.0f} minutes'} in all; the run directory "
          f"needs about {size(finals + checkpoint)} ({size(finals)} of final models, up to {size(checkpoint)} "
          "for the checkpoint of the step in progress)")
    if cfg.profile == "paper":
        print("  ! the paper profile is the full setting: on a free Colab T4 it needs many sessions (the run directory "
              "in Drive resumes each one where the last stopped), or one long session on an A100")
    if hours > 11:
        print(f"  ! longer than a Colab session (12 h at most): plan {int(hours // 10) + 1} sessions; each resumes")
    return {"hours": hours, "gb": finals + checkpoint, **{k: v for k, v in w.items() if k != "sizes"}, **r}
