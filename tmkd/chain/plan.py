"""The plan of a run, before anything trains: how many pairs every split and step reads (train, select, unused, the
stage-1 corpus, stage 2), how many models the chapters train, and what that costs at given rates. Built from the
settings and each dataset's size alone (the Hub's sizes are written below; a local folder's files are counted; the
smoke profile's generated files have known sizes), so `run_chain.py --plan` prints it in a second and the chain
refuses an impossible plan (an empty stage-1 corpus, a select slice larger than half a file) before chapter 01.

No torch here: the chain checks the plan before any heavy import."""
from __future__ import annotations

import shutil
from pathlib import Path

from tmkd.core.config import MINILM_MODEL, SMOKE_MODEL, TASKS, Config, TMKDError, stage1_tasks
from tmkd.core.keep import NEVER, POOLING_UNTIL, STAGE1_UNTIL, TIMED_UNTIL, teacher_until, until
from tmkd.inputs.base_model import base_config_dict
from tmkd.inputs.corpus import count_pairs
from tmkd.inputs.data import dev_splits, generated_rows, labelled_rows, part_sizes
from tmkd.model.methods import arm_seeds, arms, is_main_arm, method, method_students

# Pairs with a gold label on the Hub (nyu-mll/glue; stanfordnlp/snli without its 785 train and 158 dev pairs that
# have none): the plan of a Hub profile reads no dataset.
HUB_SIZES = {
    "rte": {"train": 2490, "validation": 277},
    "qnli": {"train": 104743, "validation": 5463},
    "mnli": {"train": 392702, "validation_matched": 9815, "validation_mismatched": 9832},
    "snli": {"train": 549367, "validation": 9842},
}
# Examples/s assumed for a free Colab T4 (fp16, bert-base-uncased teachers, a 3-layer student, 128 tokens, batch 32;
# not yet measured on a T4): the arithmetic beside the colab profile. The chain itself prints an estimate from rates
# it measures on its own device before chapter 01 (tmkd.chain.estimate).
T4_RATES = {"teacher_train": 170.0, "student_train": 600.0, "teacher_predict": 700.0, "student_predict": 2000.0}
CHAPTERS = 8
# Fixed costs, measured on the smoke chain (this project's 2-core CPU, benchmarks/profile_chain.py on an idle run from
# an empty run directory, 2026-12-05): a chapter's kernel start, imports, start and report cells took 71 s over 8
# chapters (9 s each); the training phase took 138 s where its examples at the measured rates account for 68 s, and
# the rest spread over 84 models is about 1 s each (load, Trainer set-up, checkpoint, save, score on dev).
PER_CHAPTER_S = 9.0
PER_MODEL_S = 1.0


def file_sizes(cfg: Config, task: str) -> dict:
    """Labelled pairs of each file of `task` (train and every dev split) in the source the configuration names."""
    splits = ("train", *dev_splits(task))
    if cfg.data_dir:
        return {s: labelled_rows(cfg.data_dir, task, s) for s in splits}
    if cfg.base_model == SMOKE_MODEL:
        return {s: generated_rows(cfg, s) for s in splits}
    return dict(HUB_SIZES[task])


def task_plan(cfg: Config, task: str) -> dict:
    """One task's pairs: its train file, the three parts of it (data.train_parts) and the dev pairs read."""
    files = file_sizes(cfg, task)
    parts = part_sizes(files["train"], cfg.train_size, cfg.select_size, cfg.stage1_share)
    dev = {s: min(n, cfg.dev_size) if cfg.dev_size else n for s, n in files.items() if s != "train"}
    return {"file": files["train"], **parts, "dev": dev}


def build_plan(cfg: Config) -> dict:
    """Every split's and step's pairs, the models and the training examples of the chain (see module doc).
    Raises TMKDError only for a select slice over half a file; everything else impossible is in `problems`."""
    tasks = {}
    for t in dict.fromkeys((*cfg.tasks, *stage1_tasks(cfg))):
        try:
            tasks[t] = task_plan(cfg, t)
        except TMKDError as e:
            raise TMKDError(f"{t}: {e}") from None
    sources = {t: tasks[t]["unused"] for t in stage1_tasks(cfg)}
    available = count_pairs(cfg.corpus_file) if cfg.corpus_file else sum(sources.values())
    pairs = min(available, cfg.stage1_size) if cfg.stage1_size else available
    labelled = tasks[cfg.stage2_task]["train"]
    plan = {"profile": cfg.profile, "source": _source(cfg), "tasks": tasks,
            "stage1": {"sources": sources, "file": cfg.corpus_file, "available": available, "pairs": pairs,
                       "scored_by": cfg.stage1_task, "epochs": cfg.stage1_epochs,
                       "ratio": pairs / labelled if labelled else float("inf")},
            "stage2": {"task": cfg.stage2_task, "labelled": labelled}}
    plan.update(workload(cfg, tasks, pairs))
    plan["problems"] = problems(cfg, plan)
    return plan


def _source(cfg: Config) -> str:
    if cfg.data_dir:
        return "the local folder given as data_dir (files counted)"
    if cfg.base_model == SMOKE_MODEL:
        return "generated smoke data"
    return "the Hugging Face Hub (sizes written in tmkd/chain/plan.py)"


def students_per_task(cfg: Config, chapter: str, stage: int = 0) -> list:
    """(method key, students) that `chapter` trains on one task, counted from the registry (tmkd.model.methods)
    exactly as the chapters train them: each method's students on each of its seeds, a student that two methods
    share (m-o-m's members, 1-o-1's student among them, m-o-m's average and vote) counted once. stage 1: the
    two-stage methods' stage-1 students. The best teacher is not known before chapter 02: any one stands for it;
    the weak-teacher variants are not counted (whether a teacher is weak is known after chapter 02)."""
    teachers = tuple(f"t{i}" for i in range(len(cfg.teacher_lrs)))
    seen, out = set(), []
    for key in arms(chapter if stage != 1 else "06", stages=2 if stage == 1 else None):
        m = method(key)
        if m.needs_weak:
            continue
        students = {(s, m.stages, m.variant, seed) for seed in arm_seeds(key, cfg.seeds, cfg.side_seeds)
                    for s in method_students(key, teachers, teachers[0])} - seen
        seen |= students
        if students:
            out.append((key, len(students)))
    return out


def workload(cfg: Config, tasks: dict, corpus: int) -> dict:
    """The models each chapter trains and their training examples (examples x epochs; with student_patience the
    epochs are the most a student trains), and the examples predicted. The students of chapters 04-06 are counted
    from the methods' registry (students_per_task), the source the chapters train from."""
    n = len(cfg.teacher_lrs)
    train = {t: tasks[t]["train"] for t in cfg.tasks}
    curve = [k for k in set(cfg.stage1_sizes) if 0 < k < corpus]   # the curve's own stage-1 students (0 is m-o-1)
    s_ep, c_ep = cfg.student_epochs, cfg.stage1_epochs
    sweeps = max(len(set(cfg.sweep_optimizers) | {cfg.optimizer}) + len(set(cfg.sweep_head_layers))
                 + len(set(cfg.sweep_layers)) - 2, 1)
    depth = base_config_dict(cfg)["num_hidden_layers"]
    depths = layer_sweep(cfg, depth)
    alphas = len(set(cfg.alphas) - {cfg.alpha})

    def count(chapter, stage=0, keys=None):
        return sum(k for key, k in students_per_task(cfg, chapter, stage) if keys is None or key in keys)
    two_stage = sorted(arms("06", stages=2), key=lambda k: not is_main_arm(k))     # TMKD first, then TKD
    matched = [k for k in arms("06") if method(k).budget == "matched"]
    names = ", ".join(method(k).label for k in two_stage)
    models = [   # (chapter, what, count, training examples of each, a teacher?)
        *[("01", f"{t} teachers", n, train[t] * cfg.teacher_epochs, True) for t in cfg.tasks],
        *[("03", f"{t} teacher with the other pooling", 1, train[t] * cfg.teacher_epochs, True) for t in cfg.tasks],
        ("03", f"{cfg.sweep_task} optimizer and head-layer sweep students", sweeps - len(depths),
         train[cfg.sweep_task] * s_ep, False),
        *[("03", f"{cfg.sweep_task} layer sweep student, {k} layer{'s' if k > 1 else ''}", 1,
           train[cfg.sweep_task] * s_ep, False) for k in depths],
        *[("03", f"{t} student with the other pooling", 1, train[t] * s_ep, False) for t in cfg.tasks],
        *[("04", f"{t} one-stage students", count("04"), train[t] * s_ep, False) for t in cfg.tasks],
        ("05", f"stage-1 students ({names})", count("06", stage=1), corpus * c_ep, False),
        *[("05", f"stage-1 student on {k:,} of the pairs (corpus-size curve)", 1, k * c_ep, False) for k in sorted(curve)],
        ("05", f"{cfg.stage2_task} stage-2 students of the corpus-size curve", len(curve),
         train[cfg.stage2_task] * s_ep, False),
        *[("06", f"{t} stage-2 students ({names})", count("06", keys=two_stage), train[t] * s_ep, False)
          for t in cfg.tasks],
        *[("06", f"{t} compute-matched m-o-1", count("06", keys=matched), train[t] * s_ep + corpus * c_ep, False)
          for t in cfg.tasks],
        ("06", f"{cfg.stage2_task} alpha sweep (TMKD's stage 2)", alphas, train[cfg.stage2_task] * s_ep, False),
        ("06", f"{cfg.stage2_task} alpha sweep (one-stage m-o-1)", alphas, train[cfg.stage2_task] * s_ep, False),
    ]
    models = [m for m in models if m[2]]
    teachers = [m for m in models if m[4]]
    students = [m for m in models if not m[4]]
    dev = sum(sum(tasks[t]["dev"].values()) for t in cfg.tasks) / len(cfg.tasks)
    n_students = sum(m[2] for m in students)
    # with student_patience a student is scored on its task's select slice after every epoch (at most s_ep)
    select_scores = (sum(tasks[t]["select"] for t in cfg.tasks) / len(cfg.tasks) * s_ep) if cfg.student_patience else 0
    predict = sum(n * (tasks[t]["train"] + tasks[t]["select"] + sum(tasks[t]["dev"].values())) for t in cfg.tasks)
    return {"models": models, "teachers": sum(m[2] for m in teachers), "students": n_students,
            "teacher_examples": sum(m[2] * m[3] for m in teachers),
            "student_examples": sum(m[2] * m[3] for m in students),
            "predict_examples": predict + n * corpus,
            "student_predict_examples": n_students * (dev + select_scores)}


def layer_sweep(cfg: Config, depth: int) -> list:
    """The depths chapter 03's layer sweep trains (the paper's Table 9), capped at the teachers' depth."""
    return sorted({min(k, depth) for k in cfg.sweep_layers})


def bert_params(shape: dict, layers: int, pooler: bool) -> int:
    """Parameters of a BERT encoder of `layers` layers shaped like `shape` (embeddings, layers, an optional
    pooler): the arithmetic of BERT's own modules."""
    h, i = shape["hidden_size"], shape["intermediate_size"]
    embeddings = (shape["vocab_size"] + shape["max_position_embeddings"] + shape["type_vocab_size"]) * h + 2 * h
    layer = 4 * (h * h + h) + 2 * h * i + i + h + 4 * h
    return embeddings + layers * layer + (h * h + h if pooler else 0)


def model_bytes(cfg: Config, teacher: bool, layers: int | None = None) -> int:
    """Bytes of one final model's weights (fp32 safetensors): a teacher (the whole base and its classifier) or a
    student of `layers` layers (default student_layers) with its golden head and one soft head per teacher."""
    shape = base_config_dict(cfg)
    h, c = shape["hidden_size"], max(len(TASKS[t].labels) for t in cfg.tasks)
    if teacher:
        return 4 * (bert_params(shape, shape["num_hidden_layers"], pooler=True) + h * c + c)
    head = (cfg.student_head_layers - 1) * (h * h + h) + h * c + c
    return 4 * (bert_params(shape, layers or cfg.student_layers, pooler=False) + (1 + len(cfg.teacher_lrs)) * head)


def data_bytes(cfg: Config, plan: dict) -> int:
    """An upper bound of the run directory's data, logits and predictions: every pair of every file read, at
    max_seq_len tokens (int32 ids, int8 mask and segment ids, two int64 columns, Arrow's offsets), the stage-1
    corpus once more, every teacher's fp32 logits and every student's dev probabilities."""
    per_pair = cfg.max_seq_len * 6 + 40
    pairs = sum(p["file"] + sum(p["dev"].values()) for p in plan["tasks"].values()) + plan["stage1"]["pairs"]
    teachers = plan["teachers"] * max(p["file"] + sum(p["dev"].values()) for p in plan["tasks"].values()) * 12
    students = plan["students"] * max(sum(p["dev"].values()) for p in plan["tasks"].values()) * 20
    return pairs * per_pair + teachers + students + plan["stage1"]["pairs"] * len(cfg.teacher_lrs) * 12


def held_models(cfg: Config, plan: dict) -> list:
    """(chapter trained in, bytes, last chapter that reads them) of the weights kept past their own step under
    cfg.keep_weights (tmkd.core.keep): keep_weights="all" keeps every model's; "needed" the teachers, the teachers
    with the other pooling, the stage-1 students and the students chapter 07 times. The others are read once, right
    after they train, and are only counted while in flight (space)."""
    teacher, student = model_bytes(cfg, True), model_bytes(cfg, False)
    if cfg.keep_weights == "all":
        depths = layer_sweep(cfg, base_config_dict(cfg)["num_hidden_layers"])
        return [(ch, count * (teacher if is_teacher else model_bytes(cfg, False, _layers(what, depths))), NEVER)
                for ch, what, count, _, is_teacher in plan["models"]]
    n = len(cfg.teacher_lrs)
    stage1 = sum(count for ch, what, count, _, _ in plan["models"] if ch == "05" and what.startswith("stage-1"))
    depth = base_config_dict(cfg)["num_hidden_layers"]
    timed = [("03", model_bytes(cfg, False, k), until(cfg, TIMED_UNTIL)) for k in layer_sweep(cfg, depth)]
    if cfg.stage2_task in cfg.tasks:      # m-o-m's members (first seed) and TMKD's first seed on stage2_task
        timed += [("04", n * student, until(cfg, TIMED_UNTIL)), ("06", student, until(cfg, TIMED_UNTIL))]
    return [*[("01", teacher, teacher_until(cfg, t, first=i == 0)) for t in cfg.tasks for i in range(n)],
            *[("03", teacher, until(cfg, POOLING_UNTIL)) for _ in cfg.tasks],
            *timed, ("05", stage1 * student, until(cfg, STAGE1_UNTIL))]


def _layers(what: str, depths: list) -> int | None:
    """The depth of a layer-sweep row of the plan (None: the default student)."""
    return next((k for k in depths if what.endswith(f", {k} layer{'s' if k > 1 else ''}")), None)


def space(cfg: Config, plan: dict) -> dict:
    """The run directory's size by the plan's arithmetic under cfg.keep_weights: at its largest in each chapter
    (what earlier chapters keep, what this chapter keeps, the model in training with its newest checkpoint:
    weights and two Adam moments; two checkpoints where the Trainer writes them into the run directory, one where
    they are mirrored from a local disk: checkpoints_mirrored), its peak and the chapter of the peak, and its size at
    the end."""
    data = data_bytes(cfg, plan)
    held = held_models(cfg, plan)
    checkpoints = 1 if checkpoints_mirrored(cfg) else 2
    depths = layer_sweep(cfg, base_config_dict(cfg)["num_hidden_layers"])
    chapters = {}
    for c in (f"{i:02d}" for i in range(1, CHAPTERS + 1)):
        kept = sum(b for ch, b, last in held if ch <= c <= last)
        flight = max([(1 + 3 * checkpoints) * (1 if is_teacher else max(cfg.student_workers, 1))
                      * model_bytes(cfg, is_teacher, None if is_teacher else _layers(what, depths))
                      for ch, what, _, _, is_teacher in plan["models"] if ch == c] or [0])
        chapters[c] = data + kept + flight
    peak = max(chapters, key=chapters.get)
    final = data + sum(b for _, b, last in held if last >= f"{CHAPTERS:02d}")
    return {"chapters": chapters, "peak": chapters[peak], "peak_chapter": peak, "final": final, "data": data}


def check_free_space(cfg: Config, plan: dict) -> None:
    """Refuse, before anything trains or is written, a run whose run directory would outgrow its filesystem: the plan's
    peak (space) less what the run directory already holds, against the filesystem's free space. check_free_space=False
    goes on (a filesystem that misreports its free space)."""
    if not cfg.check_free_space:
        return
    here = space(cfg, plan)
    run = Path(cfg.run_path)
    held = sum(f.stat().st_size for f in run.rglob("*") if f.is_file()) if run.is_dir() else 0
    root = next(p for p in (run, *run.parents) if p.exists())
    free = shutil.disk_usage(root).free
    if free >= here["peak"] - held:
        return
    fewer = f"fewer seeds (--set seeds={','.join(map(str, cfg.seeds[:2]))})" if len(cfg.seeds) > 2 else "fewer seeds"
    other = ("" if cfg.keep_weights == "needed" else
             f"keep only the weights a later chapter reads (--set keep_weights=needed: at most "
             f"{gigabytes(space(_with(cfg, keep_weights='needed'), plan)['peak'])}), ")
    raise TMKDError(f"the run directory {run} needs about {gigabytes(here['peak'] - held)} more at its largest "
                    f"(chapter {here['peak_chapter']}: {gigabytes(here['peak'])} under keep_weights={cfg.keep_weights}, "
                    f"{gigabytes(held)} there now), but {root} has {gigabytes(free)} free. To fit: {other}{fewer}, "
                    "or a RUN_DIR on a disk with room (on Colab the runtime's own disk, e.g. --run-dir "
                    "/content/tmkd-runs: it is lost when the runtime ends); --set check_free_space=false goes on "
                    "where a filesystem misreports its free space")


def _with(cfg: Config, **changes) -> Config:
    import dataclasses
    return dataclasses.replace(cfg, **changes)


def checkpoints_mirrored(cfg: Config) -> bool:
    """Whether a step's checkpoints are written on a local disk and only the newest reaches the run directory: with a
    checkpoint_dir, and on Colab for a run directory in Drive, where the GPU profiles keep theirs by default
    (tmkd.colab.local_checkpoints)."""
    return bool(cfg.checkpoint_dir) or (not cfg.run_dir and cfg.profile in ("colab", "paper")) or \
        cfg.run_dir.startswith("/content/drive")


def gigabytes(n: float) -> str:
    """Bytes as a reader plans by them: 4.2 GB, 310 MB."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def hours(cfg: Config, plan: dict, rates: dict) -> float:
    """Hours of the chain at `rates` (examples/s of teacher training, student training, prediction, each student's
    dev scores among the predictions), plus the fixed costs measured on the smoke chain (PER_CHAPTER_S, PER_MODEL_S);
    nproc processes share the examples (assumed to scale linearly; each step starts its workers: ~20 s). Students
    that stop early (student_patience) are counted at their most epochs, so with early stopping this is an upper
    estimate of the training."""
    seconds = (plan["teacher_examples"] / rates["teacher_train"] + plan["student_examples"] / rates["student_train"]
               + plan["predict_examples"] / rates["teacher_predict"]
               + plan.get("student_predict_examples", 0) / rates.get("student_predict", rates["teacher_predict"]))
    per_model = PER_MODEL_S + 20 * (cfg.nproc > 1)
    return (seconds / cfg.nproc + PER_CHAPTER_S * CHAPTERS + per_model * (plan["teachers"] + plan["students"])) / 3600


def problems(cfg: Config, plan: dict) -> list:
    """What makes the plan impossible, each with the setting to change."""
    out = []
    for t, p in plan["tasks"].items():
        if t in cfg.tasks and p["train"] == 0:
            out.append(f"{t} has no labelled train pairs left ({p['file']:,} in its file, {p['select']:,} select, "
                       f"{p['held']:,} held out for stage 1): lower select_size or stage1_share")
        for split, n in p["dev"].items():
            if t in cfg.tasks and n == 0:
                out.append(f"{t} {split} has no pairs with a gold label: check that file or its data_dir")
    s1 = plan["stage1"]
    if s1["pairs"] == 0:
        where = f"the corpus file {s1['file']}" if s1["file"] else (
            "; ".join(f"{t}: {plan['tasks'][t]['file']:,} pairs = {plan['tasks'][t]['select']:,} select + "
                      f"{plan['tasks'][t]['train']:,} train" for t in s1["sources"]))
        out.append(f"the stage-1 corpus is empty: every train pair is trained on or selects a teacher ({where}). "
                   "Set stage1_share (e.g. 0.2) to hold a share of each train file out for stage 1, lower "
                   "train_size, add a task with spare pairs to stage1_pool_tasks (stage1_corpus=pool), or give "
                   "stage1_corpus=<a file of unlabeled pairs>")
    if cfg.student_patience and cfg.select_size == 0:
        out.append(f"student_patience={cfg.student_patience} stops students on the select slice, but select_size=0: "
                   "set select_size (e.g. 200) or student_patience=0")
    return out


def check_plan(cfg: Config) -> dict:
    """The plan, or a TMKDError naming everything that makes it impossible (before chapter 01 starts)."""
    plan = build_plan(cfg)
    if plan["problems"]:
        raise TMKDError(f"profile {cfg.profile} cannot run as set:\n  - " + "\n  - ".join(plan["problems"]))
    return plan


def plan_text(cfg: Config, plan: dict, rates: dict | None = None, device: str = "") -> str:
    """The plan as a reader plans by it: pairs per task and part, the stage-1 corpus against stage 2's labelled pairs,
    the models per chapter, and the hours at `rates` (default: a free Colab T4's, assumed)."""
    lines = [f"plan for profile {cfg.profile} (data: {plan['source']})",
             f"  {'task':<6}{'train file':>12}{'select':>9}{'train':>10}{'unused':>10}  dev"]
    for t, p in plan["tasks"].items():
        held = f" ({p['held']:,} held out for stage 1)" if p["held"] else ""
        dev = " + ".join(f"{n:,}" for n in p["dev"].values())
        role = "" if t in cfg.tasks else "   (no teachers: stage-1 pairs only)"
        lines.append(f"  {t:<6}{p['file']:>12,}{p['select']:>9,}{p['train']:>10,}{p['unused']:>10,}  {dev}{held}{role}")
    s1, s2 = plan["stage1"], plan["stage2"]
    src = (f"the file {s1['file']}" if s1["file"] else
           " + ".join(f"{t} {n:,}" for t, n in s1["sources"].items()) + " unused train pairs, labels dropped")
    capped = f" (at most stage1_size={cfg.stage1_size:,} of {s1['available']:,})" if s1["pairs"] < s1["available"] else ""
    lines.append(f"  stage 1: {s1['pairs']:,} pairs{capped} from {src}; scored by the {len(cfg.teacher_lrs)} "
                 f"{s1['scored_by']} teachers; {s1['epochs']:g} epoch(s)")
    lines.append(f"  stage 2 on {s2['task']}: {s2['labelled']:,} labelled pairs; the stage-1 corpus is "
                 f"{s1['ratio']:.1f}x them (paper: 4M web pairs before QNLI's 105k, 38x)")
    lines.append(f"  models: {plan['teachers']} teachers, {plan['students']} students")
    for chapter, what, count, examples, _ in plan["models"]:
        lines.append(f"    {chapter}  {count:>3} x {what}: {examples:,.0f} training examples each")
    r = rates or T4_RATES
    on = device or "a free Colab T4 (rates assumed, not yet measured there)"
    lines.append(f"  training examples: teachers {plan['teacher_examples']:,.0f}, students "
                 f"{plan['student_examples']:,.0f}; predicted: {plan['predict_examples']:,.0f}")
    h = hours(cfg, plan, r)
    lines.append(f"  estimate on {on}: about {f'{h:.1f} h' if h >= 1 else f'{h * 60:.0f} minutes'} (teacher training "
                 f"{r['teacher_train']:,.0f}/s, "
                 f"student training {r['student_train']:,.0f}/s, prediction {r['teacher_predict']:,.0f}/s)")
    lines.append(space_line(cfg, plan))
    for p in plan["problems"]:
        lines.append(f"  ! {p}")
    return "\n".join(lines)


def space_line(cfg: Config, plan: dict) -> str:
    """The run directory's peak and final size under this run's keep_weights, per chapter, and under the other."""
    here = space(cfg, plan)
    other = "all" if cfg.keep_weights == "needed" else "needed"
    there = space(_with(cfg, keep_weights=other), plan)
    per = ", ".join(f"{c} {gigabytes(b)}" for c, b in here["chapters"].items())
    return (f"  run directory (keep_weights={cfg.keep_weights}): at most {gigabytes(here['peak'])} (chapter "
            f"{here['peak_chapter']}), {gigabytes(here['final'])} at the end; per chapter at most: {per}; "
            f"keep_weights={other}: at most {gigabytes(there['peak'])}, {gigabytes(there['final'])} at the end")


def plan_table(cfg: Config):
    """The pairs of every task's splits, as chapter 01 shows them (a frame: one row per task)."""
    import pandas as pd
    plan = build_plan(cfg)
    rows = [{"task": t, "train file": p["file"], "select (chooses teachers, stops students)": p["select"],
             "train (labelled)": p["train"], "unused (stage 1 may read)": p["unused"],
             "dev": sum(p["dev"].values())} for t, p in plan["tasks"].items()]
    return pd.DataFrame(rows).set_index("task").style.format("{:,}")


def stage1_sentence(cfg: Config) -> str:
    """What stage 1 reads, against what stage 2 trains on, in one sentence."""
    plan = build_plan(cfg)
    s1, s2 = plan["stage1"], plan["stage2"]
    src = (f"the pairs of {s1['file']}" if s1["file"] else
           " + ".join(f"{t} {n:,}" for t, n in s1["sources"].items()) + " unused train pairs, labels dropped")
    text = (f"Stage 1 reads {s1['pairs']:,} pairs ({src}), scored by the {len(cfg.teacher_lrs)} {s1['scored_by']} "
            f"teachers: {s1['ratio']:.1f}x the {s2['labelled']:,} labelled pairs of stage 2 on {s2['task']} "
            "(the paper: 4M web pairs before QNLI's 105k, 38x).")
    return text + ("" if s1["file"] or "rte" in s1["sources"] else " " + without_rte(cfg))


def without_rte(cfg: Config) -> str:
    """Why a stage-1 corpus without RTE's pairs departs from the mission's RTE stage 1 (the GPU profiles keep it)."""
    reads = "QNLI-style question-sentence pairs only" if set(stage1_tasks(cfg)) == {"qnli"} else \
        f"the pairs of {' + '.join(t.upper() for t in stage1_tasks(cfg))} only"
    why = ("RTE's all-MiniLM-L6-v2 teachers stayed at the majority class on this run's few RTE pairs in earlier "
           "offline runs, so their logits would teach nothing, and " if cfg.base_model == MINILM_MODEL else "")
    return (f"This corpus reads {reads}, not RTE's pairs, which the series' GPU profiles (colab, paper) and the smoke "
            f"profile pool into stage 1: {why}the paper's own corpus is web question-passage pairs, QNLI's form.")
