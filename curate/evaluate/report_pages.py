"""The two pages of `curate report`: report.md (Markdown linking the figure files) and report.html (self-contained,
figures embedded as data URIs, no scripts), written from the numbers `report.collect` gathered.

Names from data print as text in both pages: escaped HTML; Markdown with its markup characters
backslash-escaped, except the plain brackets of a confidence interval, `[12.5, 30.0]`. Each figure links to
`curate view`'s eval explorer for every run it draws, by training run id where the curve has one.
Test: tests/test_report.py, tests/test_security_output.py.
"""
from __future__ import annotations

import base64
import html
import re

from curate.evaluate.run_info import run_label

STATUSES = ("correct", "incorrect", "no_answer", "timeout", "error", "unlabeled")
MAX_FLIPS_SHOWN = 20
VIEW_URL = "http://127.0.0.1:8300"  # `curate view`'s default address


def explorer_links(data: dict, bench: dict) -> list[tuple[str, str]]:
    """(label, URL of `curate view`'s eval explorer for that run and benchmark) for each evaluated run of a figure;
    the URL names the training run id when the curve has one, so runs sharing a name open their own answers.
    Imported curves have no answers to show."""
    from urllib.parse import urlencode

    runs = dict.fromkeys((c["run"], c.get("run_id") or "") for c in bench["curves"]
                         if not str(c.get("provenance", "")).startswith("imported"))
    shared = {run for run, _ in runs if sum(r == run for r, _ in runs) > 1}
    out = []
    for run, run_id in runs:
        pick = run_id or ("none" if run in shared else "")  # `none`: the explorer's samples without a run id
        query = {"run": run, **({"run_id": pick} if pick else {}), "benchmark": bench["benchmark"]}
        out.append((run_label(run, run_id) if run in shared else run, f"{VIEW_URL}/evals/grid?{urlencode(query)}"))
    return out


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 1 or v == 0 else f"{v:.3g}"
    return str(v)


TABLE_COLS = ("condition", "benchmark", "metric", "base", "final_step", "final", "final_gain", "best_step", "best",
              "dip_depth", "min_step", "dip_significant", "recovery")


def _flip_line(b: dict, f: dict) -> str:
    return (f"{b['benchmark']}: at step {f['early_step']} {f['leader_early']} led by {f['margin_early']:.1f}; "
            f"at step {f['last_step']} {f['leader_last']} leads by {f['margin_last']:.1f}"
            + ("" if f.get("tested", True) else " (no CIs: not tested against the noise)"))


def _flips(data: dict) -> list[str]:
    return [_flip_line(b, f) for b in data["benchmarks"] for f in b["flips"]]


def _mixture_rows(data: dict) -> list[dict]:
    return [{"mixture": m["name"], "rows": m["rows"], "incorrect %": _pct(m["incorrect_share"]),
             "thinking %": _pct(m["thinking_share"]),
             "median chars": m["length"]["response_chars"].get("median"), "p90 chars": m["length"]["response_chars"].get("p90"),
             "replaced": m["length_matching"]["replaced"],
             "same length bucket %": _pct(m["length_matching"]["same_bucket_share"]),
             "incorrect/correct median chars": m["length_matching"]["median_chars_incorrect_over_correct"]}
            for m in data["mixtures"]]


def _verdict_rows(data: dict) -> list[dict]:
    return [{"source": r["source"], "teacher": r["model"], "traces": r["traces"],
             **{f"{s} %": r["rates"][s] for s in STATUSES}, "mean tokens": r["mean_tokens"], "truncated %": r["truncation_rate"]}
            for r in data["verdicts"]]


def _ci_text(lo, hi) -> str:
    return "" if lo is None or hi is None else f"[{lo:.1f}, {hi:.1f}]"


def _answer_head(h: dict) -> str:
    return f"{h['benchmark']} ({h['metric']}, step {h['step']})"


def _answer_md(h: dict) -> str:
    """One bullet per benchmark, one sub-bullet per comparison (h['text'] holds the same on one line)."""
    if not h["comparisons"] or h["all_zero"]:
        return f"- {_md(h['text'])}"
    return f"- {_md(_answer_head(h))}:\n" + "\n".join(f"  - {_md(c['sentence'])}" for c in h["comparisons"])


def _answer_html(h: dict) -> str:
    e = html.escape
    if not h["comparisons"] or h["all_zero"]:
        return f"<li>{e(h['text'])}</li>"
    return (f"<li>{e(_answer_head(h))}:<ul>" + "".join(f"<li>{e(c['sentence'])}</li>" for c in h["comparisons"])
            + "</ul></li>")


def _condition_rows(data: dict) -> list[dict]:
    return [{"benchmark": h["benchmark"], "metric": h["metric"], "step": h["step"], "condition": c["label"],
             "seeds": ", ".join(str(x) for x in c["seeds"] if x is not None), "mean": c["mean"],
             "95% CI": _ci_text(c["ci_low"], c["ci_high"]), "CI over": c["ci_over"], "seed spread": c["spread"],
             "per seed": ", ".join(f"{v:.1f}" for v in c["values"]) if c["n_seeds"] > 1 else ""}
            for h in data["headline"] for c in h["conditions"]]


def _behaviour_ci_rows(data: dict) -> list[dict]:
    """One row per benchmark and condition, one column per behaviour metric: mean [95% CI]."""
    names = {"mean_tokens": "response tokens", "truncation_rate": "truncated %", "backtracks": "backtracks",
             "verifications": "verifications", "repetition": "repetition (0-1)"}
    present = [m for m in names if any(r["metric"] == m for r in data["behaviour_ci"])]
    rows: dict[tuple, dict] = {}
    for r in data["behaviour_ci"]:
        row = rows.setdefault((r["benchmark"], r["condition"]), {
            "benchmark": r["benchmark"], "step": r["step"], "condition": r["condition"], "CI over": r["ci_over"],
            **{names[m]: "" for m in present}})
        ci = _ci_text(r["ci_low"], r["ci_high"])
        row[names[r["metric"]]] = _fmt(r["mean"]) + (f" {ci}" if ci else "")
        if r["ci_over"] != row["CI over"] and r["ci_over"] != "no CI":
            row["CI over"] = r["ci_over"]
    return list(rows.values())


def _dose_rows(data: dict) -> list[dict]:
    return [{"benchmark": d["benchmark"], "step": d["step"], "condition": p["condition"], d["knob"]: p["share"],
             "mixed incorrect share": p["actual_share"], "seeds": p["n_seeds"], "mean": p["mean"],
             "95% CI": _ci_text(p["ci_low"], p["ci_high"])} for d in data["dose_response"] for p in d["points"]]


def _eval_setting_rows(data: dict) -> list[dict]:
    return [{k: s[k] for k in ("benchmark", "suite", "runs", "problems", "samples per problem", "max_tokens",
                               "temperature", "top_p", "backend")} for s in data["eval_settings"]]


def _run_rows(data: dict) -> list[dict]:
    return [{"run": r["label"], "condition": r["condition"], "model": r["model"], "seed": r["seed"],
             "lr": r["train"].get("lr"), "steps": r["train"].get("steps"), "batch": r["train"].get("batch"),
             "max length": r["train"].get("max_length"), "schedule": r["train"].get("schedule"),
             "run folder": r["run_dir_status"], "loss points": r["loss_points"]} for r in data["runs"]]


def _pct(x) -> float | None:
    return None if x is None else round(100 * x, 1)


# What turns text into markup: raw HTML and autolinks (<, >, &), links and images ([, ]), code spans (`), table
# cells (|) and the escape itself. Run, condition and benchmark names come from data (a study file, an imported
# CSV), so a name such as `<img src=x onerror=...>` or `x](javascript:...)` must print as the text it is.
_MD_MARKUP = re.compile(r"([\\`\[\]<>&|*])")


# A confidence interval as the report writes it, `[12.5, 30.0]` (signed in a difference). Its brackets stay as they
# are, so the raw file reads as it renders: brackets make a link only when followed by `(` or `[`, or when a
# definition `[label]: url` names them, and one is left plain only when followed by none of `(`, `[`, `:`; every
# other bracket is escaped, so no definition exists and a link cannot start or end inside text from data.
_CI = re.compile(r"\[[+-]?\d+(?:\.\d+)?, [+-]?\d+(?:\.\d+)?\](?![(\[:])")


def _md(text) -> str:
    """Data as literal Markdown text on one line: markup characters backslash-escaped, line breaks as spaces;
    confidence intervals keep their plain brackets."""
    text = " ".join(str(text).splitlines())
    out, at = [], 0
    for m in _CI.finditer(text):
        out += [_MD_MARKUP.sub(r"\\\1", text[at:m.start()]), m.group()]
        at = m.end()
    return "".join(out) + _MD_MARKUP.sub(r"\\\1", text[at:])


def _code(text) -> str:
    """Data as a Markdown code span: a fence longer than any run of backticks inside it (no escape works there)."""
    text = " ".join(str(text).splitlines())
    fence = "`" * (max((len(m) for m in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_table(rows: list[dict]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(_md(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_md(_fmt(r[c])) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _skip(data: dict, key: str) -> str:
    return f"_Left out: {_md(data['skipped'][key])}._\n"


def markdown(data: dict) -> str:
    parts = [f"# Evaluation report\n\nStore: {_code(data['store'])}" + (f", study: {_code(data['study'])}" if data["study"] else "") + "\n"]
    parts.append("## Answer\n")
    if data["headline"]:
        parts.append(ANSWER_NOTE + "\n")
        parts += [_answer_md(h) for h in data["headline"]]
        parts.append("")
    else:
        parts.append(_skip(data, "headline"))
    if data["warnings"]:
        parts.append("**Warnings**\n")
        parts += [f"- {_md(w)}" for w in data["warnings"]]
        parts.append("")
    if data["headline"]:
        parts.append("### Scores per condition\n")
        parts.append(_md_table(_condition_rows(data)))
    if data["behaviour_ci"]:
        parts.append("### Behaviour per condition\n")
        parts.append(_md_table(_behaviour_ci_rows(data)))
    parts.append("## Dose-response\n")
    if data["dose_response"]:
        parts += [f"- {_md(d['sentence'])}" for d in data["dose_response"]]
        parts.append("\n![dose-response](figures/dose_response.png)\n")
        parts.append(_md_table(_dose_rows(data)))
    else:
        parts.append(_skip(data, "dose_response"))
    parts.append("## Settings\n")
    parts.append("Evaluation:\n")
    parts.append(_md_table(_eval_setting_rows(data)) if data["eval_settings"] else "_No evaluation settings recorded._\n")
    parts.append("Training runs:\n")
    parts.append(_md_table(_run_rows(data)) if data["runs"] else "_No training runs._\n")
    parts.append("## Training loss\n")
    parts.append("![loss](figures/loss.png)\n" if data["loss"] else _skip(data, "loss"))
    if data["loss_missing"] and data["runs"]:
        parts.append("No loss curve for: " + _md("; ".join(data["loss_missing"])) + "\n")
    parts.append("## Score vs step\n")
    if data["benchmarks"]:
        for b in data["benchmarks"]:
            parts.append(f"![{_md(b['benchmark'])}](figures/{b['figure']}.png)\n")
            links = [f"[{_md(r)}]({u})" for r, u in explorer_links(data, b)]
            if links:
                parts.append(f"What each checkpoint answered (with {_code('curate view --store ' + str(data['store']))} running): "
                             + ", ".join(links) + "\n")
    else:
        parts.append(_skip(data, "scores"))
    parts.append("## Response length and truncation vs step\n")
    parts.append("![behaviour](figures/behaviour.png)\n" if data["behaviour"] else _skip(data, "behaviour"))
    parts.append("## Final and best scores, dynamics\n")
    if data["table"]:
        parts.append(_md_table([{c: r[c] for c in TABLE_COLS} for r in data["table"]]))
        flips = _flips(data)
        if flips:
            parts.append("Short runs mislead: the ranking of these conditions flips between an early step and the last one:\n")
            parts += [f"- {_md(x)}" for x in flips[:MAX_FLIPS_SHOWN]]
            if len(flips) > MAX_FLIPS_SHOWN:
                parts.append(f"- ... and {len(flips) - MAX_FLIPS_SHOWN} more (report.json lists all)")
            parts.append("")
    else:
        parts.append(_skip(data, "scores"))
    if data["unstepped"]:
        parts.append("Scores without a training step (models evaluated outside a training run):\n")
        parts.append(_md_table(data["unstepped"]))
    parts.append("## Mixtures\n")
    parts.append(_md_table(_mixture_rows(data)) + "\n![mixtures](figures/mixtures.png)\n" if data["mixtures"] else _skip(data, "mixtures"))
    parts.append("## Verdicts per source and teacher\n\nTraces sampled by an evaluation are not counted here.\n")
    parts.append(_md_table(_verdict_rows(data)) + "\n![verdicts](figures/verdicts.png)\n" if data["verdicts"] else _skip(data, "verdicts"))
    return "\n".join(parts)


ANSWER_NOTE = ("Per benchmark, in its headline metric, at the last step every compared run has: the best condition "
               "against each other one of the same base model, as `curate evals compare` computes it (paired bootstrap "
               "over problems; with several seeds, the mean of the seed-paired differences and a t-interval across seeds).")

CSS = """body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:12.5px;margin:.6em 0}th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4}td:first-child,td:nth-child(2){text-align:left}tr:nth-child(even){background:#fafafa}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}figcaption{color:#666;font-size:12px}
.skip{color:#777;font-style:italic}.warn{background:#fff6e0;border-left:4px solid #f0a020;padding:.4em .8em}
.meta{color:#666}"""


def _html_table(rows: list[dict]) -> str:
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(figures: dict[str, bytes], stem: str, caption: str) -> str:
    b64 = base64.b64encode(figures[stem]).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)} (figures/{html.escape(stem)}.png, .svg)</figcaption></figure>")


def render_html(data: dict, figures: dict[str, bytes]) -> str:
    e = html.escape
    skip = lambda k: f'<p class="skip">Left out: {e(data["skipped"][k])}.</p>'  # noqa: E731
    p = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         '<meta name="viewport" content="width=device-width, initial-scale=1">',
         "<title>curate evaluation report</title>", f"<style>{CSS}</style></head><body>",
         "<h1>Evaluation report</h1>",
         f'<p class="meta">Store <code>{e(data["store"])}</code>'
         + (f', study <code>{e(data["study"])}</code>' if data["study"] else "") + "</p>",
         "<h2>Answer</h2>"]
    if data["headline"]:
        p.append("<p>" + re.sub(r"`([^`]+)`", r"<code>\1</code>", e(ANSWER_NOTE)) + "</p>")
        p.append("<ul>" + "".join(_answer_html(h) for h in data["headline"]) + "</ul>")
    else:
        p.append(skip("headline"))
    if data["warnings"]:
        p.append('<div class="warn"><b>Warnings</b><ul>' + "".join(f"<li>{e(w)}</li>" for w in data["warnings"])
                 + "</ul></div>")
    if data["headline"]:
        p += ["<h3>Scores per condition</h3>", _html_table(_condition_rows(data))]
    if data["behaviour_ci"]:
        p += ["<h3>Behaviour per condition</h3>", _html_table(_behaviour_ci_rows(data))]
    p.append("<h2>Dose-response</h2>")
    if data["dose_response"]:
        p.append("<ul>" + "".join(f"<li>{e(d['sentence'])}</li>" for d in data["dose_response"]) + "</ul>")
        p.append(_img(figures, "dose_response", "score vs incorrect share"))
        p.append(_html_table(_dose_rows(data)))
    else:
        p.append(skip("dose_response"))
    p.append("<h2>Settings</h2><p>Evaluation:</p>")
    p.append(_html_table(_eval_setting_rows(data)) if data["eval_settings"] else "<p>No evaluation settings recorded.</p>")
    p.append("<p>Training runs:</p>")
    p.append(_html_table(_run_rows(data)) if data["runs"] else "<p>No training runs.</p>")
    p.append("<h2>Training loss</h2>")
    p.append(_img(figures, "loss", "training loss vs step") if data["loss"] else skip("loss"))
    if data["loss_missing"] and data["runs"]:
        p.append(f'<p class="meta">No loss curve for: {e("; ".join(data["loss_missing"]))}</p>')
    p.append("<h2>Score vs step</h2>")
    if data["benchmarks"]:
        for b in data["benchmarks"]:
            p.append(_img(figures, b["figure"], f"{b['benchmark']}: score vs step"))
            links = [f'<a href="{e(u)}">{e(r)}</a>' for r, u in explorer_links(data, b)]
            if links:
                p.append(f'<p class="meta">What each checkpoint answered (with <code>curate view --store '
                         f'{e(data["store"])}</code> running): {", ".join(links)}</p>')
    else:
        p.append(skip("scores"))
    p.append("<h2>Response length and truncation vs step</h2>")
    p.append(_img(figures, "behaviour", "mean response tokens and truncation rate vs step") if data["behaviour"] else skip("behaviour"))
    p.append("<h2>Final and best scores, dynamics</h2>")
    if data["table"]:
        p.append("<p>Dip: base minus the lowest score after step 0; significant when larger than the combined 95% CIs "
                 "of base and minimum (blank when CIs are unknown). Recovery: first step at or above base after the minimum.</p>")
        p.append(_html_table([{c: r[c] for c in TABLE_COLS} for r in data["table"]]))
        flips = _flips(data)
        if flips:
            items = "".join(f"<li>{e(x)}</li>" for x in flips[:MAX_FLIPS_SHOWN])
            more = f"<li>... and {len(flips) - MAX_FLIPS_SHOWN} more (report.json lists all)</li>" if len(flips) > MAX_FLIPS_SHOWN else ""
            p.append(f'<div class="warn"><b>Short runs mislead.</b> The ranking of these conditions flips between an early '
                     f"step and the last one:<ul>{items}{more}</ul></div>")
    else:
        p.append(skip("scores"))
    if data["unstepped"]:
        p.append("<p>Scores without a training step (models evaluated outside a training run):</p>")
        p.append(_html_table(data["unstepped"]))
    def table_section(key: str, rows, alt: str) -> list[str]:  # a table and its figure, or why there is none
        return [_html_table(rows(data)), _img(figures, key, alt)] if data[key] else [skip(key)]

    p.append("<h2>Mixtures</h2>")
    p += table_section("mixtures", _mixture_rows, "mixture composition and lengths")
    p.append("<h2>Verdicts per source and teacher</h2>")
    p.append('<p class="meta">Traces sampled by an evaluation are not counted here: their scores are above.</p>')
    p += table_section("verdicts", _verdict_rows, "verdict rates per source and teacher")
    p.append("</body></html>\n")
    return "\n".join(p)
