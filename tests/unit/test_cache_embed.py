"""MiniLM on onnxruntime equals sentence-transformers (torch) on the committed reference vectors."""

import json
from pathlib import Path

import numpy as np
import pytest

from tokenfleet.cache.embed import DIM, Embedder, _buckets

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "cache" / "minilm_reference.json"


@pytest.fixture(scope="module")
def reference():
    data = json.loads(REFERENCE.read_text())
    texts = [item["text"] for item in data["items"]]
    return texts, np.array([item["vector"] for item in data["items"]], dtype=np.float32)


@pytest.fixture(scope="module")
def embedder():
    return Embedder()


def test_fp32_vectors_match_sentence_transformers_to_cosine_0_999(embedder, reference):
    texts, expected = reference
    got = embedder.embed(texts)
    assert got.shape == (len(texts), DIM)
    cosines = (got * expected).sum(axis=1)
    assert cosines.min() >= 0.999, dict(zip(texts, cosines.round(5)))


def test_a_batch_gives_the_same_vectors_as_one_text_at_a_time(embedder, reference):
    texts, _ = reference
    together = embedder.embed(texts)
    alone = np.vstack([embedder.embed([t]) for t in texts])
    assert np.abs(together - alone).max() < 1e-4


def test_vectors_are_unit_length_and_one_call_is_counted_per_batch(embedder):
    before = embedder.calls
    vectors = embedder.embed(["a", "b c d", "a much longer sentence about caching and cost"])
    assert embedder.calls == before + 1
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, DIM)


def test_texts_past_256_tokens_are_truncated_like_the_reference(embedder, reference):
    texts, expected = reference
    longest = max(range(len(texts)), key=lambda i: len(texts[i]))
    assert len(embedder.tokenizer.encode(texts[longest]).ids) == 256
    assert float(embedder.embed([texts[longest]])[0] @ expected[longest]) >= 0.999


def test_int8_weights_stay_close_to_the_reference_and_do_not_depend_on_the_batch(reference):
    texts, expected = reference
    int8 = Embedder(precision="int8")
    together = int8.embed(texts)
    cosines = (together * expected).sum(axis=1)
    assert cosines.mean() >= 0.98 and cosines.min() >= 0.95
    assert np.abs(together - np.vstack([int8.embed([t]) for t in texts])).max() < 1e-6


@pytest.mark.parametrize(("lengths", "groups"), [
    ([5, 5, 6], [[0, 1, 2]]),
    ([5, 100], [[0], [1]]),
    ([10, 3, 11, 40, 42], [[1], [0, 2], [3, 4]]),
])
def test_texts_are_grouped_by_length_so_padding_stays_small(lengths, groups):
    assert _buckets(lengths) == groups
