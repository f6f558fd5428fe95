"""The Hub data path without the network: `read_hub_split` and `task_data` on local folders shaped like the Hub's
`nyu-mll/glue` (configs rte, qnli, mnli) and `stanfordnlp/snli` (config plain_text).

Each folder holds parquet files per split and a README.md whose YAML front matter declares the features (label as a
class_label with the Hub's names, in the Hub's order) and the data files of each config, as those repositories do.
The test's working directory is the folder above them, so `load_dataset("nyu-mll/glue", "mnli")` resolves to the
local `nyu-mll/glue`; offline mode is on and the datasets cache lives in tmp_path.

Checked: label ids become names through the dataset's own ClassLabel (also when its order differs from the task's),
rows with label -1 (no gold label) are dropped, MNLI's two validation splits keep their own rows, SNLI is read from
`stanfordnlp/snli` with its column names, text_a/text_b hold the right sentences, and task_data on a Hub
configuration gives MNLI's train, validation_matched and validation_mismatched splits."""
from pathlib import Path

import pytest
import yaml

import helpers
import tmkd.inputs.base_model
import tmkd.core.config
import tmkd.inputs.data
from tmkd.inputs.data import data_source, read_hub_split

TWO = ("entailment", "not_entailment")
THREE = ("entailment", "neutral", "contradiction")

# task -> (repository, config, the Hub's text columns, the Hub's label names in id order, label ids per split).
# Written out here, not taken from TASKS, so that the test checks TASKS against the Hub's layout. -1: no gold label.
HUB = {
    "rte": ("nyu-mll/glue", "rte", ("sentence1", "sentence2"), TWO,
            {"train": [0, 1, 1, 0], "validation": [1, 0, 1]}),
    "qnli": ("nyu-mll/glue", "qnli", ("question", "sentence"), TWO,
             {"train": [1, 0, 1], "validation": [0, 0, 1]}),
    "mnli": ("nyu-mll/glue", "mnli", ("premise", "hypothesis"), THREE,
             {"train": [0, 1, 2, -1, 2, 0], "validation_matched": [2, -1, 1, 0],
              "validation_mismatched": [1, 0, -1, -1, 2]}),
    "snli": ("stanfordnlp/snli", "plain_text", ("premise", "hypothesis"), THREE,
             {"train": [2, -1, 0, 1], "validation": [-1, 1, 2]}),
}


def sentences(task, split, n):
    """The (text_a, text_b) pairs written for a split: each names its task, split and row."""
    return [f"{task} {split} first {i}" for i in range(n)], [f"{task} {split} second {i}" for i in range(n)]


def write_config(repo: Path, task: str, names=None) -> tuple:
    """One config's parquet files under repo/<config>/; returns its dataset_info and configs entries for README.md."""
    from datasets import ClassLabel, Dataset, Features, Value
    repo_id, config, (a, b), hub_names, splits = HUB[task]
    names = names or hub_names
    columns = {a: Value("string"), b: Value("string"), "label": ClassLabel(names=list(names))}
    if repo_id == "nyu-mll/glue":
        columns["idx"] = Value("int32")
    features = Features(columns)
    data_files = []
    for split, ids in splits.items():
        text_a, text_b = sentences(task, split, len(ids))
        rows = {a: text_a, b: text_b, "label": ids, "idx": list(range(len(ids)))}
        path = repo / config / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        Dataset.from_dict({k: rows[k] for k in features}, features=features).to_parquet(str(path))
        data_files.append({"split": split, "path": f"{config}/{split}-*"})
    info = {"config_name": config, "features": [
        {"name": name, "dtype": {"class_label": {"names": {str(i): n for i, n in enumerate(f.names)}}}}
        if isinstance(f, ClassLabel) else {"name": name, "dtype": f.dtype} for name, f in features.items()]}
    return info, {"config_name": config, "data_files": data_files}


def build_hub(root: Path, names=None) -> None:
    """nyu-mll/glue and stanfordnlp/snli under root, laid out like the Hub repositories; `names` overrides the label
    names (and their order) of every config."""
    repos = {}
    for task, (repo_id, *_rest) in HUB.items():
        info, config = write_config(root / repo_id, task, names and names.get(task))
        repos.setdefault(repo_id, ([], []))
        repos[repo_id][0].append(info)
        repos[repo_id][1].append(config)
    for repo_id, (infos, configs) in repos.items():
        front = yaml.safe_dump({"dataset_info": infos, "configs": configs}, sort_keys=False)
        (root / repo_id / "README.md").write_text(f"---\n{front}---\n\n# {repo_id} (local test copy)\n")


def go_offline(monkeypatch, tmp_path: Path) -> None:
    """No network, and every cache in tmp_path. datasets and huggingface_hub read these variables when first
    imported (another test may have imported them already), so their module constants are set too."""
    import datasets.config
    import huggingface_hub.constants
    cache = tmp_path / "hf-datasets"
    for name, value in {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home"),
                        "HF_DATASETS_CACHE": str(cache)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", str(cache / "downloads"))
    monkeypatch.setattr(datasets.config, "EXTRACTED_DATASETS_PATH", str(cache / "downloads" / "extracted"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The working directory holds nyu-mll/glue and stanfordnlp/snli with the Hub's label names."""
    go_offline(monkeypatch, tmp_path)
    root = tmp_path / "hub"
    build_hub(root)
    monkeypatch.chdir(root)
    return root


def expected(task, split, names=None):
    """What read_hub_split should return: the split's sentences and its label names ("" for id -1)."""
    names = names or HUB[task][3]
    ids = HUB[task][4][split]
    text_a, text_b = sentences(task, split, len(ids))
    return text_a, text_b, [names[i] if i >= 0 else "" for i in ids]


def check_frame(df, task, split, names=None):
    text_a, text_b, labels = expected(task, split, names)
    assert list(df.columns) == ["text_a", "text_b", "label", "idx"]
    assert df["text_a"].tolist() == text_a
    assert df["text_b"].tolist() == text_b
    assert df["label"].tolist() == labels
    assert df["idx"].tolist() == list(range(len(labels)))


def labelled(task, split):
    """frame_to_labelled's labels for a split: the rows with a gold label, as indices into TASKS[task].labels."""
    order = tmkd.core.config.TASKS[task].labels
    text_a, _, labels = expected(task, split)
    return [t for t, n in zip(text_a, labels) if n], [order.index(n) for n in labels if n]


def test_tasks_point_at_the_hub_repositories_and_columns():
    for task, (repo_id, config, columns, names, _splits) in HUB.items():
        spec = tmkd.core.config.TASKS[task]
        assert spec.hub == ((repo_id, config) if repo_id == "nyu-mll/glue" else (repo_id,))
        assert spec.hub_columns == columns
        assert set(spec.labels) == set(names)
        assert set(spec.dev_splits) <= set(HUB[task][4])


@pytest.mark.parametrize("task,split", [("rte", "train"), ("rte", "validation"), ("qnli", "train"),
                                        ("qnli", "validation"), ("mnli", "train")])
def test_glue_split_has_its_sentences_and_label_names(hub, task, split):
    check_frame(read_hub_split(task, split), task, split)


def test_mnli_validation_splits_are_kept_apart(hub):
    matched = read_hub_split("mnli", "validation_matched")
    mismatched = read_hub_split("mnli", "validation_mismatched")
    check_frame(matched, "mnli", "validation_matched")
    check_frame(mismatched, "mnli", "validation_mismatched")
    assert len(matched) == 4 and len(mismatched) == 5
    assert not set(matched["text_a"]) & set(mismatched["text_a"])


@pytest.mark.parametrize("split", ["train", "validation"])
def test_snli_is_read_from_stanfordnlp_snli_with_its_columns(hub, split):
    assert tmkd.core.config.TASKS["snli"].hub == ("stanfordnlp/snli",)
    check_frame(read_hub_split("snli", split), "snli", split)


@pytest.mark.parametrize("task,split", [("mnli", "train"), ("mnli", "validation_matched"),
                                        ("mnli", "validation_mismatched"), ("snli", "train"), ("snli", "validation"),
                                        ("rte", "train"), ("qnli", "validation")])
def test_rows_without_gold_label_are_dropped_and_labels_follow_the_task_order(hub, task, split):
    df = tmkd.inputs.data.frame_to_labelled(read_hub_split(task, split), task, f"{task}/{split} from hub")
    text_a, labels = labelled(task, split)
    assert df["text_a"].tolist() == text_a
    assert df["label"].tolist() == labels
    n_without = HUB[task][4][split].count(-1)
    assert len(df) == len(HUB[task][4][split]) - n_without
    if task in ("mnli", "snli"):
        assert n_without > 0   # the fixture does hold rows without a gold label here


def test_label_ids_are_read_through_the_datasets_own_names(tmp_path, monkeypatch):
    """A copy whose ClassLabel lists the names in another order than the task: ids are mapped by the dataset's names,
    never read as positions in TASKS[task].labels (on the real Hub both orders happen to agree)."""
    go_offline(monkeypatch, tmp_path)
    reordered = {"mnli": ("contradiction", "entailment", "neutral"), "rte": ("not_entailment", "entailment")}
    build_hub(tmp_path / "reordered", names=reordered)
    monkeypatch.chdir(tmp_path / "reordered")
    for task, names in reordered.items():
        df = read_hub_split(task, "train")
        check_frame(df, task, "train", names)
        out = tmkd.inputs.data.frame_to_labelled(df, task, f"{task}/train")
        ids = [i for i in HUB[task][4]["train"] if i >= 0]
        assert out["label"].tolist() == [tmkd.core.config.TASKS[task].labels.index(names[i]) for i in ids]
        assert out["label"].tolist() != ids      # the reordering does change the ids


def test_task_data_from_the_hub_has_mnli_train_and_both_dev_splits(hub, tmp_path):
    base = tmkd.inputs.base_model.build_smoke_model(tmp_path / "base", seed=42)
    cfg = tmkd.core.config.make_config("smoke", base_model=str(base), tasks=("mnli", "rte", "qnli"),
                              run_dir=str(tmp_path / "run"), train_size=0, dev_size=0, select_size=0)
    assert data_source(cfg) == "hub"
    data = helpers.task_data(cfg, "mnli")
    assert set(data) == {"train", "validation_matched", "validation_mismatched"}
    for split in data:
        _, labels = labelled("mnli", split)
        assert list(data[split]["label"]) == labels
        assert list(data[split]["idx"]) == [i for i, n in enumerate(HUB["mnli"][4][split]) if n >= 0]
        assert all(len(ids) > 2 for ids in data[split]["input_ids"])   # [CLS] a [SEP] b [SEP], tokenized
