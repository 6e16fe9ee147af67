"""Offline text batches: shapes, determinism, the LMOrderedIterator layout, vocab ranges, readable English."""
import hashlib
import os
import subprocess
import sys

import huggingface_hub.constants
import pytest
import torch

from lpzero_core.errors import LPZeroError
from lpzero_core.stats import text


@pytest.fixture
def hub_offline(monkeypatch):
    """Hub look-ups fail at once, as on a machine without network (no retries)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    try:
        import datasets.config
    except ImportError:  # without `datasets` a hub dataset cannot load at all
        return
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


def english(decoded: str) -> bool:
    words = decoded.lower().split()
    return len(words) > 10 and sum(w in {"the", "of", "to", "and", "a", "in"} for w in words) > len(words) / 20


def test_gpt2_default_batch():
    batch = text.gpt2_batch()
    assert set(batch) == {"input_ids", "labels"}
    for tensor in batch.values():
        assert tensor.shape == (16, 192) and tensor.dtype == torch.long
    assert torch.equal(batch["input_ids"][:, 1:], batch["labels"][:, :-1])
    assert 0 <= batch["input_ids"].min() and batch["labels"].max() < 50256  # <|endoftext|> is never emitted
    tokenizer = text.gpt2_tokenizer()
    assert len(tokenizer) == 50257
    first = tokenizer.decode(batch["input_ids"][0])
    assert first.startswith("\n Ad sales boost Time Warner profit\n\n Quarterly profits")  # business/001.txt
    assert all(english(tokenizer.decode(row)) for row in batch["input_ids"])


def test_gpt2_seeds_are_consecutive_iterator_windows():
    b0, b1 = text.gpt2_batch(seed=0), text.gpt2_batch(seed=1)
    assert not torch.equal(b0["input_ids"], b1["input_ids"])
    assert torch.equal(b0["labels"][:, -1], b1["input_ids"][:, 0])  # rows are contiguous corpus slices
    small = text.gpt2_batch(batch_size=4, seq_len=32, seed=3)
    assert small["input_ids"].shape == (4, 32)
    assert torch.equal(small["input_ids"][:, 1:], small["labels"][:, :-1])


def test_batches_are_memoised_clones():
    a = text.gpt2_batch(seed=2)
    a["input_ids"].zero_()
    assert torch.equal(text.gpt2_batch(seed=2)["labels"][:, :-1], text.gpt2_batch(seed=2)["input_ids"][:, 1:])
    assert text.gpt2_batch(seed=2)["input_ids"].any()


def batch_digest(kind: str, seed: int, hash_seed: str | None = None) -> str:
    """sha256 of a default batch's input ids, computed in a fresh interpreter (``hash_seed``: its PYTHONHASHSEED),
    so that no in-process memo can make two calls agree."""
    code = ("import hashlib; from lpzero_core.stats import text; "
            f"print(hashlib.sha256(text.{kind}_batch(seed={seed})['input_ids'].numpy().tobytes()).hexdigest())")
    env = {**os.environ, **({"PYTHONHASHSEED": hash_seed} if hash_seed else {})}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_batches_are_the_same_in_fresh_processes_whatever_the_hash_seed(kind):
    here = hashlib.sha256(getattr(text, f"{kind}_batch")(seed=5)["input_ids"].numpy().tobytes()).hexdigest()
    assert batch_digest(kind, 5, str(hash("x") % 1000 + 1)) == here  # another hash seed than this process's


def test_bert_default_batch():
    batch = text.bert_batch()
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask"}
    for tensor in batch.values():
        assert tensor.shape == (8, 128) and tensor.dtype == torch.long
    assert len(text.bert_tokenizer()) == 30522 and batch["input_ids"].max() < 30522
    assert not batch["token_type_ids"].any()
    assert (batch["input_ids"][:, 0] == 2).all()  # [CLS]
    decoded = text.bert_tokenizer().decode(batch["input_ids"][0], skip_special_tokens=True)
    assert decoded.startswith("ad sales boost time warner profit quarterly profits")
    assert all(english(text.bert_tokenizer().decode(row, skip_special_tokens=True)) for row in batch["input_ids"])


def test_bert_padding_and_mask():
    batch = text.bert_batch(batch_size=4, seq_len=512)
    lengths = batch["attention_mask"].sum(1)
    assert (lengths < 512).any()
    for ids, mask, n in zip(batch["input_ids"], batch["attention_mask"], lengths):
        assert (mask[:n] == 1).all() and (mask[n:] == 0).all()
        assert ids[n - 1] == 3 and (ids[n:] == 0).all()  # [SEP] then [PAD]


def test_bert_seeds_pick_other_documents():
    assert not torch.equal(text.bert_batch(seed=0)["input_ids"], text.bert_batch(seed=1)["input_ids"])
    assert torch.equal(text.bert_batch(batch_size=8)["input_ids"][4:],
                       text.bert_batch(batch_size=4, seed=1)["input_ids"])


def test_bert_vocab_is_deterministic_words_by_frequency():
    vocab = text._bbc_wordpiece_vocab()
    tokens = list(vocab)
    assert len(tokens) == 30522 and tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert "the" in tokens[:200] and "##e" in vocab and tokens[-1] == "[unused706]"


def test_local_dataset_and_tokenizer_file(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The cat sat on the mat and looked at the dog.\n\n" * 40)
    batch = text.gpt2_batch(batch_size=2, seq_len=16, dataset=str(corpus))
    assert "cat sat on the mat" in text.gpt2_tokenizer().decode(batch["input_ids"][0])
    saved = tmp_path / "tokenizer.json"
    text.gpt2_tokenizer().backend_tokenizer.save(str(saved))
    assert torch.equal(text.gpt2_batch(batch_size=2, seq_len=16, dataset=str(corpus), tokenizer=str(saved))["labels"],
                       batch["labels"])
    with pytest.raises(LPZeroError, match="too short"):
        text.gpt2_batch(batch_size=2, seq_len=4096, dataset=str(corpus))


@pytest.mark.parametrize("call", [
    lambda: text.gpt2_batch(tokenizer="no-such-org/no-such-tokenizer"),
    lambda: text.gpt2_batch(dataset="no-such-org/no-such-dataset"),
    lambda: text.bert_batch(tokenizer="no-such-org/no-such-tokenizer"),
])
def test_named_but_unreachable_is_an_error_not_a_fallback(hub_offline, call):
    with pytest.raises(LPZeroError, match="could not be loaded") as err:
        call()
    assert "\n" not in str(err.value) and "no-such-" in str(err.value)


def test_bad_sizes_are_refused():
    with pytest.raises(LPZeroError, match="batch_size"):
        text.bert_batch(batch_size=0)
