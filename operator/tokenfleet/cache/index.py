"""Vector search for one semantic partition: exact (numpy) while small, HNSW (hnswlib) once large.

Most partitions are small (one per conversation context, one per sampling setting): a flat array costs
only its vectors, where an hnswlib index costs ~2.5 MiB even with one entry. New vectors always go to
the flat part; a worker thread merges it into the HNSW part once it passes ``FLAT_MAX``, and rebuilds
the HNSW part smaller (or back into the flat part) once most of it is deleted, so memory follows the
live entries. hnswlib's insertions are not safe beside a search, so while a thread merges into a
partition's HNSW part the event loop does not search it: its vectors are not found meanwhile (a
miss, never a wrong answer). A rebuild only reads the old part, which goes on answering. Either
way, deletions wait in a set until the thread is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import hnswlib
import numpy as np

from tokenfleet.cache.embed import DIM

FLAT_MAX = 2048  # a flat part beyond this is merged into the HNSW part (numpy search of 2k x 384: ~0.1 ms)
SEARCH_MAX = 8  # a flat part over SEARCH_MAX x FLAT_MAX (a bulk load not merged yet) is not searched: too slow


class FlatIndex:
    """Vectors in one array, searched exhaustively; a removal moves the last row into the hole."""

    def __init__(self, dim: int = DIM):
        self.vectors = np.empty((0, dim), dtype=np.float32)
        self.labels = np.empty(0, dtype=np.int64)
        self.rows: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def _reserve(self, capacity: int) -> None:
        n = len(self.rows)
        vectors = np.empty((capacity, self.vectors.shape[1]), dtype=np.float32)
        labels = np.empty(capacity, dtype=np.int64)
        vectors[:n], labels[:n] = self.vectors[:n], self.labels[:n]
        self.vectors, self.labels = vectors, labels

    def add(self, labels: list[int], vectors: np.ndarray) -> None:
        n, needed = len(self.rows), len(self.rows) + len(labels)
        if needed > len(self.labels):
            self._reserve(max(needed, 2 * len(self.labels)))
        self.vectors[n:needed] = vectors
        self.labels[n:needed] = labels
        self.rows.update(zip(labels, range(n, needed)))

    def remove(self, label: int) -> bool:
        """Drop one label; False when it is not here."""
        row = self.rows.pop(label, None)
        if row is None:
            return False
        last = len(self.rows)
        if row != last:
            self.vectors[row], self.labels[row] = self.vectors[last], self.labels[last]
            self.rows[int(self.labels[row])] = row
        if len(self.labels) > 16 and last <= len(self.labels) // 4:
            self._reserve(2 * last)
        return True

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        n = len(self.rows)
        if n == 0:
            return []
        sims = self.vectors[:n] @ vector
        top = np.argpartition(-sims, k - 1)[:k] if n > k else np.arange(n)
        top = top[np.argsort(-sims[top])]
        return [(int(self.labels[i]), float(sims[i])) for i in top]

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        """All labels and vectors, leaving this index empty (the arrays are handed over, not copied)."""
        n = len(self.rows)
        labels, vectors = self.labels[:n], self.vectors[:n]
        self.__init__(self.vectors.shape[1])
        return labels, vectors

    def memory_bytes(self) -> int:
        return self.vectors.nbytes + self.labels.nbytes


def _hnsw(dim: int, capacity: int, options: dict) -> hnswlib.Index:
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=capacity, M=options["m"], ef_construction=options["ef_construction"],
                     allow_replace_deleted=True)
    index.set_ef(options["ef"])
    index.set_num_threads(1)
    return index


@dataclass
class Job:
    """Work on one partition's HNSW part for a worker thread: merge the flat part in, or rebuild it smaller."""

    index: "PartitionIndex"
    kind: str  # "merge" or "shrink"
    labels: np.ndarray  # merge: the flat part's labels; shrink: the live labels to keep
    vectors: np.ndarray | None = None  # merge only
    needed: int = 0  # merge: HNSW slots the part needs afterwards
    result: hnswlib.Index | np.ndarray | None = None  # shrink: the smaller index, or the vectors for the flat part
    partition: str = ""  # set by the core, which tracks jobs by partition key
    error: BaseException | None = field(default=None, repr=False)

    def run(self, threads: int = 1) -> None:
        """The slow part, off the event loop (hnswlib releases the GIL while it inserts); never raises."""
        try:
            self.index.run(self, threads)
        except Exception as err:  # noqa: BLE001 - handed to finish(), which keeps the partition usable
            self.error = err


class PartitionIndex:
    """A flat part for recent and few vectors, an HNSW part for many; labels are unique integers."""

    def __init__(self, dim: int = DIM, m: int = 16, ef_construction: int = 100, ef: int = 64,
                 flat_max: int = FLAT_MAX):
        self.dim = dim
        self.options = {"m": m, "ef_construction": ef_construction, "ef": ef}
        self.flat_max = flat_max
        self.flat = FlatIndex(dim)
        self.hnsw: hnswlib.Index | None = None
        self.hnsw_labels: set[int] = set()  # live labels of the HNSW part, including those a merge is adding
        self.busy = False  # a worker thread owns the HNSW part: no deletions in it
        self.writing = False  # ... and inserts into it: no searches either
        self._deferred: set[int] = set()  # removed while busy: deleted from the HNSW part when the job ends

    def __len__(self) -> int:
        return len(self.flat) + len(self.hnsw_labels)

    def add(self, labels: list[int], vectors: np.ndarray) -> None:
        """Insert unit vectors [n, dim] under new labels (searchable at once, through the flat part)."""
        self.flat.add(labels, np.asarray(vectors, dtype=np.float32).reshape(len(labels), self.dim))

    def remove(self, label: int) -> None:
        """Delete one label (a deleted HNSW slot is reused by a later insert)."""
        if self.flat.remove(label) or label not in self.hnsw_labels:
            return
        self.hnsw_labels.discard(label)
        if self.busy:
            self._deferred.add(label)
        else:
            self._mark_deleted(label)

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Up to ``k`` (label, cosine similarity) pairs, most similar first (may include removed labels)."""
        found = self.flat.search(vector, k) if len(self.flat) <= SEARCH_MAX * self.flat_max else []
        if self.hnsw is not None and not self.writing and self.hnsw_labels:
            found = sorted(found + self._search_hnsw(vector, min(k, len(self.hnsw_labels))), key=lambda x: -x[1])[:k]
        return found

    def _search_hnsw(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        while True:
            try:
                labels, distances = self.hnsw.knn_query(vector, k=k)
                return [(int(lb), float(1.0 - d)) for lb, d in zip(labels[0], distances[0])]
            except RuntimeError:  # fewer than k reachable after many deletions
                if k == 1:
                    return []
                k = max(1, k // 2)

    # ------------------------------------------------------------------ background work

    def capacity(self) -> int:
        """HNSW slots allocated (live, deleted and free)."""
        return 0 if self.hnsw is None else self.hnsw.get_max_elements()

    def start_job(self) -> Job | None:
        """The work this partition needs now, if any; the HNSW part is the job's until ``finish``.

        Merge when the flat part passes ``flat_max``; shrink when at most a quarter of the HNSW slots
        are live (into a new index of twice the live count, or into the flat part when a quarter of
        ``flat_max`` or fewer are left). So HNSW slots stay within 4x the live vectors.
        """
        if self.busy:
            return None
        if len(self.flat) > self.flat_max:
            labels, vectors = self.flat.take()
            self.hnsw_labels.update(labels.tolist())
            job = Job(self, "merge", labels, vectors, needed=len(self.hnsw_labels))
        elif self.hnsw is not None and (len(self.hnsw_labels) <= self.flat_max // 4
                                        or 4 * len(self.hnsw_labels) <= self.capacity()):
            job = Job(self, "shrink", np.fromiter(self.hnsw_labels, dtype=np.int64, count=len(self.hnsw_labels)))
        else:
            return None
        self.busy, self.writing = True, job.kind == "merge"
        return job

    def run(self, job: Job, threads: int) -> None:
        """Worker-thread side of a job: nothing else touches the HNSW part meanwhile."""
        if job.kind == "merge":
            if self.hnsw is None:
                self.hnsw = _hnsw(self.dim, max(2 * len(job.labels), 64), self.options)
            needed = max(job.needed, self.hnsw.get_current_count())  # deleted slots are reused first
            if needed > self.hnsw.get_max_elements():
                self.hnsw.resize_index(max(needed, 2 * self.hnsw.get_max_elements()))
            self.hnsw.add_items(job.vectors, job.labels, num_threads=threads, replace_deleted=True)
            return
        vectors = self.hnsw.get_items(job.labels, return_type="numpy") if len(job.labels) else None
        if len(job.labels) <= self.flat_max // 4:
            job.result = vectors  # few enough for the flat part
        else:
            job.result = _hnsw(self.dim, 2 * len(job.labels), self.options)
            job.result.add_items(vectors, job.labels, num_threads=threads)

    def finish(self, job: Job) -> None:
        """Event-loop side once ``run`` returned: swap in what it built and apply the deletions that waited."""
        self.busy = self.writing = False
        deferred, self._deferred = self._deferred, set()
        if job.error is not None and job.kind == "merge":  # the vectors go back to the flat part
            self.hnsw_labels.difference_update(job.labels.tolist())
            keep = [i for i, label in enumerate(job.labels.tolist()) if label not in deferred]
            self.flat.add(job.labels[keep].tolist(), job.vectors[keep])
        elif job.error is None and job.kind == "shrink" and not isinstance(job.result, hnswlib.Index):
            keep = [i for i, label in enumerate(job.labels.tolist()) if label not in deferred]
            if keep:  # few enough for the flat part: the HNSW part and its fixed cost go
                self.flat.add(job.labels[keep].tolist(), job.result[keep])
            self.hnsw, self.hnsw_labels = None, set()
            return
        elif job.error is None and job.kind == "shrink":
            self.hnsw = job.result
        for label in deferred:
            self._mark_deleted(label)

    def _mark_deleted(self, label: int) -> None:
        try:
            if self.hnsw is not None:
                self.hnsw.mark_deleted(label)
        except RuntimeError:  # never added (a failed merge): nothing to delete
            pass

    def memory_bytes(self) -> int:
        """Rough size: flat arrays plus HNSW slots (vectors and level-0 links)."""
        per = self.dim * 4 + self.options["m"] * 2 * 4 + 16
        return self.flat.memory_bytes() + self.capacity() * per
