"""The KD methods, one record each (the paper's Table 4 and the series' own arms): what a method is called, the
students it trains, how they combine at inference, its stages, whether it is a main arm (every seed) or a side arm,
the comparisons it is the first arm of, and whether the paper reports it. Everything that lists, trains, tables,
compares or plans methods reads this registry, so a new method is one entry here (tests/test_methods.py registers
one and sees it trained, tabled and compared).

Light: no torch (the plan counts each method's students before any heavy import)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple


class Student(NamedTuple):
    """One student a method trains: the teachers whose logits it learns from (in order: one soft head each),
    `average` = their mean logits as a single teacher (one soft head). No teachers: gold labels only (alpha = 0)."""
    teachers: tuple
    average: bool = False


class Comparison(NamedTuple):
    """A comparison A - B whose first arm A is the record holding it."""
    other: str                  # B
    family: str                 # "primary": the paper's headline claims, adjusted together (Holm); "paper": its
                                # other claims (exploratory); "own": the series' own question, never the paper's
    chapters: tuple             # the chapters that compare it: "04" (one stage), "06" (two stages); 08 shows all
    claim: str                  # the comparison named without a direction (the README's verdicts)
    question: str = ""          # "own": the question, in the series' words


# What the students are, from the task's teachers, the best of them and those flagged weak (tmkd.training chooses).
def gold_only(teachers, best, weak):
    return [Student(())]


def best_one(teachers, best, weak):
    return [Student((best,))]


def averaged(teachers, best, weak):
    return [Student(tuple(teachers), average=True)]


def one_per_teacher(teachers, best, weak):
    return [Student((t,)) for t in teachers]


def all_teachers(teachers, best, weak):
    return [Student(tuple(teachers))]


def without_weak(students: Callable) -> Callable:
    """The same students, without the teachers flagged weak on the held-out select slice."""
    def strong(teachers, best, weak):
        return students(tuple(t for t in teachers if t not in weak), best, weak)
    return strong


@dataclass(frozen=True)
class KDMethod:
    """One method, or one row of the tables that is not a trained arm (`students` None: teachers, int8)."""
    key: str                         # metrics.csv's `method` column
    label: str                       # how tables, figures and sentences name it
    students: Callable | None = None  # (teachers, best, weak) -> [Student]; None: a row, not an arm
    combine: str = "eq6"             # "eq6": one student, its heads averaged (Eq. 6); "avg" / "vote": several
                                     # students' probabilities averaged / their predictions voted (m-o-m)
    stages: int = 1                  # 2: distillation pre-training (chapter 05), then stage 2 (chapter 06)
    arm: str = "side"                # "main": trained on every seed; "side": on the first side_seeds
    chapter: str = "04"              # the chapter that trains it ("04" one stage, "06" stage 2 and its controls)
                                     # or makes its row ("01" the teachers, "07" the int8 student)
    variant: str | None = None       # the part of its students' names that sets them apart from another method's
                                     # with the same teachers; "" for the paper's methods; None: the key
    best_teacher: bool = False       # its students need the best teacher (chosen on the select slice)
    needs_weak: bool = False         # trained only where a teacher is flagged weak and at least two stay
    budget: str = ""                 # "matched": as many examples as TMKD's two stages (the compute-matched control)
    seeds: int = 0                   # a side arm on the first `seeds` seeds (0: as its arm says)
    extends: str = ""                # the paper's method it varies (a variant's curves and sentences stand beside it)
    short: str = ""                  # its name inside a sentence, where the label is too long
    table: str = "main"              # "main": Table 4's rows; "variant": the variants' rows below them
    paper: bool = False              # a row of the paper's Table 4 (tmkd.model.paper.PUBLISHED)
    compared: tuple = ()             # the comparisons it is the first arm of (Comparison)

    def __post_init__(self):
        if self.variant is None:
            object.__setattr__(self, "variant", self.key)

    @property
    def trained(self) -> bool:
        return self.students is not None


REGISTRY = {m.key: m for m in (
    KDMethod("teacher", "teacher (mean of 3)", chapter="01", paper=True),
    KDMethod("teacher_ensemble", "teacher ensemble (3)", chapter="01", paper=True),
    KDMethod("no_kd", "student, no KD", gold_only, arm="main", variant="", short="no KD", paper=True),
    KDMethod("1o1", "1-o-1", best_one, variant="", best_teacher=True, paper=True),
    KDMethod("1avgo1", "1avg-o-1", averaged, variant="", paper=True),
    KDMethod("mom_avg", "m-o-m (average)", one_per_teacher, combine="avg", variant="", short="m-o-m", paper=True,
             compared=(Comparison("mo1", "paper", ("04",), "m-o-m (N students) vs m-o-1 (one student)"),)),
    KDMethod("mom_vote", "m-o-m (vote)", one_per_teacher, combine="vote", variant=""),
    KDMethod("mo1", "m-o-1 (MKD)", all_teachers, arm="main", variant="", short="m-o-1", paper=True, compared=(
        Comparison("no_kd", "primary", ("04", "06"), "m-o-1 vs the no-KD student"),
        Comparison("1o1", "paper", ("04",), "m-o-1 (all teachers) vs 1-o-1 (the best teacher)"),
        Comparison("1avgo1", "paper", ("04",), "m-o-1 (a head per teacher) vs 1avg-o-1 (their average)"))),
    KDMethod("tkd", "TKD", best_one, stages=2, chapter="06", variant="", best_teacher=True, paper=True),
    KDMethod("tmkd", "TMKD", all_teachers, stages=2, arm="main", chapter="06", variant="", paper=True, compared=(
        Comparison("mo1", "primary", ("06",), "TMKD (two stages) vs m-o-1 (stage 2 alone)"),
        Comparison("no_kd", "primary", ("06",), "TMKD vs the no-KD student"),
        Comparison("tkd", "paper", ("06",), "TMKD vs TKD (one teacher in both stages); the paper's TMKD row compared "
                   "is TMKD_base, whose 4M-pair stage 1 is the smaller of its two corpora, as ours is"),
        Comparison("mo1_matched", "own", ("06",), "TMKD vs m-o-1 trained for as many examples (a control the "
                   "paper lacks)", "stage 1 beats more steps"))),
    KDMethod("tmkd_int8", "TMKD, int8", chapter="07"),
    KDMethod("mom_member", "m-o-m member (1 teacher)", table="variant"),
    KDMethod("mo1_strong", "m-o-1 without weak teachers", without_weak(all_teachers), variant="strong",
             needs_weak=True, extends="mo1", table="variant", compared=(
                 Comparison("mo1", "own", ("04",), "m-o-1 without the weak teachers vs with them",
                            "leaving the weak teachers out helps m-o-1"),)),
    KDMethod("1avgo1_strong", "1avg-o-1 without weak teachers", without_weak(averaged), variant="strong",
             needs_weak=True, extends="1avgo1", table="variant", compared=(
                 Comparison("1avgo1", "own", ("04",), "1avg-o-1 without the weak teachers vs with them",
                            "leaving the weak teachers out helps 1avg-o-1"),)),
    KDMethod("mo1_label", "m-o-1, label-only targets", all_teachers, variant="labelonly", extends="mo1", seeds=3,
             short="the label-only control", table="variant", compared=(
                 Comparison("no_kd", "own", ("04",), "m-o-1's loss on the gold label written as logits at each "
                            "teacher's scale vs no KD", "m-o-1's loss on gold-label targets beats no KD"),
                 Comparison("mo1", "own", ("04",), "the label-only control vs m-o-1 (the same loss on the teachers' "
                            "own logits)", "gold-label targets beat the teachers' logits on their own training pairs"))),
    KDMethod("mo1_matched", "m-o-1, compute-matched to TMKD", all_teachers, chapter="06", variant="matched-full",
             budget="matched", extends="mo1", short="the compute-matched control", table="variant"),
)}


def method(key: str) -> KDMethod:
    """The record of `key`, or a clear refusal naming the methods there are."""
    if key not in REGISTRY:
        raise ValueError(f"unknown method {key!r}: choose from {[k for k, m in REGISTRY.items() if m.trained]}")
    return REGISTRY[key]


def label(key: str) -> str:
    """How tables, figures and sentences name a method (its key where it has no record)."""
    return REGISTRY[key].label if key in REGISTRY else key


def short_name(key: str) -> str:
    """A method's name inside a sentence: its short name, else its label."""
    return REGISTRY[key].short or label(key) if key in REGISTRY else key


def table_order(table: str | None = None) -> tuple:
    """Every key in table order (Table 4's rows, then the variants'), or one `table`'s."""
    return tuple(k for k, m in REGISTRY.items() if table in (None, m.table))


def table_rows(*chapters) -> tuple:
    """The rows a chapter's table shows, in table order: the methods and rows of `chapters` ("01", "04": the
    teachers and the one-stage methods with m-o-m's members and the variants)."""
    return tuple(k for k, m in REGISTRY.items() if m.chapter in chapters)


def arms(chapter: str | None = None, stages: int | None = None, variants: bool = True) -> tuple:
    """The trained methods, in table order: of one chapter, of one number of stages, with or without the variants
    (records that extend a paper's method)."""
    return tuple(k for k, m in REGISTRY.items() if m.trained and chapter in (None, m.chapter)
                 and stages in (None, m.stages) and (variants or not m.extends))


def is_main_arm(key: str) -> bool:
    return method(key).arm == "main"


def arm_seeds(key: str, seeds, side_seeds: int) -> tuple:
    """The seeds a method trains: every seed for a main arm (no KD, m-o-1, TMKD and its stage 1), the first
    side_seeds for the others (0: every seed), the first `seeds` of a record that sets them (the label-only control:
    three, so that its comparisons are paired over seeds)."""
    seeds, m = tuple(seeds), method(key)
    if m.seeds:
        return seeds[:m.seeds]
    return seeds if is_main_arm(key) or not side_seeds else seeds[:side_seeds]


def method_students(key: str, teachers, best: str = "", weak=()) -> list:
    """The students `key` trains, given the task's teachers, the best of them and those flagged weak."""
    m = method(key)
    if not m.trained:
        raise ValueError(f"{key!r} is a row of the tables, not a method that trains students")
    return m.students(tuple(teachers), best, tuple(weak))


def comparisons(chapter: str | None = None, family: str | None = None) -> tuple:
    """The pairs (A, B) compared in `chapter` ("04", "06"; None: all of them, chapter 08) or of one family: the
    paper's headline claims first, then its other claims, then the series' own questions; two-stage arms first."""
    found = [(fam, -m.stages, i, (k, c.other)) for i, (k, m) in enumerate(REGISTRY.items()) for c in m.compared
             for fam in [("primary", "paper", "own").index(c.family)]
             if chapter in (None, *c.chapters) and family in (None, c.family)]
    return tuple(dict.fromkeys(pair for *_, pair in sorted(found, key=lambda f: f[:3])))


def comparison(a: str, b: str) -> Comparison | None:
    """The record of the comparison A - B (None where no method compares them)."""
    return next((c for c in REGISTRY[a].compared if c.other == b), None) if a in REGISTRY else None


# The comparison lists as the chapters import them (computed from the registry at import).
PRIMARY_COMPARISONS = comparisons(family="primary")
ONE_STAGE_COMPARISONS = comparisons("04")
TWO_STAGE_COMPARISONS = comparisons("06")
ALL_COMPARISONS = comparisons()
