"""The `curate view` web app: a Starlette application with GET routes only, over the store's locked-down reads.

Routes (every one GET/HEAD; there is no write route):
    /                        overview: counts by source, model, split, status; verdict rates linking into the list
    /traces                  the trace list (filters, free text, predicate, sort, page: all in the URL); with an
                             `HX-Request` header only the list fragment comes back (htmx swaps it in)
    /trace/{id}              one trace (`?pos=N` plus the list's parameters gives previous/next in that list)
    /problem/{id}            a problem's traces side by side
    /evals, /evals/grid      the eval explorer (?run=&benchmark=[&run_id=ID|prefix|none][&suite=][&only=changed|dip]
                             [&page=]); a name that stands for several training runs lists them without run_id
    /mixtures, /mixture/{n}  built mixtures (see curate/view/mixtures.py for how they are found)
    /static/...              the vendored htmx, view.js and view.css (no CDN: works offline)
Every page is rendered by Jinja2 with autoescaping on, and carries a Content-Security-Policy that allows
scripts from /static only, so text from a trace is shown as text and nothing in it can run.
Run with `curate view`; tested by tests/test_view.py (TestClient) and tests/test_view_browser.py (Chromium).
"""
from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from curate.errors import CurateError, StoreLocked
from curate.view import mixtures as mx
from curate.view import pages

HERE = Path(__file__).parent
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store"}


def environment() -> Environment:
    """The Jinja2 environment every page (served or exported) is rendered with: autoescaping always on."""
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False}  # tojson still escapes <, >, & and '
    return env


def create_app(store, mixture_folders: list[Path] | None = None) -> Starlette:
    """The viewer for `store` (a TraceStore). Mixtures: the --mixtures folders plus those studies recorded."""
    from curate.store import view_queries as vq

    env = environment()
    links = pages.Links()
    mixtures = mx.Mixtures(mx.find(mixture_folders or [], vq.recorded_manifests(store)))
    base = {"links": links, "store_name": str(store.path), "nav": None}
    # Reads run on this pool's threads, not on the server's daemon threads: DuckDB state left in a daemon
    # thread aborts the interpreter at exit. The pool's threads are joined at exit instead.
    workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="curate-view")

    def render(name: str, ctx: dict, status: int = 200) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render({**base, **ctx}), status_code=status, headers=HEADERS)

    def refused(e: CurateError, status: int = 400) -> HTMLResponse:
        return render("error.html", {"title": "refused", "heading": "This request was refused",
                                     "message": e.message, "hint": e.hint}, status)

    def missing(what: str) -> HTMLResponse:
        return render("error.html", {"title": "not found", "heading": "Not found", "message": what, "hint": None}, 404)

    def guarded(fn):
        def safe(request: Request) -> Response:
            try:
                return fn(request)
            except StoreLocked as e:  # a writer held the store longer than CURATE_LOCK_TIMEOUT: try again later
                return render("error.html", {"title": "busy", "heading": "The store is busy", "message": e.message,
                                             "hint": e.hint}, 503)
            except CurateError as e:  # a bad predicate or number: one line on the page, as on the command line
                return refused(e)

        async def endpoint(request: Request) -> Response:
            return await asyncio.get_running_loop().run_in_executor(workers, safe, request)
        return endpoint

    def overview(request: Request) -> Response:
        return render("overview.html", pages.overview(store, links, mixtures))

    def traces(request: Request) -> Response:
        p = dict(request.query_params)
        fragment = request.headers.get("HX-Request") == "true"
        try:
            ctx = pages.trace_list(store, links, p, choices=not fragment)
        except CurateError as e:
            if not fragment:
                ctx = {**pages.trace_list(store, links, {k: v for k, v in p.items() if k != "where"}), "error": e.message}
            else:
                return render("error_fragment.html", {"error": e.message, "hint": e.hint})  # htmx swaps 2xx only
        return render("list.html" if fragment else "traces.html", ctx)

    def trace(request: Request) -> Response:
        ctx = pages.trace(store, links, mixtures, request.path_params["sample_id"], dict(request.query_params))
        return render("trace.html", ctx) if ctx else missing(f"no trace {request.path_params['sample_id']} in this store")

    def problem(request: Request) -> Response:
        ctx = pages.problem(store, links, request.path_params["problem_id"])
        return render("problem.html", ctx) if ctx else missing(f"no problem {request.path_params['problem_id']} in this store")

    def evals(request: Request) -> Response:
        return render("evals.html", pages.evals(store, links))

    def grid(request: Request) -> Response:
        return render("grid.html", pages.grid(store, links, dict(request.query_params)))

    def mixture_list(request: Request) -> Response:
        return render("mixtures.html", pages.mixture_list(links, mixtures))

    def mixture(request: Request) -> Response:
        ctx = pages.mixture(links, mixtures, request.path_params["name"], dict(request.query_params))
        return render("mixture.html", ctx) if ctx else missing(f"no mixture named {request.path_params['name']}")

    routes = [
        Route("/", guarded(overview), methods=["GET"]),
        Route("/traces", guarded(traces), methods=["GET"]),
        Route("/trace/{sample_id}", guarded(trace), methods=["GET"]),
        Route("/problem/{problem_id}", guarded(problem), methods=["GET"]),
        Route("/evals", guarded(evals), methods=["GET"]),
        Route("/evals/grid", guarded(grid), methods=["GET"]),
        Route("/mixtures", guarded(mixture_list), methods=["GET"]),
        Route("/mixture/{name}", guarded(mixture), methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        workers.shutdown(wait=True)  # the threads end (and close their DuckDB handles) while the interpreter runs

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.mixtures = mixtures
    return app
