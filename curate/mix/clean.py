"""Prompt dedup (exact and near-duplicate) and n-gram decontamination against evaluation problems.

Both work on lower-cased word tokens (`\\w+`), so punctuation and spacing do not hide a copy.
- PromptDeduper: exact duplicates by normalised text; near duplicates by MinHash (128 permutations)
  over word shingles with LSH banding (16 bands of 8) to find candidates, then the true Jaccard similarity decides (so a verdict never
  rests on a hash collision). Feed prompts in a fixed order; the first of a group is kept.
- EvalIndex: every word n-gram of every eval prompt, with the benchmark (the eval problem's source) it
  came from. An eval prompt shorter than n words counts as one gram of its own length (down to
  MIN_GRAM words; shorter ones are caught only as exact prompt matches). Checking a text hashes its
  windows with numpy and confirms every hash hit against the actual words, so there are no false
  positives from collisions.
Known limits: word n-grams miss paraphrases and translations; numbers written differently
("1/2" vs "0.5") do not match.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Iterable

import numpy as np

WORD = re.compile(r"\w+")
MIN_GRAM = 8
MAX_VERIFY = 32  # candidates whose exact Jaccard similarity is computed per prompt
_P = np.uint64(1099511628211)  # FNV prime: the polynomial base of the rolling hash
_MASK_OFFSET = np.uint64(0x9E3779B97F4A7C15)


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def normalise(text: str) -> str:
    return " ".join(words(text))


def _window_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """Polynomial hash of every window of n ids (uint64 arithmetic wraps, which is what we want)."""
    m = len(ids) - n + 1
    if m <= 0:
        return np.empty(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = np.zeros(m, dtype=np.uint64)
        for j in range(n):
            h = h * _P + ids[j: j + m]
    return h


class _Vocab:
    """Word -> id, assigned in first-seen order (deterministic for a fixed input order)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def encode(self, ws: list[str], grow: bool) -> np.ndarray:
        if grow:
            get = self.ids.setdefault
            return np.fromiter((get(w, len(self.ids) + 1) for w in ws), dtype=np.uint64, count=len(ws))
        get = self.ids.get
        return np.fromiter((get(w, 0) for w in ws), dtype=np.uint64, count=len(ws))


class PromptDeduper:
    """Accepts a prompt unless it repeats (exactly or nearly) one accepted before."""

    def __init__(self, exact: bool = True, near: bool = True, threshold: float = 0.8, shingle: int = 3,
                 num_perm: int = 128, bands: int = 16) -> None:
        self.exact, self.near, self.threshold, self.shingle = exact, near, threshold, shingle
        self.bands, self.rows = bands, num_perm // bands
        rng = np.random.default_rng(20260406)  # fixed: signatures must not change between runs
        self.a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
        self.vocab = _Vocab()
        self.seen: set[str] = set()
        self.buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
        self.sets: list[frozenset] = []

    def _shingles(self, ws: list[str]) -> frozenset:
        ids = self.vocab.encode(ws, grow=True)
        k = min(self.shingle, len(ids))
        return frozenset(_window_hashes(ids, k).tolist()) if k else frozenset()

    def check(self, prompt: str) -> tuple[str | None, tuple]:
        """('exact' | 'near' | None, handle). Nothing is remembered until `add(handle)`, so a prompt
        rejected later for another reason does not block its duplicates."""
        ws = words(prompt)
        key = " ".join(ws)
        if self.exact and key in self.seen:
            return "exact", (key, None, None)
        if not (self.near and ws):
            return None, (key, None, None)
        sh = self._shingles(ws)
        arr = np.fromiter(sh, dtype=np.uint64, count=len(sh))
        with np.errstate(over="ignore"):
            sig = ((arr[None, :] * self.a[:, None] + self.b[:, None]) >> np.uint64(16)).min(axis=1)
        keys = [(i, sig[i * self.rows:(i + 1) * self.rows].tobytes()) for i in range(self.bands)]
        hits = Counter(j for k in keys for j in self.buckets.get(k, ()))
        # Most band collisions first, and only the top few: a prompt with Jaccard >= 0.8 shares a band
        # with probability 1 - (1 - 0.8^8)^16 = 0.95 and shares more bands than loose matches, while
        # templated prompts (Countdown's "Numbers: ... Target: ...") would otherwise make this quadratic.
        for j, _ in sorted(hits.items(), key=lambda jc: (-jc[1], jc[0]))[:MAX_VERIFY]:
            other = self.sets[j]
            inter = len(sh & other)
            if inter and inter / len(sh | other) >= self.threshold:
                return "near", (key, None, None)
        return None, (key, sh, keys)

    def add(self, handle: tuple) -> None:
        key, sh, keys = handle
        self.seen.add(key)
        if sh is not None:
            idx = len(self.sets)
            self.sets.append(sh)
            for k in keys:
                self.buckets[k].append(idx)


class EvalIndex:
    """The n-grams of the eval prompts, each mapped to the benchmarks it occurs in."""

    def __init__(self, items: Iterable[tuple[str, str]], n: int = 13) -> None:
        """items: (benchmark, prompt), in a fixed order."""
        self.n = n
        self.vocab = _Vocab()
        self.exact: dict[str, set[str]] = defaultdict(set)
        self.grams: dict[int, dict[int, list[tuple[tuple[int, ...], str]]]] = defaultdict(lambda: defaultdict(list))
        self.benchmarks: set[str] = set()
        self.size = 0
        for bench, prompt in items:
            self.size += 1
            self.benchmarks.add(bench)
            ws = words(prompt)
            self.exact[" ".join(ws)].add(bench)
            m = n if len(ws) >= n else len(ws)
            if m < MIN_GRAM:
                continue
            ids = self.vocab.encode(ws, grow=True)
            hs = _window_hashes(ids, m)
            for i, h in enumerate(hs.tolist()):
                gram = tuple(ids[i:i + m].tolist())
                bucket = self.grams[m][h]
                if (gram, bench) not in bucket:
                    bucket.append((gram, bench))
        self.sorted_hashes = {m: np.array(sorted(d), dtype=np.uint64) for m, d in self.grams.items()}

    def __len__(self) -> int:
        return self.size

    def hits(self, text: str) -> set[str]:
        """The benchmarks whose prompts share an n-gram with `text` (or equal it exactly)."""
        ws = words(text)
        found = set(self.exact.get(" ".join(ws), ()))
        if not self.sorted_hashes or not ws:
            return found
        ids = self.vocab.encode(ws, grow=False)
        for m, table in self.sorted_hashes.items():
            hs = _window_hashes(ids, m)
            if not len(hs):
                continue
            pos = np.searchsorted(table, hs)
            pos[pos == len(table)] = 0
            for i in np.nonzero(table[pos] == hs)[0].tolist():
                gram = tuple(ids[i:i + m].tolist())
                for g, bench in self.grams[m][int(hs[i])]:
                    if g == gram:
                        found.add(bench)
        return found
