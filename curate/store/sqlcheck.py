"""Structural checks of user SQL, made with DuckDB's own parser (never with string tests).

- `check_statement(sql)`: `curate sql` (and every TraceStore.query) runs exactly one read-only statement:
  SELECT (which includes WITH ... SELECT, FROM-first queries, VALUES, DESCRIBE, SHOW and SUMMARIZE) or
  EXPLAIN [ANALYZE] of one. Anything else (COPY, EXPORT, ATTACH, SET, PRAGMA, INSTALL, CALL, CREATE, ...)
  is refused before it reaches a connection, and so is a query reading what describes the host rather than
  the store (HOST_INFO: duckdb_settings, duckdb_databases, ..., and current_setting() of a path setting).
- `predicate_problem(pred, view)` / `check_predicate(pred, view, what)`: a predicate (`generate --problems`,
  `verify --where`, a recipe's `where`) must be one boolean expression over the named view. It is parsed
  inside `SELECT 1 FROM view WHERE (...)` with `json_serialize_sql` and refused when it changes that
  query (a set operation, GROUP BY, ORDER BY, LIMIT, ...), closes a parenthesis it did not open (checked
  on DuckDB's tokens, so the predicate stays one operand wherever it is AND-ed in), holds a ';', reads
  a table function (read_text, read_csv, glob, ...), or reads a table that is not one of the store's views
  (PREDICATE_VIEWS) or a CTE it defines: a quoted file name (`FROM 'x.json'`, a replacement scan), a system
  view such as duckdb_settings or duckdb_databases. Subqueries over the store's views are fine.
  `check_predicate` returns the predicate wrapped as `(\\n...\\n)`, ready to embed: the newlines end any
  trailing `--` comment inside the parentheses.

- `referenced_names(sql)`: the column and table names a query mentions, or None when it may use columns it
  does not name (`*`, COLUMNS(...) or a positional reference over `traces`, NATURAL joins, a whole row by its
  table's name, anything but one SELECT). The `traces` view leaves out the joins a query does not need (views.create_views).

These checks are the second line. The defence is the locked-down connection (connection.py), which
refuses file, network and extension access and configuration changes whatever the SQL says.
Tested by tests/test_security.py.
"""
from __future__ import annotations

import json
import os
import threading

import duckdb

from curate.errors import ConfigError, StoreError

READ_ONLY = "SELECT, WITH ... SELECT, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN"
PREDICATE_VIEWS = ("problems", "samples", "verdicts", "features", "traces", "evals", "eval_samples", "lineage")
_local = threading.local()


def _parser() -> duckdb.DuckDBPyConnection:
    """A private in-memory connection for json_serialize_sql (per thread and process: never shared)."""
    con = getattr(_local, "con", None)
    if con is None or getattr(_local, "pid", None) != os.getpid():
        con = duckdb.connect(":memory:", config={"enable_external_access": False, "autoinstall_known_extensions": False,
                                                 "autoload_known_extensions": False, "threads": 1,
                                                 "lock_configuration": True})
        _local.con, _local.pid = con, os.getpid()
    return con


def _serialize(sql: str) -> dict:
    return json.loads(_parser().execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])


def _short(sql: str, n: int = 80) -> str:
    s = " ".join(sql.split())
    return s if len(s) <= n else s[: n - 3] + "..."


def _statements(sql: str) -> list:
    try:
        return _parser().extract_statements(sql)
    except duckdb.Error as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise StoreError(f"SQL error: {' '.join(lines[:1]) or type(e).__name__}",
                         hint="`curate schema` lists the views and their columns") from None


def _type(stmt) -> str:
    return str(stmt.type).rsplit(".", 1)[-1]


def _explained(stmt) -> str | None:
    """The statement an EXPLAIN [ANALYZE] wraps (None when options in parentheses follow EXPLAIN)."""
    text = stmt.query
    tokens = duckdb.tokenize(text)
    words = [(pos, text[pos:(tokens[i + 1][0] if i + 1 < len(tokens) else len(text))].strip().lower())
             for i, (pos, kind) in enumerate(tokens) if not str(kind).endswith("comment")]
    i = 1 if words and words[0][1] == "explain" else 0
    if i < len(words) and words[i][1] == "analyze":
        i += 1
    if i == 0 or i >= len(words) or words[i][1].startswith("("):
        return None
    return text[words[i][0]:]


def check_statement(sql: str) -> None:
    """Raise StoreError unless `sql` is exactly one read-only statement."""
    stmts = _statements(sql)
    if len(stmts) != 1:
        raise StoreError(f"SQL is read-only and runs one statement at a time; got {len(stmts)} statements",
                         hint=f"send one {READ_ONLY} query")
    kind = _type(stmts[0])
    if kind == "EXPLAIN":
        inner = _explained(stmts[0])
        inner_stmts = _statements(inner) if inner else []
        if len(inner_stmts) == 1 and _type(inner_stmts[0]) == "SELECT":
            return
        kind = f"EXPLAIN of a {_type(inner_stmts[0])} statement" if len(inner_stmts) == 1 else "EXPLAIN with options"
    elif kind == "SELECT":
        leak = _host_information(_serialize(sql))
        if leak:
            raise StoreError(f"SQL reads {leak}, which describes this machine (paths, secrets), not the store: {_short(sql)}",
                             hint=f"`curate sql` runs one {READ_ONLY} query over the store's views; `curate schema` lists them")
        return
    else:
        kind = f"a {kind} statement"
    raise StoreError(f"SQL is read-only: {kind} is not allowed: {_short(sql)}",
                     hint=f"`curate sql` runs one {READ_ONLY} query over the store's views")


# Catalog functions and views whose rows name host paths or secrets (the store's own are in `curate schema`),
# and the words of settings whose value is a path (current_setting('secret_directory') names the home folder).
HOST_INFO = {"duckdb_settings", "duckdb_databases", "duckdb_secrets", "duckdb_temporary_files", "duckdb_extensions",
             "duckdb_logs", "duckdb_logs_parsed", "duckdb_log_contexts", "duckdb_external_file_cache",
             "pragma_database_list", "which_secret"}
_PATH_SETTING_WORDS = ("directory", "path", "file", "secret", "log", "profil", "repository")


def _first_string_argument(node: dict) -> str | None:
    """A function call's first argument when it is a string constant (DuckDB 2 `arguments`, older `children`)."""
    args = [a.get("expression") or {} for a in node.get("arguments") or []] or node.get("children") or []
    if not args or args[0].get("class") != "CONSTANT":
        return None
    value = (args[0].get("literal") or {}).get("text", (args[0].get("value") or {}).get("value"))
    return value if isinstance(value, str) else None


def _host_information(node) -> str | None:
    """What a query's parse tree reads that describes the host rather than the store (None when nothing)."""
    if isinstance(node, dict):
        kind = node.get("type")
        name = None
        if kind == "TABLE_FUNCTION":
            name = str((node.get("function") or {}).get("function_name", "")).lower()
        elif kind == "BASE_TABLE":
            name = str(node.get("table_name", "")).lower()
        elif kind == "FUNCTION":
            name = str(node.get("function_name", "")).lower()
            if name == "current_setting":
                value = _first_string_argument(node)
                path_like = isinstance(value, str) and "size" not in value.lower() and any(
                    w in value.lower() for w in _PATH_SETTING_WORDS)  # max_temp_directory_size is a size
                if not isinstance(value, str) or path_like:
                    return f"current_setting({value!r})" if isinstance(value, str) else "current_setting() of a computed name"
                name = None
        if name in HOST_INFO:
            return name
        for v in node.values():
            found = _host_information(v)
            if found:
                return found
    elif isinstance(node, list):
        for v in node:
            found = _host_information(v)
            if found:
                return found
    return None


def _strip_locations(node):
    if isinstance(node, dict):
        return {k: _strip_locations(v) for k, v in node.items() if not k.startswith("query_location")}
    if isinstance(node, list):
        return [_strip_locations(v) for v in node]
    return node


def _table_functions(node, out: list[str]) -> list[str]:
    if isinstance(node, dict):
        if node.get("type") == "TABLE_FUNCTION":
            out.append((node.get("function") or {}).get("function_name", "?"))
        for v in node.values():
            _table_functions(v, out)
    elif isinstance(node, list):
        for v in node:
            _table_functions(v, out)
    return out


_SHAPE: dict[str, dict] = {}


def _shape(view: str) -> dict:
    """The wrapping query's parse tree minus its WHERE clause: a predicate must leave it as it is."""
    if view not in _SHAPE:
        node = _serialize(f"SELECT 1 FROM {view} WHERE (\ntrue\n)")["statements"][0]
        node["node"].pop("where_clause")
        _SHAPE[view] = _strip_locations(node)
    return _SHAPE[view]


def predicate_problem(pred: str, view: str) -> str | None:
    """Why `pred` is not one boolean expression over `view` (None when it is)."""
    if not isinstance(pred, str) or not pred.strip():
        return "empty predicate (use 'true' to take everything)"
    try:
        tokens = duckdb.tokenize(pred)
    except duckdb.Error as e:
        return f"does not parse: {str(e).strip().splitlines()[0]}"
    depth = 0
    for pos, kind in tokens:
        if not str(kind).endswith("operator"):
            continue
        ch = pred[pos]
        if ch == ";":
            return "a predicate is one SQL expression; ';' ends a statement"
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return f"closes a parenthesis it did not open (at character {pos + 1}); a predicate is one expression"
    parsed = _serialize(f"SELECT 1 FROM {view} WHERE (\n{pred}\n)")
    if parsed.get("error"):
        msg = str(parsed.get("error_message") or "syntax error").strip().splitlines()
        return f"does not parse: {msg[0] if msg else 'syntax error'}"
    stmts = parsed.get("statements") or []
    if len(stmts) != 1:
        return "a predicate is one SQL expression, not several statements"
    node = stmts[0]["node"]
    if node.get("type") != "SELECT_NODE":
        return f"it turns the query into a {node.get('setop_type') or node.get('type')} (set operations are not allowed)"
    where = node.get("where_clause")
    rest = _strip_locations({**stmts[0], "node": {k: v for k, v in node.items() if k != "where_clause"}})
    if where is None or rest != _shape(view):
        return f"it changes the query around it (a predicate is one boolean expression over `{view}`)"
    funcs = _table_functions(where, [])
    if funcs:
        return (f"it reads {', '.join(sorted(set(funcs)))}(): a predicate may read only the store's views "
                "(problems, samples, verdicts, features, traces)")
    tables, ctes = _base_tables(where)
    other = sorted({t for t in tables if t not in PREDICATE_VIEWS and t not in ctes})
    if other:  # a file name ('x.json' is a replacement scan), a system view (duckdb_databases), a raw table
        return (f"it reads {', '.join(repr(t if len(t) <= 60 else '...' + t[-57:]) for t in other[:3])}: a predicate may read only the store's views "
                f"({', '.join(PREDICATE_VIEWS)}) and names it defines with WITH")
    return None


def _base_tables(node, tables: set | None = None, ctes: set | None = None) -> tuple[set[str], set[str]]:
    """Tables a parse tree reads by name (qualified ones as `schema.table`), and the CTE names it defines."""
    tables = set() if tables is None else tables
    ctes = set() if ctes is None else ctes
    if isinstance(node, dict):
        if node.get("type") == "BASE_TABLE":
            parts = [node.get("catalog_name"), node.get("schema_name"), node.get("table_name")]
            tables.add(".".join(str(p) for p in parts if p).lower())
        ctes.update(str(m.get("key", "")).lower() for m in (node.get("cte_map") or {}).get("map", []))
        for v in node.values():
            _base_tables(v, tables, ctes)
    elif isinstance(node, list):
        for v in node:
            _base_tables(v, tables, ctes)
    return tables, ctes


def check_predicate(pred: str, view: str, what: str = "predicate") -> str:
    """`pred` wrapped in parentheses on their own lines, or ConfigError naming `what` and the reason."""
    problem = predicate_problem(pred, view)
    if problem:
        raise ConfigError(f"{what}: {problem}: {_short(str(pred))}",
                          hint=f"a predicate is one boolean SQL expression over the `{view}` view, e.g. \"split = 'train'\"")
    return f"(\n{pred}\n)"


def _from_tables(node) -> set[str]:
    """Base tables a FROM clause reads directly (through joins, not inside subqueries)."""
    if not isinstance(node, dict):
        return set()
    if node.get("type") == "BASE_TABLE":
        return {str(node.get("table_name", "")).lower()}
    if node.get("type") == "JOIN":
        return _from_tables(node.get("left")) | _from_tables(node.get("right"))
    return set()


def _has_wildcard(node) -> bool:
    """A `*`, COLUMNS(...) or positional reference in this query level (not in nested queries)."""
    if isinstance(node, dict):
        if (node.get("class") or node.get("type")) in ("STAR", "POSITIONAL_REFERENCE"):
            return True
        return any(_has_wildcard(v) for k, v in node.items() if not (isinstance(v, dict) and v.get("type") == "SELECT_NODE"))
    if isinstance(node, list):
        return any(_has_wildcard(v) for v in node if not (isinstance(v, dict) and v.get("type") == "SELECT_NODE"))
    return False


def _walk(node, found: dict) -> None:
    if isinstance(node, dict):
        kind = node.get("class") or node.get("type")
        # A wildcard expands to whatever columns `traces` has, so it needs the whole view; over a CTE or a
        # subquery it expands to their named columns, which those name themselves.
        if kind == "SELECT_NODE" and "traces" in _from_tables(node.get("from_table")) and _has_wildcard(node):
            found["all"] = True
        if node.get("ref_type") == "NATURAL":
            found["all"] = True
        if kind == "COLUMN_REF":
            parts = [str(p).lower() for p in node.get("column_names") or []]
            found["names"].update(parts)
            if len(parts) == 1:
                found["single"].add(parts[0])
        if node.get("type") in ("BASE_TABLE", "SUBQUERY", "TABLE_FUNCTION") or "table_name" in node:
            for key in ("table_name", "alias"):
                if node.get(key):
                    found["tables"].add(str(node[key]).lower())
        found["names"].update(str(c).lower() for c in node.get("using_columns") or [])
        for v in node.values():
            _walk(v, found)
    elif isinstance(node, list):
        for v in node:
            _walk(v, found)


def referenced_names(sql: str) -> set[str] | None:
    """Every column and table name `sql` mentions (lower case), or None when it may read columns it does not name."""
    try:
        parsed = _serialize(sql)
    except duckdb.Error:
        return None
    stmts = parsed.get("statements") or []
    if parsed.get("error") or len(stmts) != 1:
        return None
    found: dict = {"all": False, "names": set(), "single": set(), "tables": set()}
    _walk(stmts[0], found)  # a CTE is named where it is read, as a table
    if found["all"] or found["single"] & found["tables"]:
        return None
    return found["names"] | found["tables"]
