"""SFT data: load a `messages` dataset from disk, tokenize it through the chat template with response-only
labels, apply the length policy (counted), and cut each optimizer step into per-rank micro-batches.

Tokenized data lives as three .npy arrays (flat token ids, offsets, prompt lengths) so every rank memory-
maps the same bytes. A sample's training targets are built per sample *before* packing (target[t] =
ids[t+1] where t+1 is a response position), so packing can never make one sample predict another's
first token. Packed rows carry position ids that restart at 0 for every sample; transformers turns such
position ids into a block-diagonal causal mask (sdpa/eager) or varlen flash-attention calls, so a sample
never attends to its neighbours (tests/test_train_data.py checks packed == unpacked losses).

Known issues: only the last message is trained (earlier assistant turns are context). `response_end:
eos` renders the response as raw text + tokenizer.eos_token, as the study's verl trainer does;
`template` (default, as TRL) trains whatever the chat template puts after the response (e.g.
`<|im_end|>\\n`) and appends the EOS only when the template emits no special token there.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.errors import InputError

IGNORE = -100


# ---------------------------------------------------------------- loading and validation


def _read_jsonl(path: Path, field: str) -> list:
    from curate.sources import read_jsonl

    rows = []
    for lineno, row in read_jsonl(path):
        if field not in row:
            raise InputError(f"{path}:{lineno}: no '{field}' field", hint="each line needs a chat list under 'messages'")
        rows.append(row[field])
    return rows


def load_messages(path: str | Path, split: str = "train", field: str = "messages") -> list:
    """Return the `messages` column as a list of chat lists. Accepts a `save_to_disk` folder (Dataset or
    DatasetDict), a `curate mix` output folder, a .parquet/.jsonl/.json file, or a folder of .parquet or .jsonl files."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{p}: dataset not found", hint="data.path takes a save_to_disk folder, .parquet or .jsonl")
    saved = ("dataset_info.json", "state.json", "dataset_dict.json")
    if p.is_dir() and not any((p / n).exists() for n in saved) and any((p / "dataset" / n).exists() for n in saved):
        p = p / "dataset"  # a `curate mix` output folder: its save_to_disk copy lives in dataset/
    if p.is_dir() and any((p / n).exists() for n in saved):
        import datasets

        ds = datasets.load_from_disk(str(p))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise InputError(f"{p}: no split '{split}' (has {sorted(ds)})", hint="set data.split")
            ds = ds[split]
        if field not in ds.column_names:
            raise InputError(f"{p}: no '{field}' column (columns: {ds.column_names})", hint="set data.messages_field")
        return ds[field]
    files = sorted(p.glob("*.parquet")) or sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
    if not files:
        raise InputError(f"{p}: folder holds no dataset, .parquet or .jsonl files")
    rows: list = []
    for f in files:
        if f.suffix == ".parquet":
            import pyarrow.parquet as pq

            try:
                table = pq.read_table(f)
            except Exception as e:  # pyarrow raises several types for a corrupt file
                raise InputError(f"{f}: cannot read Parquet ({e})") from None
            if field not in table.column_names:
                raise InputError(f"{f}: no '{field}' column (columns: {table.column_names})", hint="set data.messages_field")
            rows += table.column(field).to_pylist()
        elif f.suffix in (".jsonl", ".json"):
            rows += _read_jsonl(f, field)
        else:
            raise InputError(f"{f}: unsupported file type '{f.suffix}'", hint="use .parquet, .jsonl or a save_to_disk folder")
    return rows


def validate_messages(rows: list, where: str) -> None:
    """Every row: a list of >= 2 {role, content} dicts with string content, the last from the assistant."""
    if not rows:
        raise InputError(f"{where}: the dataset is empty")
    for i, msgs in enumerate(rows):
        if not isinstance(msgs, list) or len(msgs) < 2:
            raise InputError(f"{where}: row {i}: 'messages' must be a list of at least 2 turns (prompt, response)")
        for j, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise InputError(f"{where}: row {i}: messages[{j}] needs string 'role' and 'content'")
        if msgs[-1]["role"] != "assistant":
            raise InputError(f"{where}: row {i}: the last message must be the assistant's response (got '{msgs[-1]['role']}')")


# ---------------------------------------------------------------- tokenization and length policy


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def tokenize_rows(tokenizer, rows: list, response_end: str = "template", batch: int = 512):
    """Yield (ids, prompt_len, eos_appended) per row; the response is ids[prompt_len:]."""
    eos = tokenizer.eos_token_id
    special = set(tokenizer.all_special_ids)
    for start in range(0, len(rows), batch):
        chunk = [[{"role": m["role"], "content": m["content"]} for m in msgs] for msgs in rows[start : start + batch]]
        prompts = [tokenizer.apply_chat_template(m[:-1], tokenize=False, add_generation_prompt=True) for m in chunk]
        p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        if response_end == "eos":  # verl: prompt and response tokenized apart, response = text + eos
            r_ids = tokenizer([m[-1]["content"] for m in chunk], add_special_tokens=False)["input_ids"]
            for p, r in zip(p_ids, r_ids):
                yield list(p) + list(r) + [eos], len(p), True
            continue
        full = [tokenizer.apply_chat_template(m, tokenize=False) for m in chunk]
        f_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        for p, f in zip(p_ids, f_ids):
            plen = _common_prefix(p, f)  # as TRL: the completion starts where the two diverge
            f = list(f)
            appended = False
            if eos is not None and not any(t in special for t in f[plen:]):
                f.append(eos)
                appended = True
            yield f, plen, appended


@dataclass
class TokenizedData:
    tokens: np.ndarray  # int32, all samples back to back
    offsets: np.ndarray  # int64, n + 1
    prompt_lens: np.ndarray  # int32, n

    def __len__(self) -> int:
        return len(self.prompt_lens)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sample(self, i: int) -> tuple[np.ndarray, int]:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]], int(self.prompt_lens[i])

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "tokens.npy", self.tokens)
        np.save(folder / "offsets.npy", self.offsets)
        np.save(folder / "prompt_lens.npy", self.prompt_lens)

    @classmethod
    def load(cls, folder: Path) -> "TokenizedData":
        return cls(
            np.load(folder / "tokens.npy", mmap_mode="r"),
            np.load(folder / "offsets.npy"),
            np.load(folder / "prompt_lens.npy"),
        )


def prepare(tokenizer, rows: list, data_cfg, where: str) -> tuple[TokenizedData, dict]:
    """Tokenize and apply the length policy. Returns the kept samples and a report of what the policy did."""
    maxp = data_cfg.max_prompt_length or data_cfg.max_length
    maxr = data_cfg.max_response_length or data_cfg.max_length
    report = {"rows": len(rows), "kept": 0, "dropped_too_long": 0, "dropped_prompt_too_long": 0, "truncated": 0,
              "eos_appended": 0, "empty_response": 0, "tokens": 0, "response_tokens": 0, "max_length_seen": 0,
              "policy": data_cfg.truncation, "max_length": data_cfg.max_length}
    pieces, plens = [], []
    first_bad = None
    for i, (ids, plen, appended) in enumerate(tokenize_rows(tokenizer, rows, data_cfg.response_end)):
        rlen = len(ids) - plen
        report["max_length_seen"] = max(report["max_length_seen"], len(ids))
        report["eos_appended"] += appended and data_cfg.response_end == "template"
        if rlen <= 0 or plen <= 0:
            report["empty_response"] += 1
            continue
        too_long = len(ids) > data_cfg.max_length or plen > maxp or rlen > maxr
        if too_long:
            first_bad = first_bad if first_bad is not None else (i, plen, rlen)
            if data_cfg.truncation == "drop":
                report["dropped_too_long"] += 1
                continue
            if data_cfg.truncation == "truncate":
                if plen > maxp or plen >= data_cfg.max_length:
                    report["dropped_prompt_too_long"] += 1
                    continue
                ids = ids[: plen + min(maxr, data_cfg.max_length - plen)]
                report["truncated"] += 1
        pieces.append(np.asarray(ids, dtype=np.int32))
        plens.append(plen)
    if data_cfg.truncation == "error" and first_bad is not None:
        i, p, r = first_bad
        raise InputError(
            f"{where}: row {i} is too long (prompt {p} + response {r} tokens; limits prompt {maxp}, response {maxr}, "
            f"total {data_cfg.max_length})",
            hint="raise data.max_length or set data.truncation to drop or truncate",
        )
    if not pieces:
        raise InputError(f"{where}: no sample survives the length policy ({report})")
    lengths = np.array([len(x) for x in pieces], dtype=np.int64)
    data = TokenizedData(np.concatenate(pieces), np.concatenate([[0], np.cumsum(lengths)]), np.array(plens, np.int32))
    report["kept"] = len(data)
    report["tokens"] = int(lengths.sum())
    report["response_tokens"] = int((lengths - data.prompt_lens).sum())
    return data, report


# ---------------------------------------------------------------- the data order and micro-batches


def steps_per_epoch(n: int, global_batch: int) -> int:
    return n // global_batch


def global_batch_indices(step: int, n: int, global_batch: int, seed: int, shuffle: bool) -> np.ndarray:
    """Sample indices of optimizer step `step`: a fixed permutation per epoch (seed + epoch), remainder dropped.
    A pure function of the step, so the data position of a resumable state is just the step."""
    spe = steps_per_epoch(n, global_batch)
    epoch, k = divmod(step, spe)
    order = np.random.default_rng(seed + epoch).permutation(n) if shuffle else np.arange(n)
    return order[k * global_batch : (k + 1) * global_batch]


def split_ranks(indices: np.ndarray, lengths: np.ndarray, world: int) -> list[list[int]]:
    """Longest-first onto the least-loaded rank (balanced tokens); each rank keeps the global order."""
    loads = [0] * world
    owner = {}
    for pos in sorted(range(len(indices)), key=lambda p: (-int(lengths[indices[p]]), p)):
        r = min(range(world), key=lambda q: (loads[q], q))
        loads[r] += int(lengths[indices[pos]])
        owner[pos] = r
    return [[int(indices[p]) for p in range(len(indices)) if owner[p] == r] for r in range(world)]


def micro_batches(idx: list[int], lengths: np.ndarray, packing: bool, micro_batch_size: int, micro_batch_tokens: int) -> list[list[int]]:
    if not packing:
        return [idx[i : i + micro_batch_size] for i in range(0, len(idx), micro_batch_size)]
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(idx, key=lambda j: -int(lengths[j])):  # first-fit decreasing
        L = int(lengths[i])
        for b in range(len(bins)):
            if room[b] >= L:
                bins[b].append(i)
                room[b] -= L
                break
        else:
            bins.append([i])
            room.append(micro_batch_tokens - L)
    return bins


def sample_targets(ids: np.ndarray, plen: int) -> np.ndarray:
    """Next-token targets for one sample: ids[t+1] where t+1 is a response token, else IGNORE; last is IGNORE."""
    t = np.full(len(ids), IGNORE, dtype=np.int64)
    t[plen - 1 : -1] = ids[plen:]
    return t


def collate(data: TokenizedData, idx: list[int], packing: bool, pad_id: int) -> dict:
    """Tensors for one forward. Packed: one row, position ids restart per sample, no attention mask.
    Unpacked: right-padded rows with an attention mask. An empty idx gives a 1-token dummy whose loss is 0
    (ranks with fewer micro-batches still join every FSDP collective)."""
    import torch

    if not idx:
        return {"input_ids": torch.full((1, 1), pad_id), "targets": torch.full((1, 1), IGNORE),
                "position_ids": torch.zeros(1, 1, dtype=torch.long), "attention_mask": None}
    samples = [data.sample(i) for i in idx]
    if packing:
        ids = np.concatenate([s for s, _ in samples])
        tgt = np.concatenate([sample_targets(s, p) for s, p in samples])
        pos = np.concatenate([np.arange(len(s)) for s, _ in samples])
        segments = tuple(int(x) for x in np.cumsum([0] + [len(s) for s, _ in samples]))
        return {"input_ids": torch.from_numpy(ids.astype(np.int64))[None], "targets": torch.from_numpy(tgt)[None],
                "position_ids": torch.from_numpy(pos)[None], "attention_mask": None, "segments": segments}
    L = max(len(s) for s, _ in samples)
    ids = np.full((len(samples), L), pad_id, dtype=np.int64)
    tgt = np.full((len(samples), L), IGNORE, dtype=np.int64)
    mask = np.zeros((len(samples), L), dtype=np.int64)
    for r, (s, p) in enumerate(samples):
        ids[r, : len(s)] = s
        tgt[r, : len(s)] = sample_targets(s, p)
        mask[r, : len(s)] = 1
    pos = np.broadcast_to(np.arange(L), (len(samples), L)).copy()
    return {"input_ids": torch.from_numpy(ids), "targets": torch.from_numpy(tgt),
            "position_ids": torch.from_numpy(pos), "attention_mask": torch.from_numpy(mask)}
