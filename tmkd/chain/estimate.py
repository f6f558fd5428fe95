"""What a profile will cost before it starts: examples x epochs per model, the time on the device found (from a
short measured warm-up of a teacher step, a student step and a prediction batch, not a constant) and the disk (or
Drive) space its models and checkpoints need."""
from __future__ import annotations

import os

import torch

from tmkd.inputs.base_model import KNOWN_SHAPES, base_model_path
from tmkd.core.config import MINILM_MODEL, OPTIMIZERS, SMOKE_MODEL, Config
from tmkd.core.timing import call_times
from tmkd.training.environment import device_name
from tmkd.model.method import TMKDStudent, student_config
from tmkd.chain.plan import build_plan, check_free_space, gigabytes, space
from tmkd.chain.plan import hours as plan_hours
from tmkd.training.trainer import AUTOCAST, device, device_precision


@torch.no_grad()
def _predict_rate(model, batch, prec: str | None = None) -> float:
    """Examples/s of a prediction batch in `prec` (default: the GPU's precision; fp32 on a CPU)."""
    model.eval()
    cuda = batch["input_ids"].is_cuda
    dtype = AUTOCAST.get(prec or (device_precision() if cuda else "fp32"))

    def run():
        with torch.autocast(batch["input_ids"].device.type, dtype=dtype, enabled=dtype is not None):
            return model(**batch)
    _timed(run, 2)
    return len(batch["input_ids"]) / _timed(run, 5)


def _train_rate(model, batch, prec: str | None = None) -> float:
    """Examples/s of a training step (forward, backward, AdamW's fused kernel, as the Trainer's: tmkd.core.config.OPTIMIZERS)
    in `prec` (default: this device's precision)."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=OPTIMIZERS["adamw"] == "adamw_torch_fused")
    cuda = batch["input_ids"].is_cuda
    dtype = AUTOCAST.get(prec or (device_precision() if cuda else "fp32"))

    def step():
        with torch.autocast(batch["input_ids"].device.type, dtype=dtype, enabled=dtype is not None):
            loss = model(**batch).logits.float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
    _timed(step, 2)
    return len(batch["input_ids"]) / _timed(step, 5)


def _timed(fn, repeats: int) -> float:
    """Seconds of one call of `fn`: the fastest of `repeats` (tmkd.core.timing; a warm-up run is the caller's)."""
    return min(call_times(fn, repeats))


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
             "teacher_predict": _predict_rate(teacher, batch(cfg.eval_batch_size), "fp32")}   # logits: always fp32
    student = TMKDStudent(student_config(shape.to_dict(), cfg.student_layers, ("a", "b"), len(cfg.teacher_lrs)))
    rates["student_train"] = side_by_side(cfg, lambda: _train_rate(student.to(dev), batch(cfg.student_batch_size), prec))
    rates["student_predict"] = side_by_side(cfg, lambda: _predict_rate(student, batch(cfg.eval_batch_size), prec))
    del teacher, student
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return rates


def side_by_side(cfg: Config, rate) -> float:
    """`rate()` as students train with student_workers on a CPU (tmkd.training.pool): one worker's rate, measured with its
    share of the threads, times the workers (the students a round leaves over train alone: counted the same)."""
    if cfg.student_workers < 2 or torch.cuda.is_available():
        return rate()
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg.student_workers))
    try:
        return cfg.student_workers * rate()
    finally:
        torch.set_num_threads(threads)


def plan_rates(cfg: Config) -> tuple:
    """(rates, device) for `run_chain.py --plan`: measured here, unless the profile is GPU-sized (a Hub base model)
    and this machine has no GPU: then a free Colab T4's (assumed, tmkd.chain.plan.T4_RATES)."""
    if cfg.base_model not in (SMOKE_MODEL, MINILM_MODEL) and not torch.cuda.is_available():
        return None, ""
    return measure_rates(cfg), f"{device_name()} (rates measured here)"


CHAIN_MEASURED = "measured by run_chain.py before chapter 01, alone on the machine"
RATES_FILE = "estimate_rates.json"      # in the run directory: the rates run_chain.py measured before chapter 01


def rates_key(cfg: Config) -> dict:
    """What the measured rates depend on: the models' shapes, batch sizes, tokens, precision and device."""
    return {"base_model": cfg.base_model, "student_layers": cfg.student_layers, "teachers": len(cfg.teacher_lrs),
            "student_workers": cfg.student_workers,
            "batches": [cfg.teacher_batch_size, cfg.student_batch_size, cfg.eval_batch_size],
            "max_seq_len": cfg.max_seq_len, "precision": device_precision(cfg), "device": device_name()}


def record_rates(cfg: Config) -> dict:
    """Measure the rates once, before any kernel starts (run_chain.py, the only process then), and keep them in the
    run directory for this chain's chapter 01, so that its estimate does not time a step again beside whatever
    else the machine does by then."""
    from tmkd.core.files import write_json_atomic
    rates = measure_rates(cfg)
    write_json_atomic(cfg.run_path / RATES_FILE, {"key": rates_key(cfg), "rates": rates,
                                                  "chain": os.environ.get("TMKD_RUN_TOKEN", "")})
    return rates


def recorded_rates(cfg: Config) -> dict | None:
    """The rates this chain's run_chain.py measured for these settings (None outside a chain or for others)."""
    from tmkd.core.files import read_json
    kept = read_json(cfg.run_path / RATES_FILE)
    token = os.environ.get("TMKD_RUN_TOKEN", "")
    if not kept or not token or kept.get("chain") != token or kept.get("key") != rates_key(cfg):
        return None
    return kept["rates"]


def estimate(cfg: Config, rates: dict | None = None) -> dict:
    """The plan's workload (tmkd.chain.plan), the expected hours on this device (measured rates: the chain's, measured
    before chapter 01, when run by run_chain.py) and the space the run directory needs. Prints a few lines;
    returns the numbers."""
    w = build_plan(cfg)
    kept = None if rates else recorded_rates(cfg)
    r = rates or kept or measure_rates(cfg)
    source = CHAIN_MEASURED if kept else "measured"
    hours = plan_hours(cfg, w, r)
    room = space(cfg, w)
    on = device_name()
    print(f"estimate for profile {cfg.profile} on {on} ({device_precision(cfg)})"
          + (f", {cfg.nproc} processes:" if cfg.nproc > 1 else ":"))
    n, tasks = len(cfg.teacher_lrs), len(cfg.tasks)
    print(f"  teachers: {w['teachers']} ({n} per task x {tasks} task(s), + {tasks} trained with the other pooling in "
          f"chapter 03), {cfg.teacher_epochs:g} epochs on "
          + ", ".join(f"{t} {p['train']:,}" for t, p in w["tasks"].items() if t in cfg.tasks)
          + f" pairs = {w['teacher_examples']:,.0f} training examples at {r['teacher_train']:,.0f}/s ({source})")
    together = f" ({cfg.student_workers} at a time)" if cfg.student_workers > 1 else ""
    print(f"  students: {w['students']} runs, {w['student_examples']:,.0f} training examples at "
          f"{r['student_train']:,.0f}/s{together}; predictions: teachers {w['predict_examples']:,.0f} examples at "
          f"{r['teacher_predict']:,.0f}/s (fp32 logits), students {w['student_predict_examples']:,.0f} at "
          f"{r.get('student_predict', r['teacher_predict']):,.0f}/s")
    most = " at most (students counted at their most epochs; early stopping ends most sooner)" if cfg.student_patience else ""
    print(f"  about {f'{hours:.1f} h' if hours >= 1 else f'{hours * 60:.0f} minutes'} in all{most}; the run directory "
          f"holds at most {gigabytes(room['peak'])} (chapter {room['peak_chapter']}, keep_weights={cfg.keep_weights}) "
          f"and {gigabytes(room['final'])} at the end")
    check_free_space(cfg, w)
    if cfg.profile == "paper":
        print("  ! the paper profile is the full setting: on a free Colab T4 it needs many sessions (the run directory "
              "in Drive resumes each one where the last stopped), or one long session on an A100")
    if hours > 11:
        print(f"  ! longer than a Colab session (12 h at most): plan {int(hours // 10) + 1} sessions; each resumes")
    keep = ("teachers", "students", "teacher_examples", "student_examples", "predict_examples")
    return {"hours": hours, "gb": room["peak"] / 1e9, **{k: w[k] for k in keep}, **r}
