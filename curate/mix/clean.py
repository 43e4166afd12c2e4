"""Prompt dedup (exact and near-duplicate) and n-gram decontamination against evaluation problems.

Both work on lower-cased word tokens (`\\w+`), so punctuation and spacing do not hide a copy, and both
judge what differs between problems, not the template they share:
- Template grams: a word n-gram found in at least `common_share` of the prompts of one benchmark, or of
  the candidate training prompts (and in at least MIN_COMMON_DOCS of them), is boilerplate (Countdown's
  fixed instructions, a multiple-choice suffix, "m/n where m and n are relatively prime") and is ignored.
- Structured keys: a problem whose task defines one (Countdown: sorted numbers and target) is a duplicate
  or a contamination only by key equality; its text is not compared by n-grams or shingles at all.
- PromptDeduper: exact duplicates by normalised text (or key); near duplicates by MinHash (128
  permutations) over word shingles minus template shingles, with LSH banding (16 bands of 8) to find
  candidates, then the true Jaccard similarity decides (so a verdict never rests on a hash collision).
  Feed prompts in a fixed order; the first of a group is kept.
- EvalIndex: every non-template word n-gram of every unkeyed eval prompt (one with at least
  MIN_RARE_WORDS words that are not template words themselves), with the benchmark (the eval problem's
  source) it came from, plus the keys of keyed eval problems. An eval prompt shorter than n
  words counts as one gram of its own length (down to MIN_GRAM words; shorter ones are caught only as
  exact prompt matches). Checking a text hashes its windows with numpy and confirms every hash hit
  against the actual words, so there are no false positives from collisions.
Known limits: word n-grams miss paraphrases and translations; numbers written differently
("1/2" vs "0.5") do not match; a leaked problem copied into more than `common_share` of the training
prompts would count as template.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Iterable

import numpy as np

WORD = re.compile(r"\w+")
MIN_GRAM = 8
MAX_VERIFY = 32  # candidates whose exact Jaccard similarity is computed per prompt
MIN_COMMON_DOCS = 3  # a gram must occur in at least this many prompts to count as template
MIN_RARE_WORDS = 2  # an eval n-gram counts only with at least this many non-template words
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


def doc_freq(docs: list[np.ndarray], n: int) -> dict[int, int]:
    """How many of `docs` (word-id arrays) contain each n-gram hash; one vectorised pass over all of them."""
    docs = [d for d in docs if len(d) >= n]
    if not docs:
        return {}
    ids = np.concatenate(docs)
    owner = np.repeat(np.arange(len(docs), dtype=np.uint64), [len(d) for d in docs])
    h = _window_hashes(ids, n)
    inside = owner[: len(h)] == owner[n - 1:]  # windows that do not straddle two documents
    pairs = np.unique(np.stack([h[inside], owner[: len(h)][inside]]), axis=1)
    hashes, counts = np.unique(pairs[0], return_counts=True)
    return dict(zip(hashes.tolist(), counts.tolist()))


def common_grams(docs: list[np.ndarray], n: int, share: float) -> set[int]:
    """The n-gram hashes that occur in at least `share` of `docs` (and in at least MIN_COMMON_DOCS)."""
    need = max(MIN_COMMON_DOCS, share * len(docs))
    return {h for h, c in doc_freq(docs, n).items() if c >= need}


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
    """Accepts a prompt unless it repeats (exactly or nearly, or by key) one accepted before.

    `corpus`: the candidate prompts, in a fixed order; shingles found in `common_share` of them are
    template and take no part in the near-duplicate comparison."""

    def __init__(self, exact: bool = True, near: bool = True, threshold: float = 0.8, shingle: int = 3,
                 num_perm: int = 128, bands: int = 16, corpus: Iterable[str] = (), common_share: float = 0.1) -> None:
        self.exact, self.near, self.threshold, self.shingle = exact, near, threshold, shingle
        self.bands, self.rows = bands, num_perm // bands
        rng = np.random.default_rng(20260406)  # fixed: signatures must not change between runs
        self.a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
        self.vocab = _Vocab()
        self.seen: set[str] = set()
        self.keys: set[str] = set()
        self.buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
        self.sets: list[frozenset] = []
        docs = [self.vocab.encode(words(p), grow=True) for p in corpus] if near else []
        self.common = common_grams(docs, shingle, common_share) if docs else set()

    def _shingles(self, ws: list[str]) -> frozenset:
        ids = self.vocab.encode(ws, grow=True)
        k = min(self.shingle, len(ids))
        return frozenset(_window_hashes(ids, k).tolist()) - self.common if k else frozenset()

    def check(self, prompt: str, key: str | None = None) -> tuple[str | None, tuple]:
        """('exact' | 'near' | 'key' | None, handle). Nothing is remembered until `add(handle)`, so a prompt
        rejected later for another reason does not block its duplicates. A keyed prompt is compared by key only."""
        ws = words(prompt)
        text = " ".join(ws)
        if key is not None:
            return ("key" if self.exact and key in self.keys else None), (text, None, None, key)
        if self.exact and text in self.seen:
            return "exact", (text, None, None, None)
        if not (self.near and ws):
            return None, (text, None, None, None)
        sh = self._shingles(ws)
        if not sh:  # nothing but template: only an exact copy could be a duplicate
            return None, (text, None, None, None)
        arr = np.fromiter(sh, dtype=np.uint64, count=len(sh))
        with np.errstate(over="ignore"):
            sig = ((arr[None, :] * self.a[:, None] + self.b[:, None]) >> np.uint64(16)).min(axis=1)
        keys = [(i, sig[i * self.rows:(i + 1) * self.rows].tobytes()) for i in range(self.bands)]
        hits = Counter(j for k in keys for j in self.buckets.get(k, ()))
        # Most band collisions first, and only the top few: a prompt with Jaccard >= 0.8 shares a band
        # with probability 1 - (1 - 0.8^8)^16 = 0.95 and shares more bands than loose matches.
        for j, _ in sorted(hits.items(), key=lambda jc: (-jc[1], jc[0]))[:MAX_VERIFY]:
            other = self.sets[j]
            inter = len(sh & other)
            if inter and inter / len(sh | other) >= self.threshold:
                return "near", (text, None, None, None)
        return None, (text, sh, keys, None)

    def add(self, handle: tuple) -> None:
        text, sh, keys, key = handle
        self.seen.add(text)
        if key is not None:
            self.keys.add(key)
        if sh is not None:
            idx = len(self.sets)
            self.sets.append(sh)
            for k in keys:
                self.buckets[k].append(idx)


class EvalIndex:
    """The non-template n-grams of the unkeyed eval prompts and the keys of the keyed ones, each mapped to
    the benchmarks it occurs in."""

    def __init__(self, items: Iterable[tuple], n: int = 13, common_share: float = 0.1, corpus: Iterable[str] = ()) -> None:
        """items: (benchmark, prompt) or (benchmark, prompt, key), in a fixed order. corpus: the candidate
        training prompts; grams common among them (or among one benchmark's prompts) are template."""
        self.n = n
        self.vocab = _Vocab()
        self.exact: dict[str, set[str]] = defaultdict(set)
        self.keys: dict[str, set[str]] = defaultdict(set)
        self.grams: dict[int, dict[int, list[tuple[tuple[int, ...], str]]]] = defaultdict(lambda: defaultdict(list))
        self.benchmarks: set[str] = set()
        self.size = 0
        self.keyed = 0
        by_bench: dict[str, list[np.ndarray]] = defaultdict(list)
        for item in items:
            bench, prompt, key = (tuple(item) + (None,))[:3]
            self.size += 1
            self.benchmarks.add(bench)
            ws = words(prompt)
            self.exact[" ".join(ws)].add(bench)
            if key is not None:
                self.keys[key].add(bench)
                self.keyed += 1
                continue
            m = n if len(ws) >= n else len(ws)
            if m < MIN_GRAM:
                continue
            ids = self.vocab.encode(ws, grow=True)
            if m == n:
                by_bench[bench].append(ids)
            hs = _window_hashes(ids, m)
            for i, h in enumerate(hs.tolist()):
                gram = tuple(ids[i:i + m].tolist())
                bucket = self.grams[m][h]
                if (gram, bench) not in bucket:
                    bucket.append((gram, bench))
        # Template: grams (and words) common among one benchmark's prompts or among the candidate prompts.
        # Words unknown to the eval prompts encode as 0, so such grams can never match one: fine to merge.
        common: set[int] = set()
        common_words: set[int] = set()
        train_docs = [self.vocab.encode(words(p), grow=False) for p in corpus] if self.grams else []
        for docs in list(by_bench.values()) + [train_docs]:
            common |= common_grams(docs, n, common_share)
            common_words |= common_grams(docs, 1, common_share)  # a 1-gram's hash is the word id itself
        before = sum(len(b) for g in self.grams.values() for b in g.values())
        for h in common:
            self.grams.get(n, {}).pop(h, None)
        # A gram made of template words but one ("Target: 62 Give the expression as your final answer...")
        # says nothing about the problem either: at least MIN_RARE_WORDS of its words must be uncommon.
        for grams in self.grams.values():
            for h in list(grams):
                kept = [(g, b) for g, b in grams[h] if sum(w not in common_words for w in g) >= MIN_RARE_WORDS]
                if kept:
                    grams[h] = kept
                else:
                    del grams[h]
        self.template_grams = before - sum(len(b) for g in self.grams.values() for b in g.values())
        self.sorted_hashes = {m: np.array(sorted(d), dtype=np.uint64) for m, d in self.grams.items() if d}

    def __len__(self) -> int:
        return self.size

    def hits(self, text: str, key: str | None = None) -> set[str]:
        """The benchmarks whose prompts share a non-template n-gram with `text`, equal it exactly, or (for a
        keyed problem: `key` given) have the same key. A keyed text is not compared by n-grams."""
        ws = words(text)
        found = set(self.exact.get(" ".join(ws), ()))
        if key is not None:
            return found | self.keys.get(key, set())
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
