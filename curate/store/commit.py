"""Committing pending shards: the single writer's transaction that turns shard files into catalog rows.

`commit_shards(store, con, paths)` inserts the rows not stored yet (keys from their positions, features,
their problem's key, the latest verdict of any verdicts that arrived first) and registers every shard, in
one transaction. A shard that cannot be read on its own is moved to `quarantine/` with a warning and the
rest is committed. Called by TraceStore.commit_pending under the store's write lock.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import first_line
from curate.store import keys
from curate.store import shards as shard_io

QUARANTINE = "quarantine"


def commit_shards(store, con, paths: list[Path]) -> int:
    """Commit these pending shards: a shard that cannot be read on its own is set aside, the rest committed."""
    good = []
    for path in paths:
        err = _unreadable(path, footer_only=True)
        if err is None:
            good.append(path)
        else:
            _quarantine(store, path, err)
    if not good:
        return 0
    try:
        return _commit_batch(store, con, good)
    except duckdb.Error:
        # Blame a shard only when reading it on its own fails; otherwise this was a failure to write.
        bad = {p: e for p in good if (e := _unreadable(p)) is not None}
        if not bad:
            raise
    for p, e in bad.items():
        _quarantine(store, p, e)
    rest = [p for p in good if p not in bad]
    return _commit_batch(store, con, rest) if rest else 0


def _commit_batch(store, con, paths: list[Path]) -> int:
    """One transaction: insert the rows not yet stored (and their features), register every shard."""
    files = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"
    # Producers dedupe within a shard; two pending shards may still share ids (a rerun after a kill):
    # keep the copy in the first file by name. Only the shared ids are joined against, so the usual case
    # (no id shared) probes an empty table.
    src = f"read_parquet({files}, filename = true, file_row_number = true)"
    first = (f"ANTI JOIN (SELECT id, min(filename) AS keep FROM {src} GROUP BY id HAVING count(*) > 1) d "
             "ON d.id = s.id AND d.keep <> s.filename") if len(paths) > 1 else ""
    sizes = [[p.stem, p.stat().st_size] for p in paths]
    meta = shard_io.META_COLUMNS[2:]
    feats = shard_io.features.NAMES

    def body() -> dict:
        shard_base = keys.next_key(con, "shard_rows", "shard_no")
        con.register("shard_numbers", pa.table({
            "name": [n for n, _ in sizes], "bytes": pa.array([b for _, b in sizes], pa.int64()),
            "shard_no": pa.array(range(shard_base + 1, shard_base + 1 + len(sizes)), pa.int32())}))
        # Keys come from positions (shard number, row in the file), so nothing is sorted or numbered here.
        con.execute(
            f"""INSERT INTO sample_rows (skey, id, problem_id, pkey, {', '.join(meta)}, created_at, shard, {', '.join(feats)})
            SELECT {keys.position_key('m.shard_no', 's.file_row_number')}, s.id, s.problem_id, p.pkey,
                   {', '.join('s.params::JSON' if c == 'params' else 's.' + c for c in meta)}, now(), m.name,
                   {', '.join('s.f_' + c for c in feats)}
            FROM {src} s {first} JOIN shard_numbers m ON m.name = parse_filename(s.filename, true)
            ANTI JOIN sample_rows r ON r.id = s.id
            LEFT JOIN problem_rows p ON p.id = s.problem_id""")
        first_key = keys.position_key(shard_base + 1, 0)
        if con.execute("SELECT count(*) FROM verdict_rows WHERE skey IS NULL").fetchone()[0]:
            # Verdicts written before their sample was stored: key them now, and label the new rows.
            con.execute(f"""UPDATE verdict_rows v SET skey = s.skey FROM sample_rows s
                WHERE v.skey IS NULL AND s.skey >= {first_key} AND s.id = v.sample_id""")
            keys.refresh_latest(con, f"SELECT skey FROM verdict_rows WHERE skey >= {first_key}")
        con.execute(f"""INSERT INTO shard_rows SELECT m.shard_no, m.name, coalesce(c.n, 0), m.bytes, now()
            FROM shard_numbers m LEFT JOIN (SELECT shard, count(*) AS n FROM sample_rows WHERE skey >= {first_key}
            GROUP BY shard) c ON c.shard = m.name""")
        per = dict(con.execute(f"SELECT name, rows FROM shard_rows WHERE shard_no > {shard_base}").fetchall())
        con.unregister("shard_numbers")
        return per

    per_shard = store._transaction(con, body)
    for p in paths:  # every row was already stored: the registered name is enough to skip it next time
        if store.unlink_empty_shards and per_shard.get(p.stem, 0) == 0:
            p.unlink(missing_ok=True)
    return int(sum(per_shard.values()))


def _quarantine(store, path: Path, err: Exception) -> None:
    qdir = store.path / QUARANTINE
    try:
        qdir.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), qdir / path.name)
    except OSError as e:
        raise store.write_error(e, f"setting aside unreadable shard {path}") from None
    msg = f"shard {path.name} is unreadable ({first_line(err)}); moved to {qdir}, the rest was committed"
    store.warnings.append(msg)
    warnings.warn(msg, stacklevel=3)


def _unreadable(path: Path, footer_only: bool = False) -> Exception | None:
    """Why this shard cannot be read (None when it can): its footer, or every column a commit reads."""
    try:
        if not shard_io.SHARD_NAME.fullmatch(path.stem):
            raise ValueError("not a shard file name")
        if path.is_symlink() or not path.is_file():
            raise ValueError("not a regular file (a symlink or a special file)")
        if not shard_io.looks_complete(path):
            raise ValueError("truncated file")
        meta = pq.read_metadata(path)
        if not footer_only:
            names = set(meta.schema.names)
            want = shard_io.META_COLUMNS + [f"f_{c}" for c in shard_io.features.NAMES]
            missing = [c for c in want if c not in names]
            if missing:
                raise ValueError(f"missing columns {', '.join(missing)}")
            pq.read_table(path, columns=want)
        return None
    except Exception as e:  # whatever the reader raises is the reason this file is unreadable
        return e
