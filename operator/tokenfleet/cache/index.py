"""One HNSW index (hnswlib, inner product on unit vectors) per semantic partition, growing on demand."""

from __future__ import annotations

import hnswlib
import numpy as np

from tokenfleet.cache.embed import DIM


class PartitionIndex:
    """Vectors of one partition, keyed by integer labels; deleted slots are reused by later inserts."""

    def __init__(self, dim: int = DIM, capacity: int = 16, m: int = 16, ef_construction: int = 100, ef: int = 64):
        self._index = hnswlib.Index(space="ip", dim=dim)
        self._index.init_index(max_elements=capacity, M=m, ef_construction=ef_construction,
                               allow_replace_deleted=True)
        self._index.set_ef(ef)
        self._index.set_num_threads(1)
        self._ef = ef
        self._labels: set[int] = set()
        self._deleted = 0  # slots marked deleted, reusable

    def __len__(self) -> int:
        return len(self._labels)

    def add(self, labels: list[int], vectors: np.ndarray, threads: int = 1) -> None:
        """Insert unit vectors [n, dim] under new labels, reusing deleted slots first."""
        if not labels:
            return
        reuse = min(self._deleted, len(labels))
        needed = self._index.get_current_count() + len(labels) - reuse
        capacity = self._index.get_max_elements()
        if needed > capacity:
            self._index.resize_index(max(needed, 2 * capacity))
        self._index.add_items(vectors, labels, num_threads=threads, replace_deleted=True)
        self._deleted -= reuse
        self._labels.update(labels)

    def remove(self, label: int) -> None:
        """Delete one label (its slot is reused by a later insert)."""
        if label in self._labels:
            self._index.mark_deleted(label)
            self._labels.discard(label)
            self._deleted += 1

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Up to ``k`` (label, cosine similarity) pairs, most similar first."""
        k = min(k, len(self._labels))
        if k == 0:
            return []
        if self._ef < k:
            self._index.set_ef(k)
        while True:
            try:
                labels, distances = self._index.knn_query(vector, k=k)
                break
            except RuntimeError:  # fewer than k reachable after many deletions
                if k == 1:
                    return []
                k = max(1, k // 2)
        return [(int(lb), float(1.0 - d)) for lb, d in zip(labels[0], distances[0])]

    def memory_bytes(self) -> int:
        """Rough size of the index: vectors plus level-0 links."""
        per = self._index.dim * 4 + self._index.M * 2 * 4 + 16
        return self._index.get_max_elements() * per
