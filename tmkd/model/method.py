"""The paper in code: the multi-header student, its losses, Eq. 6, and how a method's students
combine (what each KD method is: tmkd.model.methods).

Yang, Shou, Gong, Lin, Jiang. "Model Compression with Two-stage Multi-teacher Knowledge Distillation for Web
Question Answering System", WSDM 2020 (arXiv 1910.08381). Read beside ../shared/docs/PAPER.md.

Notation (paper Sec. 3): h is the student's sentence vector (BERT's [CLS] state; `pool` documents the one
deviation, mean pooling for a base that was trained that way); T0 is the golden label, T1..TN the teachers;
W_g the golden head, W_si the soft head of teacher i; C the classes; B the batch.
Shapes: golden logits (B, C), soft-head logits and teacher logits (B, N, C).

This module has no configuration object and reads or writes no file: tensors and models in, tensors and models
out. Where files come from, how training runs and where results go lives in the other modules of this package.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import AutoConfig, BertConfig, BertModel, BertPreTrainedModel
from dataclasses import dataclass

from transformers.modeling_outputs import SequenceClassifierOutput

from tmkd.model.choices import POOLINGS, SOFT_LOSS_NAMES
from tmkd.model.methods import Student

# ------------------------------------------------------------------------------------------------
# Losses (Sec. 3.1): golden head = cross-entropy; soft head i = MSE on teacher i's pre-softmax logits.
# ------------------------------------------------------------------------------------------------

def golden_loss(golden_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """l_g = cross-entropy of P = softmax(W_g h) with the gold label.   golden_logits (B, C), labels (B,)"""
    return F.cross_entropy(golden_logits, labels)


def mse_soft_loss(soft_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The paper's l_s = (1/N) sum_i l_si with l_si = (1/|C|) sum_c (R_si(c) - R_ti(c))^2, mean over the batch.

    R_si: soft head i's logits, R_ti: teacher i's pre-softmax logits, both (B, N, C). The paper uses no
    temperature; the argument exists only so that every soft loss has one signature."""
    del temperature
    return ((soft_logits - teacher_logits) ** 2).mean(dim=-1).mean(dim=-1).mean()


def kl_soft_loss(soft_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Not the paper's: Hinton et al.'s T^2 KL(softmax(R_t/T) || softmax(R_s/T)), mean over teachers and batch."""
    T = temperature
    log_p = F.log_softmax(soft_logits / T, dim=-1)
    q = F.softmax(teacher_logits / T, dim=-1)
    kl = (q * (torch.log(q.clamp_min(1e-12)) - log_p)).sum(dim=-1)   # (B, N)
    return kl.mean() * T * T


# Soft losses by name (the `soft_loss` setting, validated against choices.SOFT_LOSS_NAMES): "mse" is the paper's,
# "kl" a documented alternative.
SOFT_LOSSES = {"mse": mse_soft_loss, "kl": kl_soft_loss}
assert tuple(SOFT_LOSSES) == SOFT_LOSS_NAMES, "choices.SOFT_LOSS_NAMES names every soft loss, in order"


def tmkd_loss(golden_logits, soft_logits, labels, teacher_logits, alpha: float,
              soft_loss: str = "mse", temperature: float = 1.0) -> torch.Tensor:
    """l = (1 - alpha) l_g + alpha l_s.  alpha = 1: stage 1 (no gold labels needed); alpha = 0: no KD."""
    if alpha < 1.0 and labels is None:
        raise ValueError(f"alpha={alpha} needs gold labels; only alpha=1 (stage 1) trains without them")
    if alpha > 0.0 and teacher_logits is None:
        raise ValueError(f"alpha={alpha} needs teacher logits; alpha=0 is the no-KD baseline")
    if soft_loss not in SOFT_LOSSES:
        raise ValueError(f"unknown soft loss {soft_loss!r}: choose from {sorted(SOFT_LOSSES)}")
    l_g = golden_loss(golden_logits, labels) if alpha < 1.0 else 0.0
    if alpha == 0.0:
        return l_g
    l_s = SOFT_LOSSES[soft_loss](soft_logits, teacher_logits, temperature)
    return (1.0 - alpha) * l_g + alpha * l_s


# ------------------------------------------------------------------------------------------------
# Inference (Eq. 6): the mean of every trained head's probabilities.
# ------------------------------------------------------------------------------------------------

def head_probabilities(golden_logits: torch.Tensor, soft_logits, alpha: float) -> torch.Tensor:
    """Eq. 6: O = (1/(N+1)) (P + sum_i softmax(R_si)), shape (B, C).

    Only the heads that were trained vote: the soft heads alone when alpha = 1 (the golden head never saw a
    label), the golden head alone when alpha = 0 or there are no teachers."""
    heads = []
    if alpha < 1.0 or soft_logits is None:
        heads.append(golden_logits.softmax(-1).unsqueeze(1))            # (B, 1, C)
    if alpha > 0.0 and soft_logits is not None and soft_logits.shape[1] > 0:
        heads.append(soft_logits.softmax(-1))                           # (B, N, C)
    return torch.cat(heads, dim=1).mean(dim=1)


def accuracy(logits_or_probs, labels) -> float:
    """Accuracy against the gold labels (never against a teacher's argmax)."""
    return float((np.asarray(logits_or_probs).argmax(-1) == np.asarray(labels)).mean())


def softmax_np(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def teacher_ensemble(teacher_logits: np.ndarray) -> np.ndarray:
    """The teacher-ensemble baseline: the mean of the N teachers' probabilities.   (n, N, C) -> (n, C)"""
    return softmax_np(teacher_logits).mean(axis=1)


# ------------------------------------------------------------------------------------------------
# The sentence vector h. The paper's BERT classifies from its [CLS] state. A base pre-trained as a sentence model
# (all-MiniLM-L6-v2: mean of the token states) never trained its [CLS] state or pooler, so for such a base the
# series uses the pooling it was trained with: a named setting (`pooling`), the same for teachers and students.
# ------------------------------------------------------------------------------------------------



def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """h from the last layer's states (B, T, H): the [CLS] state, or the mean over real (unpadded) tokens."""
    if how == "cls":
        return hidden[:, 0]
    if how == "mean":
        if attention_mask is None:
            return hidden.mean(dim=1)
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)                      # (B, T, 1)
        return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp_min(1e-9)
    raise ValueError(f"pooling must be one of {POOLINGS}, not {how!r}")


class TeacherConfig(BertConfig):
    """A teacher: BERT + a linear classifier on h (`pooling`)."""
    model_type = "tmkd-teacher"

    def __init__(self, pooling="cls", **kwargs):
        super().__init__(**kwargs)
        self.pooling = pooling


class TeacherClassifier(BertPreTrainedModel):
    """A fine-tuned BERT teacher. pooling="cls" is exactly BertForSequenceClassification (BERT's pooler, a
    tanh layer on [CLS]); "mean" classifies from the mean of the token states."""
    config_class = TeacherConfig

    def __init__(self, config):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=config.pooling == "cls")
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None):
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        h = out.pooler_output if self.config.pooling == "cls" else pool(out.last_hidden_state, attention_mask, "mean")
        logits = self.classifier(self.dropout(h))                               # (B, C): the teacher's R_t
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


AutoConfig.register(TeacherConfig.model_type, TeacherConfig)    # so a teacher's folder reads as a config


# ------------------------------------------------------------------------------------------------
# The student (Sec. 3.1, Fig. 1): BERT-k and the multi-header layer on its sentence vector h.
# ------------------------------------------------------------------------------------------------

class TMKDConfig(BertConfig):
    """BERT's config plus the multi-header layer's: soft heads (one per teacher), FC layers per head, alpha,
    and the soft loss by name ("temperature" is a generation key in transformers, hence kd_temperature)."""
    model_type = "tmkd-student"

    def __init__(self, n_teachers=3, head_layers=1, alpha=0.7, soft_loss="mse", kd_temperature=1.0, pooling="cls",
                 **kwargs):
        super().__init__(**kwargs)
        self.n_teachers, self.head_layers, self.alpha = n_teachers, head_layers, alpha
        self.soft_loss, self.kd_temperature, self.pooling = soft_loss, kd_temperature, pooling


def make_head(hidden: int, classes: int, layers: int) -> nn.Module:
    """One head: (layers - 1) x [Linear(H, H), GELU], then Linear(H, C). The paper's head is layers = 1;
    the slides' reimplementation's "1 BERT layer + n FC layers" is the same student with deeper heads."""
    blocks = []
    for _ in range(layers - 1):
        blocks += [nn.Linear(hidden, hidden), nn.GELU()]
    return nn.Sequential(*blocks, nn.Linear(hidden, classes))


@dataclass
class StudentOutput(SequenceClassifierOutput):
    """The student's output: loss and logits (log O) as any classifier's, and each head's raw logits beside them
    (golden (B, C), soft (B, N, C) or None), so that one forward scores every head."""
    golden_logits: torch.Tensor | None = None
    soft_logits: torch.Tensor | None = None


class TMKDStudent(BertPreTrainedModel):
    """k BERT layers and the multi-header layer on the [CLS] state: one golden head, one soft head per teacher."""
    config_class = TMKDConfig

    def __init__(self, config):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        h, c = config.hidden_size, config.num_labels
        self.golden_head = make_head(h, c, config.head_layers)                                  # W_g
        self.soft_heads = nn.ModuleList(make_head(h, c, config.head_layers) for _ in range(config.n_teachers))  # W_si
        self.post_init()

    def heads(self, input_ids=None, attention_mask=None, token_type_ids=None):
        """Every head's logits: golden (B, C) and soft (B, N, C) (None without teachers)."""
        states = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state       # (B, T, H)
        h = self.dropout(pool(states, attention_mask, self.config.pooling))    # (B, H)
        golden = self.golden_head(h)                                            # (B, C)
        soft = torch.stack([head(h) for head in self.soft_heads], dim=1) if len(self.soft_heads) else None
        return golden, soft                                                     # soft: (B, N, C)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, teacher_logits=None):
        """loss: Sec. 3's l when labels and/or teacher_logits (B, N, C) are given.
        logits: log O, the log of Eq. 6's averaged head probabilities (B, C) - not a head's raw logits, so
        that argmax gives the prediction and softmax(logits) = exp(logits) = O."""
        golden, soft = self.heads(input_ids, attention_mask, token_type_ids)
        c = self.config
        loss = None
        if labels is not None or teacher_logits is not None:
            if teacher_logits is not None and c.alpha > 0 and teacher_logits.shape[1] != c.n_teachers:
                raise ValueError(f"{teacher_logits.shape[1]} cached teachers but the student has {c.n_teachers} "
                                 "soft heads: build the student with one soft head per teacher")
            loss = tmkd_loss(golden, soft, labels, teacher_logits, c.alpha, c.soft_loss, c.kd_temperature)
        probs = head_probabilities(golden, soft, c.alpha)
        return StudentOutput(loss=loss, logits=probs.clamp_min(1e-12).log(), golden_logits=golden, soft_logits=soft)


# The BERT settings a student shares with the model its layers come from (the rest is the student's own).
BERT_ARCH_KEYS = ("vocab_size", "hidden_size", "num_attention_heads", "intermediate_size", "hidden_act",
                  "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
                  "type_vocab_size", "initializer_range", "layer_norm_eps", "pad_token_id")


def student_config(bert_config: dict, layers: int, label_names, n_teachers: int, head_layers: int = 1,
                   alpha: float = 0.7, soft_loss: str = "mse", kd_temperature: float = 1.0,
                   pooling: str = "cls") -> TMKDConfig:
    """The config of a BERT-k student whose encoder has the shapes of `bert_config` (a dict)."""
    if layers > bert_config["num_hidden_layers"]:
        raise ValueError(f"the student asks for {layers} layers but its source has only "
                         f"{bert_config['num_hidden_layers']}")
    if soft_loss not in SOFT_LOSSES:
        raise ValueError(f"unknown soft loss {soft_loss!r}: choose from {sorted(SOFT_LOSSES)}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
    labels = list(label_names)
    keep = {k: v for k, v in bert_config.items() if k in BERT_ARCH_KEYS}
    return TMKDConfig(**keep, num_hidden_layers=layers, num_labels=len(labels), n_teachers=n_teachers,
                      head_layers=head_layers, alpha=alpha, soft_loss=soft_loss, kd_temperature=kd_temperature,
                      pooling=pooling, id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})


def copy_bottom_layers(student: TMKDStudent, bert: BertModel) -> TMKDStudent:
    """BERT-k's initialisation (Sec. 4.1): the embeddings and the bottom k encoder layers of `bert`."""
    student.bert.embeddings.load_state_dict(bert.embeddings.state_dict())
    for i in range(student.config.num_hidden_layers):
        student.bert.encoder.layer[i].load_state_dict(bert.encoder.layer[i].state_dict())
    return student


def carry_over_stage1(stage1: TMKDStudent, stage2: TMKDStudent) -> str:
    """Stage 2 starts from the stage-1 student (Sec. 3.3): its encoder always; its heads where their shape
    fits the new task (same classes, same head depth), else they stay freshly initialised. Returns what was kept."""
    old, new = stage1.config, stage2.config
    stage2.bert.load_state_dict(stage1.bert.state_dict())
    if new.num_labels != old.num_labels or new.head_layers != old.head_layers:
        return (f"encoder carried over from stage 1; heads re-initialised (stage 1 had {old.num_labels} classes "
                f"x {old.head_layers} FC layers, stage 2 needs {new.num_labels} x {new.head_layers})")
    stage2.golden_head.load_state_dict(stage1.golden_head.state_dict())
    carried = min(new.n_teachers, old.n_teachers)
    for i in range(carried):
        stage2.soft_heads[i].load_state_dict(stage1.soft_heads[i].state_dict())
    return f"encoder, golden head and {carried} of {new.n_teachers} soft heads carried over from stage 1"


# ------------------------------------------------------------------------------------------------
# A method's students (tmkd.model.methods, one record per method): their soft heads; how m-o-m combines them.
# ------------------------------------------------------------------------------------------------

def soft_heads(student: Student) -> int:
    """N for the multi-header layer: one per teacher, one for an averaged teacher, none without teachers."""
    if not student.teachers:
        return 0
    return 1 if student.average else len(student.teachers)


def combine_students(probs, how: str = "avg") -> np.ndarray:
    """m-o-m: predictions from aligned per-student probabilities (students x examples x classes).

    avg: argmax of the mean probability (paper). vote: majority of the students' argmax (the earlier
    reimplementation); a tie goes to the class with the highest mean probability among the tied ones."""
    probs = np.asarray(probs)
    mean = probs.mean(axis=0)
    if how == "avg":
        return mean.argmax(-1)
    if how != "vote":
        raise ValueError(f"how must be 'avg' or 'vote', not {how!r}")
    votes = np.zeros_like(mean)
    for p in probs:
        votes[np.arange(len(mean)), p.argmax(-1)] += 1
    top = votes == votes.max(-1, keepdims=True)
    return np.where(top, mean, -np.inf).argmax(-1)
