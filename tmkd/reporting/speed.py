"""Speed: examples/s at batch 32 and latency at batch 1, the same device and inputs for every model, and the int8
student's accuracy (chapter 07)."""
from __future__ import annotations

import statistics

import numpy as np
import torch
import torch.nn as nn

from tmkd.core.config import Config
from tmkd.inputs.data import dev_splits, split_dataset
from tmkd.training.environment import device_name
from tmkd.training.specs import stage2_spec, timed_specs
from tmkd.core.files import read_json, write_text_atomic
from tmkd.core.timing import call_times
from tmkd.model.method import TMKDStudent, accuracy
from tmkd.model.paper import PAPER_SPEED
from tmkd.core.progress import progress
from tmkd.training.rundir import has_weights, read_metrics, record_metrics, require_weights
from tmkd.training.students import StudentSpec, load_student, spec_row, student_dir, student_predictions
from tmkd.training.teachers import load_teacher, teacher_dir, teacher_names
from tmkd.training.trainer import count_params, predict_logits


def speed_inputs(cfg: Config, task: str, batch_size: int) -> dict:
    """`batch_size` dev examples padded to max_seq_len: the same tensors for every model."""
    ds = split_dataset(cfg, task, dev_splits(task)[0])
    rows = [ds[i % len(ds)] for i in range(batch_size)]
    pad = cfg.max_seq_len
    return {k: torch.tensor([list(r[k]) + [0] * (pad - len(r[k])) for r in rows])
            for k in ("input_ids", "attention_mask", "token_type_ids")}


@torch.inference_mode()
def time_models(models: list, inputs: dict, repeats: int, warmup: int = 2) -> float:
    """Median seconds for all `models` to run on `inputs` one after the other (an ensemble runs them all)."""
    dev = next(models[0].parameters()).device
    inputs = {k: v.to(dev) for k, v in inputs.items()}
    for m in models:
        m.eval()
    return statistics.median(call_times(lambda: [m(**inputs) for m in models], repeats, warmup))


def speed_row(name: str, models: list, cfg: Config, inputs32: dict, inputs1: dict) -> dict:
    t32 = time_models(models, inputs32, cfg.speed_repeats)
    t1 = time_models(models, inputs1, cfg.speed_repeats * 3)
    on = next(models[0].parameters(), torch.empty(0)).device
    return {"model": name, "params": sum(count_params(m) for m in models),
            "device": device_name() if on.type == "cuda" else device_name(cpu=True),
            "batch_size": len(inputs32["input_ids"]), "seq_len": inputs32["input_ids"].shape[1],
            "examples_per_s": len(inputs32["input_ids"]) / t32, "latency_ms": 1000 * t1,
            "threads": torch.get_num_threads()}


def speed_models(cfg: Config) -> dict:
    """name -> (list of models, method) for the speed table: teacher, ensemble, each student size, m-o-m, TMKD (the
    students of tmkd.training.specs.timed_specs whose weights are here). The teachers share one shape, so the
    ensemble is timed as three passes of the first teacher: the same work, with the other teachers' weights free
    to go once their logits are cached (keep_weights="needed")."""
    task = cfg.stage2_task
    names = teacher_names(cfg)
    first = teacher_dir(cfg, task, names[0]) / "final"
    require_weights(first, "run chapter 01 again with FORCE=True to retrain it")
    teacher = load_teacher(first)
    models = {f"{task}/teacher": ([teacher], "teacher"),
              f"{task}/teacher-ensemble-{len(names)}": ([teacher] * len(names), "teacher_ensemble")}
    for name, (specs, method) in timed_specs(cfg).items():
        if all(has_weights(student_dir(cfg, s) / "final") for s in specs):
            models[name] = ([load_student(cfg, s) for s in specs], method)
    return models


def measure_speed(cfg: Config, force: bool = False):
    """Chapter 07: time every model on the same inputs into speed.csv, the int8 TMKD student among them (its dev
    accuracy is tmkd.training.experiments.int8_accuracy's). Rows already measured on this device with the same batch size
    and sequence length are kept; a model timed again replaces its row."""
    import pandas as pd
    path = cfg.run_path / "speed.csv"
    old = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["model", "device", "batch_size", "seq_len"])
    here = old[old["device"].isin([device_name(), device_name(cpu=True)])
               & (old["batch_size"] == cfg.speed_batch_size) & (old["seq_len"] == cfg.max_seq_len)]
    inputs32 = speed_inputs(cfg, cfg.stage2_task, cfg.speed_batch_size)
    inputs1 = {k: v[:1] for k, v in inputs32.items()}
    rows = []
    for name, (models, method) in speed_models(cfg).items():
        if force or name not in set(here["model"]):
            progress(f"  timing {name}")
            rows.append(speed_row(name, models, cfg, inputs32, inputs1) | {"method": method})
    tmkd = stage2_spec(cfg, "tmkd")
    if has_weights(student_dir(cfg, tmkd) / "final") and (force or f"{cfg.stage2_task}/tmkd-int8" not in set(here["model"])):
        # Dynamic int8 runs on the CPU only: it is timed there beside the same student in fp32 on the CPU,
        # never beside GPU rows (tables and plots compare models on one device).
        fp32 = TMKDStudent.from_pretrained(str(student_dir(cfg, tmkd) / "final")).cpu().eval()
        params = count_params(fp32)
        cpu32 = {k: v.cpu() for k, v in inputs32.items()}
        cpu1 = {k: v.cpu() for k, v in inputs1.items()}
        if torch.cuda.is_available():
            rows.append(speed_row(f"{cfg.stage2_task}/tmkd", [fp32], cfg, cpu32, cpu1) | {"method": "tmkd"})
        q = quantize_int8(fp32)
        rows.append(speed_row(f"{cfg.stage2_task}/tmkd-int8", [q], cfg, cpu32, cpu1)
                    | {"method": "tmkd_int8", "params": params})
    if rows:
        new = pd.DataFrame(rows)
        keep = ~old.set_index(["model", "device"]).index.isin(new.set_index(["model", "device"]).index)
        write_text_atomic(path, pd.concat([old[keep], new], ignore_index=True).to_csv(index=False))
    return pd.read_csv(path)


def speedup_sentence(cfg: Config, speed) -> str:
    """The TMKD student's speed-up over one teacher in this run, beside the paper's 13.6x and why they differ: an
    encoder's compute per example grows with its layers times its width squared; the paper's teacher is deeper and
    wider than its student (24 x 1024 against 3 x 768), while here the student keeps its teacher's width."""
    on = speed[speed["device"] == speed["device"].mode()[0]].set_index("model")["examples_per_s"]
    task = cfg.stage2_task
    # the layer sweep's student of the configured depth: the one timing chapter 07's size sentence reads too
    student = on.get(f"{cfg.sweep_task}/student-k{cfg.student_layers}", on.get(f"{task}/tmkd"))
    teacher = on.get(f"{task}/teacher")
    if student is None or teacher is None:
        return "The teacher or the student was not timed in this run: no speed-up to report."
    layers = read_json(teacher_dir(cfg, task, teacher_names(cfg)[0]) / "final" / "config.json")["num_hidden_layers"]
    p = PAPER_SPEED
    paper = p["student_qps"] / p["teacher_qps"]
    paper_compute = p["teacher_layers"] * p["teacher_hidden"] ** 2 / (p["student_layers"] * p["student_hidden"] ** 2)
    k = cfg.student_layers
    return (f"The {k}-layer student runs {student:,.0f} examples/s, {student / teacher:.1f}x one {layers}-layer teacher "
            f"({teacher:,.0f}/s) on {speed['device'].mode()[0]}, where its layer count predicts about "
            f"{layers / k:.0f}x (the student keeps its teacher's width). The paper's student serves "
            f"{p['student_qps']} queries/s against {p['teacher_qps']} for its teacher, {paper:.1f}x, because that teacher "
            f"is deeper and wider: {p['teacher_layers']} layers of {p['teacher_hidden']:,} against the student's "
            f"{p['student_layers']} of {p['student_hidden']}, about {paper_compute:.0f}x the compute per example.")


# ---- chapter 07: the int8 student ---------------------------------------------------------------------------

def quantize_int8(model):
    """Dynamic int8 quantization of every Linear layer, for CPU inference (the fp32 model is left as it was)."""
    import copy
    return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).cpu().eval(), {nn.Linear}, dtype=torch.qint8)


def int8_accuracy(cfg: Config, force: bool = False) -> list:
    """The TMKD student (first seed) after dynamic int8 quantization, on stage2_task's dev set: accuracy and how
    often it predicts what the same student in fp32 does (metrics rows method='tmkd_int8'). Kept when recorded."""
    spec = stage2_spec(cfg, "tmkd")
    final = student_dir(cfg, spec) / "final"
    if not has_weights(final):
        return []
    model = f"{spec.task}/{spec.name}-int8"
    if not force and model in set(read_metrics(cfg.run_path)["model"]):
        return []
    fp32 = TMKDStudent.from_pretrained(str(final)).cpu().eval()
    rows = int8_rows(cfg, spec, quantize_int8(fp32), fp32, count_params(fp32))
    record_metrics(cfg.run_path, rows)
    return rows


def int8_rows(cfg: Config, spec: StudentSpec, quantized, fp32_model, params: int) -> list:
    """Dev accuracy of the int8 student, and how often it predicts what the same student in fp32 does (both
    on the CPU, so the agreement measures quantization only)."""
    rows = []
    for split in dev_splits(spec.task):
        ds = split_dataset(cfg, spec.task, split)
        probs = np.exp(predict_logits(quantized, ds, cfg.eval_batch_size, desc=f"int8 {split}"))
        if torch.cuda.is_available():
            fp32 = {"probs": np.exp(predict_logits(fp32_model, ds, cfg.eval_batch_size, desc="fp32", mixed=False))}
        else:
            fp32 = student_predictions(cfg, spec, split)
        rows.append(spec_row(cfg, spec) | {
            "method": "tmkd_int8", "model": f"{spec.task}/{spec.name}-int8", "split": split, "sweep": "",
            "accuracy": accuracy(probs, ds["label"]), "n_examples": len(ds),
            "params": params,
            "agreement_fp32": float((probs.argmax(-1) == fp32["probs"].argmax(-1)).mean())})
    return rows
