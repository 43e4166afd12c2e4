"""`curate view`: browse traces, verdicts, mixtures and eval answers in a web page (read-only), or `--export` a
static copy. Needs the `view` extra (`pip install 'curate[view]'`); docs/view.md describes the pages."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curate.cli.common import DEFAULT_STORE, JsonOpt, StoreOpt, emit_json, open_store, say, warn, warn_store
from curate.errors import InputError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def register(app: typer.Typer) -> None:
    app.command()(view)


def _require_extra() -> None:
    import importlib.util

    missing = [m for m in ("starlette", "jinja2", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise InputError(f"`curate view` needs {', '.join(missing)}", hint="pip install 'curate[view]'")


def view(
    store: StoreOpt = DEFAULT_STORE,
    host: Annotated[str, typer.Option(help="Address to bind. Anything but 127.0.0.1 lets other machines read the store.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8300,
    mixtures: Annotated[Optional[list[Path]], typer.Option(
        "--mixtures", help="A mixture folder (`curate mix --out`), a folder of them, or a study folder (repeatable). "
                           "Mixtures a study recorded in the store are found without it.")] = None,
    export: Annotated[Optional[Path], typer.Option(help="Write a static, self-contained copy into this folder instead of serving.")] = None,
    where: Annotated[str, typer.Option(help="With --export: which traces to copy (a predicate over `traces`, as --where).")] = "",
    limit: Annotated[int, typer.Option(help="With --export: at most this many traces (newest first).")] = 200,
    json_: JsonOpt = False,
) -> None:
    """Browse the store in a web page: overview, trace list with filters, traces, problems, eval answers per
    checkpoint, mixtures. Read-only; binds 127.0.0.1 unless --host says otherwise."""
    _require_extra()
    st = open_store(store)
    if not st.exists:
        raise InputError(f"no store at {store}", hint="create one with `curate demo`, `curate import` or `curate tasks add`")
    if limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    if export is not None:
        from curate.view.export import export as write_export

        summary = write_export(st, export, mixtures or [], where=where, limit=limit)
        warn_store(st)
        if not emit_json(summary, json_):
            say(f"wrote {summary['pages']} pages ({summary['traces']} traces, {summary['problems']} problems, "
                f"{summary['evaluations']} evaluations, {summary['mixtures']} mixtures) to {summary['out']}")
            say(f"open {summary['index']} in a browser (no server needed)")
        return
    if where:
        raise InputError("--where chooses what --export copies; in the browser, type the predicate in the list's box")
    import uvicorn

    from curate.view.app import create_app

    app = create_app(st, mixtures or [])
    if host not in LOCAL_HOSTS:
        warn(f"binding {host}: anyone who can reach this address can read the whole store (there is no login)")
    shown = f"[{host}]" if ":" in host else host
    say(f"curate view: http://{shown}:{port}/  (store {store}; Ctrl-C stops it)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
