"""Reading GLUE-layout folders: quotes, label names, unlabeled rows, MNLI's two dev sets, fixed subsets."""
import re
from pathlib import Path

import numpy as np
import pytest

import helpers
import tmkd.inputs.base_model
import tmkd.core.config
import tmkd.inputs.data
from conftest import SHARED_GLUE, needs_shared_glue, smoke_config



def write_tsv(path: Path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")


@pytest.fixture
def glue_dir(tmp_path):
    d = tmp_path / "glue"
    rte = ["index", "sentence1", "sentence2", "label"]
    write_tsv(d / "RTE" / "train.tsv", rte, [
        ["0", '"Quoted" start of a premise, with a second "quote.', "A hypothesis.", "entailment"],
        ["1", "Plain premise.", '"Another quoted hypothesis', "not_entailment"],
        ["2", "Third premise.", "Third hypothesis.", "entailment"]])
    write_tsv(d / "RTE" / "dev.tsv", rte, [["0", "Dev premise.", "Dev hypothesis.", "not_entailment"]])
    mnli = ["index", "promptID", "sentence1", "sentence2", "label1", "gold_label"]
    write_tsv(d / "MNLI" / "train.tsv", mnli, [
        ["0", "7", "p0", "h0", "neutral", "neutral"],
        ["1", "7", "p1", "h1", "contradiction", "contradiction"],
        ["2", "7", "p2", "h2", "neutral", "-"]])                       # no gold label: dropped
    write_tsv(d / "MNLI" / "dev_matched.tsv", mnli, [["0", "1", "matched p", "matched h", "entailment", "entailment"]])
    write_tsv(d / "MNLI" / "dev_mismatched.tsv", mnli, [
        ["0", "1", "mismatched p", "mismatched h", "contradiction", "contradiction"],
        ["1", "1", "mismatched p2", "mismatched h2", "neutral", "neutral"]])
    return d


def test_local_rte_keeps_sentences_that_start_with_a_quote(glue_dir):
    df = tmkd.inputs.data.read_local_split(glue_dir, "rte", "train")
    assert len(df) == 3
    assert df.loc[0, "text_a"] == '"Quoted" start of a premise, with a second "quote.'
    assert df.loc[1, "text_b"] == '"Another quoted hypothesis'


def test_labels_are_mapped_by_name_and_unlabeled_rows_dropped(glue_dir):
    df = tmkd.inputs.data.frame_to_labelled(tmkd.inputs.data.read_local_split(glue_dir, "mnli", "train"), "mnli", "mnli/train")
    order = tmkd.core.config.TASKS["mnli"].labels
    assert order == ("entailment", "neutral", "contradiction")
    assert df["label"].tolist() == [1, 2]           # neutral, contradiction; the '-' row is gone
    assert df["idx"].tolist() == [0, 1]


def test_mnli_has_two_dev_sets_kept_apart(glue_dir, tmp_path):
    cfg = smoke_config(tmp_path / "run", data_dir=str(glue_dir), tasks=("rte", "qnli", "mnli"), select_size=0)
    data = helpers.task_data(cfg, "mnli")
    assert set(data) == {"train", "validation_matched", "validation_mismatched"}
    assert len(data["validation_matched"]) == 1 and len(data["validation_mismatched"]) == 2
    assert data["validation_matched"]["label"] == [0] and data["validation_mismatched"]["label"] == [2, 1]


def test_tokenized_once_and_reused(glue_dir, tmp_path):
    cfg = smoke_config(tmp_path / "run", data_dir=str(glue_dir), select_size=0)
    first = helpers.task_data(cfg, "rte")
    folders = list((cfg.run_path / "data").iterdir())
    second = helpers.task_data(cfg, "rte")
    assert list((cfg.run_path / "data").iterdir()) == folders
    assert first["train"]["input_ids"] == second["train"]["input_ids"]


def test_subset_is_the_same_on_every_call():
    import pandas as pd
    df = pd.DataFrame({"idx": np.arange(100)})
    a = tmkd.inputs.data.take_subset(df, 10, seed=7)["idx"].tolist()
    assert a == tmkd.inputs.data.take_subset(df, 10, seed=7)["idx"].tolist()
    assert a != tmkd.inputs.data.take_subset(df, 10, seed=8)["idx"].tolist()
    assert len(tmkd.inputs.data.take_subset(df, 0, seed=7)) == 100


def data_readme_counts() -> dict:
    """(task, split) -> (rows, rows of the first label) as ../shared/data/README.md's table states them, so a re-split
    of the shared files changes the expected numbers in one place."""
    out = {}
    for line in (SHARED_GLUE.parent / "README.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\|\s*`glue/(\w+)/(\w+)\.tsv`\s*\|\s*([\d,]+)\s*\|\s*([\d,]+)", line)
        if m:
            out[(m[1].lower(), m[2])] = (int(m[3].replace(",", "")), int(m[4].replace(",", "")))
    return out


@needs_shared_glue
@pytest.mark.parametrize("task,file_split,split", [("rte", "train", "train"), ("rte", "dev", "validation"),
                                                   ("qnli", "train", "train"), ("qnli", "dev", "validation")])
def test_shared_glue_files_load_completely(task, file_split, split):
    rows, first_label = data_readme_counts()[(task, file_split)]
    df = tmkd.inputs.data.frame_to_labelled(tmkd.inputs.data.read_local_split(SHARED_GLUE, task, split), task, task)
    assert len(df) == rows and (df["label"] == 0).sum() == first_label


def test_generated_smoke_data_has_no_unknown_tokens(tmp_path):
    cfg = smoke_config(tmp_path / "run")
    ids = helpers.task_data(cfg, "rte")["train"]["input_ids"]
    unk = tmkd.inputs.base_model.load_tokenizer(tmkd.inputs.base_model.base_model_path(cfg)).unk_token_id
    assert all(unk not in row for row in ids)
