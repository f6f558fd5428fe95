"""The paper's numbers and settings (docs/PAPER.md): what each table and deviation line is compared with.
Light: it imports nothing."""

# Published dev accuracies (%) for reference. Source: Yang et al. 2020, Table 4 ("paper") and the reimplementation in
# the slides ("slides": an earlier student reimplementation, 1000-example subsets, bert-base teachers, its own test
# split, reported as fractions and printed here in %; chapter 01 introduces it; see docs/PAPER.md).
# A range is text as the slides give it, never a midpoint of ours.
PUBLISHED = {
    "paper": {
        "no_kd": {"mnli": 70.77, "snli": 77.75, "qnli": 78.51, "rte": 57.42},
        "teacher": {"mnli": 79.10, "snli": 80.90, "qnli": 90.30, "rte": 68.23},
        "teacher_ensemble": {"mnli": 79.57, "snli": 81.39, "qnli": 90.91, "rte": 70.75},
        "1o1": {"mnli": 71.07, "snli": 78.62, "qnli": 77.65, "rte": 55.23},
        "1avgo1": {"mnli": 70.63, "snli": 78.64, "qnli": 78.20, "rte": 58.12},
        "mom_avg": {"mnli": 71.28, "snli": 78.71, "qnli": 77.90, "rte": 57.40},
        "mo1": {"mnli": 71.98, "snli": 78.80, "qnli": 77.80, "rte": 59.92},
        "tkd": {"mnli": 72.34, "snli": 78.23, "qnli": 85.89, "rte": 67.35},
        "tmkd": {"mnli": 71.29, "snli": 78.35, "qnli": 83.53, "rte": 66.64},
    },
    "slides": {
        "teacher": {"mnli": "52-67", "rte": "52-59", "qnli": "78-84"},  # the slides give a range over their teachers
        "mo1": {"mnli": 39.5},
        "tmkd": {"rte": 58.3, "qnli": 53.2},
    },
}

# How a table's column names each source (never "(seed)": a seed is a random seed in this series).
SOURCE_LABELS = {"paper": "paper", "slides": "reimplementation in the slides"}

# Table 4's serving speed (queries per second on a 1080Ti): a 24-layer BERT-large teacher against the 3-layer student.
PAPER_SPEED = {"teacher_qps": 16, "student_qps": 217, "teacher_layers": 24, "student_layers": 3,
               "teacher_hidden": 1024, "student_hidden": 768}

# What the paper used for each setting a profile may change (docs/PAPER.md), for the deviations each chapter prints.
PAPER_VALUES = {
    "base_model": "BERT-large teachers; student layers from BERT-base",
    "pooling": "cls", "teacher_lrs": (2e-5, 3e-5, 5e-5), "teacher_epochs": 10.0, "teacher_batch_size": 128,
    "max_seq_len": 150, "train_size": 0, "student_layers": 3, "student_head_layers": 1, "student_init": "base",
    "student_lr": 1e-4, "optimizer": "adamw", "alpha": 0.9, "soft_loss": "mse",
    "stage1_corpus": "4M unlabeled web question-passage pairs", "stage1_share": 0.0,
}
