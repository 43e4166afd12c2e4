"""Labeling commands: `verifiers list` and `verify`."""
from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from curate.cli.common import (DEFAULT_STORE, ExecutorOpt, JsonOpt, RayAddressOpt, StoreOpt, emit_json, open_store, out_console, parse_pairs, print_table, progress_bar, warn, warn_store)

OptionOpt = Annotated[Optional[list[str]], typer.Option(
    "--option", help="A verifier's option NAME.KEY=VALUE (repeatable), e.g. reward_model.model=/models/reward; "
                     "the value is read as --set reads it (4 an int, [1, 2] a list).")]


def register(app: typer.Typer) -> None:
    verifiers_app = typer.Typer(no_args_is_help=True, help="The verifier registry (built-ins and plugins).")
    verifiers_app.command("list")(verifiers_list)
    app.add_typer(verifiers_app, name="verifiers")
    app.command()(verify)


def verifiers_list(json_: JsonOpt = False) -> None:
    """Registered verifiers: name, version, what they handle, where they come from."""
    from curate.errors import InputError
    from verifiers.registry import RegistryError, describe_all

    try:
        rows = describe_all()
    except RegistryError as e:
        raise InputError(str(e)) from None
    if emit_json(rows, json_):
        return
    print_table([{"name": r["name"], "version": r["version"], "domains": ",".join(r["domains"]),
                  "sources": ",".join(r["sources"]), "origin": r["origin"], "description": r["description"]} for r in rows])


def verify(
    store: StoreOpt = DEFAULT_STORE,
    verifier: Annotated[Optional[str], typer.Option("--verifier", help="Verifier for every sample (default: per problem: "
                                                    "metadata.verifier, else source, else domain).")] = None,
    workers: Annotated[int, typer.Option(help="Verifier worker processes.")] = max(1, min(8, (os.cpu_count() or 2))),
    relabel: Annotated[bool, typer.Option("--relabel", help="Re-verify samples that already have a verdict from this version.")] = False,
    where: Annotated[Optional[str], typer.Option(help="SQL predicate over the `traces` view, e.g. \"source = 'math500'\".")] = None,
    batch_size: Annotated[int, typer.Option(help="Verdicts written per store transaction (a kill loses at most one batch).")] = 500,
    self_test_every: Annotated[int, typer.Option(help="Re-run each verifier's self-test after this many batches; a batch "
                                                      "is written only after it passes.")] = 1,
    max_error_share: Annotated[float, typer.Option(help="Exit non-zero when a verifier's share of `error` verdicts is "
                                                        "above this.")] = 0.01,
    code_max_timeout_s: Annotated[Optional[float], typer.Option(help="Cap on the code sandbox's seconds per test; "
                                                                "problem data may lower it, never raise it.")] = None,
    code_max_memory_mb: Annotated[Optional[int], typer.Option(help="Cap on the code sandbox's memory per test (MB); "
                                                              "problem data may lower it, never raise it.")] = None,
    option: OptionOpt = None,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Label stored samples that lack a verdict, in worker processes with a hard per-response timeout."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from curate.errors import CurateError, InputError
    from curate.label import code_caps
    from curate.scale import resolve_executor

    if not 0.0 <= max_error_share <= 1.0:
        raise InputError(f"--max-error-share must be between 0 and 1, got {max_error_share:g}")
    given = verifier_options(option)
    vopts = {name: dict(opts) for name, opts in given.items()}
    for name, caps in code_caps(code_max_timeout_s, code_max_memory_mb).items():  # the operator's caps win
        vopts[name] = {**vopts.get(name, {}), **caps}
    label_store = resolve_executor(executor, ray_address).label_store
    st = open_store(store)
    columns = [TextColumn("verifying {task.fields[name]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}/s"), TimeElapsedColumn()]
    # on a terminal the bar starts with the first verifier's work, so an error in the plan or the options is the
    # only output
    bar = progress_bar(*columns, json_=json_)
    task = bar.add_task("verify", total=None, name="", rate="-")
    started, done = time.monotonic(), 0

    def tick(n: int, name: str) -> None:
        nonlocal done
        done += n
        elapsed = time.monotonic() - started
        bar.update(task, advance=n, name=name, rate=f"{done / elapsed:.1f}" if elapsed > 0 else "-")

    def plan(n: int, name: str) -> None:  # each verifier adds its share to the total as it starts
        bar.start()
        bar.update(task, total=(bar.tasks[0].total or 0) + n, name=name)

    try:
        rep = label_store(st, verifier=verifier, workers=workers, relabel=relabel, where=where, batch_size=batch_size,
                          planned=plan, progress=tick, self_test_every=self_test_every, verifier_options=vopts)
    finally:
        bar.stop()
    warn_store(st)
    data = rep.to_dict()
    if not emit_json(data, json_):
        _print_summary(data)
    for w in data["warnings"] + unused_options(given, data["verifiers"], verifier):
        warn(w)
    over = rep.over_error_share(max_error_share)
    if over:
        raise CurateError(f"error share above --max-error-share {max_error_share:.1%}: {'; '.join(over)}",
                          hint="these verdicts say the verifier could not judge: `curate sql \"SELECT verifier, reason, "
                               "count(*) FROM verdicts WHERE status = 'error' GROUP BY ALL\"` shows why (docs/verifiers.md)")


def verifier_options(pairs: list[str] | None) -> dict[str, dict]:
    """`--option NAME.KEY=VALUE` items as label_store's `verifier_options` ({NAME: {KEY: value}}). Values are
    YAML scalars, as `--set` reads them, so `batch_size=4` is an int; a dotted KEY fills a dict option
    (`harm_judge.backend_options.base_url=...`)."""
    from curate.config import set_dotted
    from curate.errors import InputError
    from curate.yamlfile import parse_scalar
    from verifiers.registry import canonical

    out: dict[str, dict] = {}
    for key, text in parse_pairs(pairs, "--option").items():
        name, _, field = key.partition(".")
        if not name.strip() or not field.strip():
            raise InputError(f"--option {key}={text}: expected NAME.KEY=VALUE, e.g. reward_model.model=/models/reward")
        value = parse_scalar(text, f"--option {key}") if text.strip() else ""
        set_dotted(out.setdefault(canonical(name), {}), field.strip(), value, where="--option", what="verifier's options",
                   create=True)
    return out


def unused_options(given: dict[str, dict], used: list[str], named: str | None) -> list[str]:
    """One warning per verifier that `--option` gave options to but this run does not use, naming its options:
    they were checked, and are otherwise ignored. A verifier the run uses that found nothing to judge is used."""
    from verifiers.registry import canonical

    ran = {canonical(u) for u in used}
    out = []
    for name, opts in given.items():
        if canonical(name) in ran:
            continue
        keys = ", ".join(f"{name}.{k}" for k in opts)
        why = f"this run labels with --verifier {named} only" if named else \
            (f"no stored problem is labeled by {name!r} (this run uses {', '.join(used) or 'no verifier'}); "
             f"name it with --verifier {name}")
        out.append(f"--option {keys} is not used: {why}")
    return out


def _print_summary(data: dict) -> None:
    statuses = ("correct", "incorrect", "no_answer", "timeout", "error")
    rows = []
    for k, c in data["by_verifier"].items():
        total = sum(c.values())
        rows.append({"verifier": k, **{s: f"{c.get(s, 0)} ({c.get(s, 0) / total:.1%})" for s in statuses}, "total": total})
    if rows:
        print_table(rows, title="status distribution per verifier")
    out_console.print(f"labeled {data['labeled']} samples in {data['seconds']:.1f}s ({data['written']} new verdicts, "
                      f"{data['killed_workers']} workers killed on timeout, {data['self_tests']} self-tests passed)")
    for u in data["unclaimed"]:
        why = f"names unknown verifier {u['verifier']!r}" if u.get("verifier") else "no verifier claims it"
        warn(f"source={u['source']} domain={u['domain']} ({why}); name one with --verifier", "not labeled")
