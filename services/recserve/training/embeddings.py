"""Item2vec: gensim skip-gram word2vec over sessions of item codes."""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gensim.models import Word2Vec
from gensim.models.callbacks import CallbackAny2Vec

from recserve.training.config import Word2VecParams


@dataclass
class ItemEmbeddings:
    """Rows follow `codes` (item codes of the dataset, most frequent first)."""

    codes: np.ndarray  # int32 [n]
    input: np.ndarray  # float32 [n, d]  word vectors
    output: np.ndarray  # float32 [n, d] syn1neg (negative-sampling output weights)
    counts: np.ndarray  # int64 [n] occurrences in the training corpus

    def scoring(self, which: str) -> np.ndarray:
        if which == "output":
            return self.output
        if which == "input":
            return self.input
        raise ValueError(f"scoring vectors must be 'output' or 'input', got {which!r}")


def _stable_hash(text: str) -> int:
    # gensim seeds each vector from hashfxn(word + seed); Python's hash() differs per process.
    return zlib.crc32(text.encode())


class _EpochProgress(CallbackAny2Vec):
    def __init__(self, say: Callable[[str], None], epochs: int):
        self.say = say
        self.epochs = epochs
        self.epoch = 0

    def on_epoch_end(self, model: Word2Vec) -> None:
        self.epoch += 1
        if self.epoch == self.epochs or self.epoch % max(1, self.epochs // 5) == 0:
            self.say(f"word2vec epoch {self.epoch}/{self.epochs}")


def train_item2vec(
    corpus: Path, params: Word2VecParams, *, say: Callable[[str], None] | None = None
) -> ItemEmbeddings:
    """Skip-gram with negative sampling over `corpus` (one session of item codes per line)."""
    workers = params.workers or os.cpu_count() or 1
    callbacks = [_EpochProgress(say, params.epochs)] if say else []
    # gensim logs every few seconds at INFO; our own progress lines are enough.
    logging.getLogger("gensim").setLevel(logging.WARNING)
    model = Word2Vec(
        corpus_file=str(corpus),
        sg=1,
        hs=0,
        vector_size=params.vector_size,
        window=params.window,
        negative=params.negative,
        ns_exponent=params.ns_exponent,
        sample=params.sample,
        epochs=params.epochs,
        min_count=params.min_count,
        shrink_windows=params.shrink_windows,
        alpha=params.alpha,
        min_alpha=params.min_alpha,
        seed=params.seed,
        workers=workers,
        hashfxn=_stable_hash,
        callbacks=callbacks,
    )
    wv = model.wv
    if len(wv.index_to_key) == 0:
        raise ValueError("word2vec vocabulary is empty (min_count too high for this data?)")
    codes = np.asarray([int(k) for k in wv.index_to_key], dtype=np.int32)
    counts = np.asarray([wv.get_vecattr(k, "count") for k in wv.index_to_key], dtype=np.int64)
    vectors = np.asarray(wv.vectors, dtype=np.float32)
    output = np.asarray(model.syn1neg, dtype=np.float32)
    if not (np.isfinite(vectors).all() and np.isfinite(output).all()):
        raise ValueError("word2vec produced NaN/inf vectors (learning rate too high?)")
    return ItemEmbeddings(codes=codes, input=vectors.copy(), output=output.copy(), counts=counts)
