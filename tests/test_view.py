"""`curate view` through Starlette's TestClient and the real command line: every page, filters against the
store's own SQL, the predicate box's checker, escaping of hostile trace text, no write route, the eval
explorer's dip, mixtures, and the static `--export` copy. The Chromium checks are in test_view_browser.py.

Run: python -m pytest -q tests/test_view.py
"""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

pytest.importorskip("starlette")
pytest.importorskip("jinja2")
pytest.importorskip("httpx")

import view_store  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from curate.view.app import create_app  # noqa: E402
from tests.helpers import run_cli  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return view_store.build(tmp_path_factory.mktemp("view"))


@pytest.fixture(scope="module")
def client(built):
    with TestClient(create_app(built["store"], [built["mixtures"]])) as c:
        yield c


class Page(HTMLParser):
    """Links, script elements and text of a page; asserts that tags nest."""

    VOID = {"meta", "img", "br", "hr", "link", "input", "source", "area", "base", "col", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.hrefs: list[str] = []
        self.scripts: list[dict] = []
        self.imgs = 0
        self.text: list[str] = []
        self.rows: list[str] = []  # status of each trace-list row
        self._in_status = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
        if tag == "img":
            self.imgs += 1
        for k in ("href", "src"):
            if a.get(k):
                self.hrefs.append(a[k])
        self._in_status = tag == "span" and "status" in (a.get("class") or "").split()
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._in_status and "tr" in self.stack and "tbody" in self.stack:
            self.rows.append(data)
        self._in_status = False


def parse(html: str) -> Page:
    p = Page()
    p.feed(html)
    p.close()
    assert p.stack == [], p.stack
    return p


def list_ids(html: str) -> list[str]:
    return re.findall(r'<td class="id"><a href="/trace/([0-9a-f]{32})', html)


def count(store, where: str) -> int:
    return store.query(f"SELECT count(*) FROM traces WHERE {where}").column(0)[0].as_py()


# ------------------------------------------------------------------ pages
def test_every_page_answers_with_a_content_security_policy(client, built):
    tid, pid = built["hostile_id"], built["hostile_problem"]
    for url in ["/", "/traces", f"/trace/{tid}", f"/problem/{pid}", "/evals", "/evals/grid?run=run-a&benchmark=toy",
                "/mixtures", "/mixture/half-incorrect"]:
        r = client.get(url)
        assert r.status_code == 200, url
        assert r.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["content-security-policy"] and "'unsafe-inline'" not in r.headers["content-security-policy"]
        page = parse(r.text)
        assert all(s.get("src", "").startswith("/static/") or s.get("type") == "application/json" for s in page.scripts), url
        assert not any(h.startswith(("http:", "https:", "//")) for h in page.hrefs), url  # no CDN, nothing external
    assert client.get("/static/htmx.min.js").status_code == 200
    assert client.get("/trace/" + "0" * 32).status_code == 404
    assert client.get("/problem/nope").status_code == 404
    assert client.get("/mixture/nope").status_code == 404


def test_there_is_no_write_route(client, built):
    for url in ["/", "/traces", f"/trace/{built['hostile_id']}", "/evals/grid", "/mixtures", "/static/view.js"]:
        for method in ("post", "put", "patch", "delete"):
            assert getattr(client, method)(url).status_code == 405, (method, url)


def test_overview_counts_link_into_the_list(client, built):
    html = client.get("/").text
    total = count(built["store"], "true")
    assert f"{total:,} traces" in html
    assert 'href="/traces?source=countdown&amp;status=correct"' in html
    r = client.get("/traces?source=countdown&status=correct")
    n = count(built["store"], "source = 'countdown' AND status = 'correct'")
    assert f"<strong>{n}</strong> traces" in r.text


# ------------------------------------------------------------------ list
@pytest.mark.parametrize("query, where", [
    ("status=correct", "status = 'correct'"),
    ("status=incorrect&model=Qwen/Qwen3-32B", "status = 'incorrect' AND model = 'Qwen/Qwen3-32B'"),
    ("split=eval", "split = 'eval'"),
    ("verifier=math&source=toy", "verifier = 'math' AND source = 'toy'"),
    ("truncated=yes", "truncated"),
    ("min_thinking_tokens=200&max_thinking_tokens=400", "thinking_tokens BETWEEN 200 AND 400"),
    ("min_backtrack_count=20", "backtrack_count >= 20"),
    ("min_repetition_score=0.5", "repetition_score >= 0.5"),
    ("q=Toy+eval+question+3", "prompt ILIKE '%toy eval question 3%'"),
    ("where=backtrack_count+%3E+10+AND+NOT+think_closed", "backtrack_count > 10 AND NOT think_closed"),
    ("status=unlabeled", "status IS NULL"),
])
def test_filters_match_the_stores_own_sql(client, built, query, where):
    html = client.get(f"/traces?{query}").text
    n = count(built["store"], where)
    assert f"<strong>{n:,}</strong> traces" in html, (query, n)
    page = list_ids(html)
    st = built["store"]
    assert len(page) == min(n, 50) and set(page) <= set(st.query(f"SELECT id FROM traces WHERE {where}").column(0).to_pylist())
    assert newest_first(st, page)


def newest_first(store, ids: list[str]) -> bool:
    if not ids:
        return True
    rows = store.query("SELECT id, created_at FROM traces WHERE id IN (SELECT unnest($ids))", {"ids": ids}).to_pylist()
    when = {r["id"]: r["created_at"] for r in rows}
    times = [when[i] for i in ids]
    return times == sorted(times, reverse=True)


def test_sort_by_any_column_and_page(client, built):
    st = built["store"]
    for col in ("thinking_tokens", "model", "repetition_score", "problem_id", "source", "status"):
        for desc, way in (("0", "ASC"), ("1", "DESC")):
            html = client.get(f"/traces?sort={col}&desc={desc}&page=2").text
            ids = list_ids(html)
            want = st.query(f"SELECT {col} FROM traces ORDER BY {col} {way} NULLS LAST LIMIT 50 OFFSET 50").column(0).to_pylist()
            got = st.query(f"SELECT id, {col} FROM traces WHERE id IN (SELECT unnest($ids))", {"ids": ids}).to_pylist()
            value = {r["id"]: r[col] for r in got}
            assert [value[i] for i in ids] == want, (col, desc)
    pages = [list_ids(client.get(f"/traces?sort=model&page={k}").text) for k in (1, 2, 3)]
    assert len(set().union(*pages)) == 150  # ties broken the same way on every page: no row twice
    assert "page 2 of" in html and 'rel="prev-page"' in html


def test_free_text_finds_extracted_answers_and_trace_text_only_when_asked(client, built):
    assert list_ids(client.get("/traces?q=__pwned").text) == [built["hostile_id"]]  # prompt and extracted answer
    assert list_ids(client.get("/traces?q=add+3+and+3+at+step+20").text) == []
    assert len(list_ids(client.get("/traces?q=add+3+and+3+at+step+20&in_text=1").text)) == 1


@pytest.mark.parametrize("pred, says", [
    ("1=1) OR (1", "closes a parenthesis"),
    ("true; SELECT 1", "';'"),
    ("id IN (SELECT * FROM read_text('/etc/passwd'))", "read_text"),
    ("true UNION SELECT 1", None),
])
def test_the_predicate_box_goes_through_the_where_checker(client, pred, says):
    r = client.get("/traces", params={"where": pred})
    assert r.status_code == 200
    err = re.search(r'<p class="error">(.*?)</p>', r.text)
    assert err, pred
    if says:
        assert says in err.group(1).replace("&#39;", "'")
    assert "root:" not in r.text


def test_htmx_requests_get_the_list_fragment_only(client):
    r = client.get("/traces?status=correct", headers={"HX-Request": "true"})
    assert r.text.lstrip().startswith('<div id="list">') and "<form" not in r.text and "<html" not in r.text
    bad = client.get("/traces?where=1%3D1%29", headers={"HX-Request": "true"})
    assert bad.status_code == 200 and 'class="error"' in bad.text  # htmx swaps 2xx answers only


def test_bad_numbers_are_refused_in_one_line(client):
    r = client.get("/traces?min_thinking_tokens=lots")
    assert r.status_code == 400 and "min_thinking_tokens must be a number" in r.text


# ------------------------------------------------------------------ escaping
def test_hostile_trace_renders_as_text(client, built):
    html = client.get(f"/trace/{built['hostile_id']}").text
    page = parse(html)
    assert "<script>window.__pwned" not in html and "<img src=x" not in html and "<b>bold" not in html
    assert "&lt;script&gt;window.__pwned" in html
    assert page.imgs == 0
    assert all(s.get("src") or s.get("type") == "application/json" for s in page.scripts)
    # the long thinking goes in a JSON island: its `</script>` cannot close the island
    island = re.search(r'<script type="application/json" id="thinking-text">(.*?)</script>', html, re.S)
    assert island and "<" not in island.group(1) and "\\u003c/script\\u003e" in island.group(1)
    text = "".join(page.text)
    assert '<script>window.__pwned = 1; console.error("pwned")</script>' in text  # shown, as text
    for url in (f"/problem/{built['hostile_problem']}", "/traces?q=pwned"):
        other = client.get(url).text
        assert "<script>window" not in other and "<img src=x" not in other, url
        parse(other)


# ------------------------------------------------------------------ trace, problem
def test_trace_page_shows_verdict_features_params_and_neighbours(client, built):
    ids = list_ids(client.get("/traces?status=correct").text)[:3]
    html = client.get(f"/trace/{ids[1]}?status=correct&pos=1").text
    assert f'<link rel="prev" href="/trace/{ids[0]}?status=correct&amp;pos=0">' in html
    assert f'<link rel="next" href="/trace/{ids[2]}?status=correct&amp;pos=2">' in html
    assert 'href="/traces?status=correct"' in html
    for label in ("thinking", "answer", "verdicts", "features", "generation", "parameters", "extracted answer"):
        assert label in html
    assert '<details id="thinking">' in html  # collapsed
    first = client.get(f"/trace/{ids[0]}?status=correct&pos=0").text
    assert 'rel="prev"' not in first
    later = list_ids(client.get("/traces?page=2").text)[10]
    assert 'href="/traces?page=2" class="up"' in client.get(f"/trace/{later}?pos=60").text  # back to its page


def test_trace_page_links_the_mixtures_that_used_it(client, built):
    st = built["store"]
    import pyarrow.parquet as pq

    used = pq.read_table(built["mixtures"] / "half-incorrect" / "data" / "train-00000-of-00001.parquet").column("sample_id")[0].as_py()
    assert 'href="/mixture/half-incorrect"' in client.get(f"/trace/{used}").text
    unused = st.query("SELECT id FROM traces WHERE source = 'toy' LIMIT 1").column(0)[0].as_py()
    assert "in no known mixture" in client.get(f"/trace/{unused}").text


def test_problem_page_puts_correct_next_to_incorrect_with_an_answer_diff(client, built):
    st = built["store"]
    pid = st.query("""SELECT problem_id FROM traces WHERE source = 'openr1-math' GROUP BY problem_id
        HAVING count(*) FILTER (status = 'correct') > 0 AND count(*) FILTER (status = 'incorrect') > 0
        ORDER BY problem_id LIMIT 1""").column(0)[0].as_py()
    html = client.get(f"/problem/{pid}").text
    statuses = re.findall(r'<article class="trace-col s-border-(\w+)"', html)
    n = st.query(f"SELECT count(*) FROM traces WHERE problem_id = '{pid}'").column(0)[0].as_py()
    assert len(statuses) == n and statuses[0] == "correct" and "incorrect" in statuses
    assert "<del>" in html and "<ins>" in html  # the incorrect trace's final answer differs
    assert "tokens" in html and "characters" in html


# ------------------------------------------------------------------ evals
def test_eval_explorer_shows_the_dip_and_recovery_per_problem(client, built):
    html = client.get("/evals/grid?run=run-a&benchmark=toy").text
    heads = re.findall(r"<th>(base|step \d+|final)", html)
    assert heads == ["base", "step 20", "step 40", "final"]
    rates = re.findall(r'<td class="n">([\d.]+)%</td>', html)
    assert rates == ["66.7", "16.7", "66.7", "66.7"]
    assert len(re.findall(r'class="cell s-', html)) == 24
    dip = client.get("/evals/grid?run=run-a&benchmark=toy&only=dip").text
    assert "6 problems" not in dip and "3 problems" in dip
    assert set(re.findall(r"Toy eval question (\d)", dip)) == {"0", "1", "2"}
    changed = client.get("/evals/grid?run=run-a&benchmark=toy&only=changed").text
    assert "3 problems" in changed
    assert 'href="/evals/grid?run=run-a&amp;benchmark=toy&amp;suite=toy"' in client.get("/evals").text
    assert client.get("/evals/grid").status_code == 400


OLD, NEW = "run-0ld11111", "run-n3w22222"  # two training runs both named `cond`; NEW was evaluated last


@pytest.fixture(scope="module")
def same_name(tmp_path_factory):
    """A store where two training runs share the name `cond` on benchmark `bench`: OLD at steps 10 and 20, NEW at
    steps 10 and 30, each answering `<run id>-<problem>`; plus samples planned at step 40 that no scored row names
    a run id for yet. Real store, real plan and eval rows."""
    import time

    from curate.records import Problem, Sample, Verdict
    from curate.store import TraceStore
    from curate.store.evals import plan_samples, write_evals

    st = TraceStore(tmp_path_factory.mktemp("same-name") / "store")
    problems = [Problem(source="bench", domain="math", prompt=f"Same-name question {i}", reference=str(i), split="eval")
                for i in range(3)]
    st.add_problems(problems)
    for run_id, steps in ((OLD, (10, 20)), (NEW, (10, 30)), ("", (40,))):
        samples, planned, evals = [], [], []
        for step in steps:
            ckpt = f"runs/{run_id or 'pending'}/step-{step}"
            key = {"run": "cond", "checkpoint": ckpt, "step": step, "suite": "s", "benchmark": "bench", "settings_hash": "h"}
            for i, p in enumerate(problems):
                s = Sample(problem_id=p.id, text=f"\\boxed{{{run_id or 'pending'}-{i}}}", backend="hf", model=ckpt,
                           sample_index=0, seed=0, finish_reason="stop", completion_tokens=10)
                samples.append(s)
                planned.append({"sample_id": s.id, "problem_id": p.id, "sample_index": 0, **key})
            if run_id:
                evals.append({**key, "metric": "avg@1", "value": 50.0, "provenance": "curate", "run_id": run_id,
                              "complete": True})
        st.add_samples(samples)
        st.add_verdicts([Verdict(status="correct", verifier="math", version="1.0", score=1.0,
                                 answer=s.text[len("\\boxed{"):-1], sample_id=s.id) for s in samples])
        plan_samples(st, planned)
        if evals:
            write_evals(st, evals)
        time.sleep(0.01)  # NEW is scored after OLD
    with TestClient(create_app(st)) as c:
        yield {"store": st, "client": c}


def grid_answers(html: str) -> set[str]:
    return set(re.findall(r'class="cell s-\w+"[^>]*>([^<]+)</(?:a|span)>', html))


def test_each_run_sharing_a_name_has_its_own_grid(same_name):
    c = same_name["client"]
    for wanted, run_id, heads in ((OLD, OLD, ["step 10", "final"]), ("run-n3w", NEW, ["step 10", "final"]),
                                  ("none", "pending", ["step 40"])):
        r = c.get(f"/evals/grid?run=cond&benchmark=bench&run_id={wanted}")
        assert r.status_code == 200, r.text
        parse(r.text)
        assert re.findall(r"<th>(step \d+|final)", r.text) == heads
        assert grid_answers(r.text) == {f"{run_id}-{i}" for i in range(3)}, wanted  # nothing of the other run
        assert len(re.findall(r'class="cell s-', r.text)) == 3 * len(heads)
    old = c.get(f"/evals/grid?run=cond&benchmark=bench&run_id={OLD}").text
    assert "(20)" in old and "(30)" not in old  # OLD's final checkpoint is step 20
    # its filters and the other runs keep to a run each
    assert f'href="/evals/grid?run=cond&amp;run_id={OLD}&amp;benchmark=bench&amp;only=changed"' in old
    assert f'href="/evals/grid?run=cond&amp;run_id={NEW}&amp;benchmark=bench"' in old
    assert c.get(f"/evals/grid?run=cond&benchmark=bench&run_id={NEW}&only=changed").status_code == 200


def test_a_name_for_several_runs_lists_them_newest_first_instead_of_mixing(same_name):
    c = same_name["client"]
    r = c.get("/evals/grid?run=cond&benchmark=bench")
    assert r.status_code == 200
    assert "stands for 2 training runs" in r.text and not grid_answers(r.text)
    parse(r.text)  # tags nest
    ids = re.findall(r'href="/evals/grid\?run=cond&amp;run_id=([^&"]+)&amp;benchmark=bench"', r.text)
    assert ids == ["none", NEW, OLD]  # newest first: the pending samples were planned after NEW was scored
    index = c.get("/evals").text
    assert {f"cond [run {i[:8]}]" for i in (OLD, NEW)} | {"cond [run none]"} <= set(re.findall(r">(cond \[run [^\]]+\])<", index))
    for i in (OLD, NEW, "none"):
        assert f'href="/evals/grid?run=cond&amp;run_id={i}&amp;benchmark=bench&amp;suite=s"' in index
        assert f'href="/evals/grid?run=cond&amp;run_id={i}&amp;benchmark=bench&amp;suite=s"' in c.get("/").text


@pytest.mark.parametrize("run_id, says", [
    ("zzz", "run id 'zzz' matches none"), ("run-", "run id 'run-' matches several"),
    ("<script>x</script>", "matches none"), ("'; DROP TABLE eval_rows; --", "matches none"),
    ("x" * 201, "run_id is longer than 200 characters"),
])
def test_a_run_id_that_picks_no_single_run_is_refused_in_one_line(same_name, run_id, says):
    from urllib.parse import quote

    r = same_name["client"].get(f"/evals/grid?run=cond&benchmark=bench&run_id={quote(run_id)}")
    assert r.status_code == 400 and says in r.text.replace("&#39;", "'"), r.text
    assert "<script>x" not in r.text
    assert same_name["store"].query("SELECT count(*) FROM evals").column(0)[0].as_py() == 4


def test_the_export_holds_one_grid_per_run(same_name, tmp_path):
    from curate.view.export import export

    export(same_name["store"], tmp_path / "copy")
    grids = [f.read_text(encoding="utf-8") for f in (tmp_path / "copy").glob("grid-*.html")]
    assert len(grids) == 9  # three runs, each with its two filters (empty here: every answer is right)
    shown = sorted(sorted(grid_answers(g)) for g in grids if grid_answers(g))
    assert shown == [[f"{r}-{i}" for i in range(3)] for r in sorted(("pending", OLD, NEW))]
    index = (tmp_path / "copy" / "evals.html").read_text(encoding="utf-8")
    assert len(set(re.findall(r'href="(grid-[0-9a-f]+\.html)"', index))) == 3


# ------------------------------------------------------------------ mixtures
def test_mixture_page_rows_provenance_and_card(client, built):
    html = client.get("/mixture/half-incorrect").text
    assert "20 rows" in html and "composition" in html and "decontamination" in html and "dataset card" in html
    assert len(re.findall(r'<td class="id"><a href="/trace/', html)) == 20
    assert "incorrect" in html and "recipe half-incorrect" in html
    assert "half-incorrect" in client.get("/mixtures").text


def test_mixtures_a_study_recorded_are_found_without_the_flag(built, tmp_path):
    from curate.store.lineage import record_run

    manifest = built["mixtures"] / "half-incorrect" / "manifest.json"
    record_run(built["store"], {"run": "recorded-run", "study": "s", "manifest": str(manifest)})
    try:
        with TestClient(create_app(built["store"])) as c:
            assert 'href="/mixture/half-incorrect"' in c.get("/mixtures").text
    finally:
        from curate.store.lineage import retire_run

        retire_run(built["store"], "recorded-run", "recorded-run-retired")


# ------------------------------------------------------------------ command line and export
def test_export_is_self_contained_and_escaped(built, tmp_path):
    out = tmp_path / "copy"
    r = run_cli("view", "--store", str(built["store"].path), "--mixtures", str(built["mixtures"]), "--export", str(out),
                "--limit", "30", "--json")
    assert r.returncode == 0, r.stderr
    assert (out / "index.html").is_file() and (out / "static" / "htmx.min.js").is_file()
    pages = sorted(out.glob("*.html"))
    assert len(list(out.glob("trace-*.html"))) >= 30 and list(out.glob("grid-*.html")) and list(out.glob("mixture-*.html"))
    for f in pages:
        html = f.read_text(encoding="utf-8")
        page = parse(html)
        for h in page.hrefs:
            if h.startswith("data:"):
                continue
            assert not h.startswith(("/", "http:", "https:")), (f.name, h)
            assert (out / h.split("?")[0]).is_file(), (f.name, h)
        assert "<form" not in html and "<script>window" not in html
    hostile = out / f"trace-{built['hostile_id']}.html"
    if hostile.is_file():
        assert "&lt;script&gt;window.__pwned" in hostile.read_text(encoding="utf-8")
    again = run_cli("view", "--store", str(built["store"].path), "--export", str(out), "--where", "source = 'toy'", "--limit", "5")
    assert again.returncode == 0, again.stderr  # an earlier export may be overwritten
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    r = run_cli("view", "--store", str(built["store"].path), "--export", str(busy))
    assert r.returncode != 0 and "refusing" in r.stderr and (busy / "notes.txt").read_text() == "mine"


def test_cli_usage_errors(built, tmp_path):
    r = run_cli("view", "--store", str(tmp_path / "none"))
    assert r.returncode != 0 and "no store at" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("view", "--store", str(built["store"].path), "--where", "true")
    assert r.returncode != 0 and "--where chooses what --export copies" in r.stderr
    r = run_cli("view", "--store", str(built["store"].path), "--mixtures", str(tmp_path))
    assert r.returncode != 0 and "no manifest.json" in r.stderr


def test_demo_prints_the_view_command(tmp_path):
    """`curate demo` ends with the command that browses its store, spelled the way curate was started."""
    from tests.helpers import run_cli

    store, out = tmp_path / "s", tmp_path / "o"
    r = run_cli("demo", "--store", str(store), "--out", str(out), "--problems", "12", "--samples", "2")
    assert r.returncode == 0, r.stderr
    assert f"python -m curate view --store {store} --mixtures {out / 'mixtures'}" in r.stdout, r.stdout[-800:]
