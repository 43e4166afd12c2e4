"""The report's figures, drawn with matplotlib's object API (no pyplot state, Agg canvas, no display needed).

Each function takes the report's plain data (see curate/evaluate/report.py) and returns a Figure; `save`
writes it as PNG and SVG and returns the PNG bytes for embedding. Output is deterministic (no dates in the
files, fixed SVG ids), so reports of the same store diff cleanly. Axes stay readable: values that (nearly)
coincide get a 0-100 percent axis (or +-10% around the value), never an offset such as 1e-17; step labels that
would touch are blanked (the last is kept); legends sit beside or below the axes, never over a label.
matplotlib is an optional extra: `require_matplotlib()` turns its absence into one clear error.
Test: tests/test_report.py, tests/test_report_findings.py.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.evaluate.metrics import UNSCALED

PNG_DPI = 110
STATUS_COLOURS = {"correct": "#2ca02c", "incorrect": "#d62728", "no_answer": "#ff7f0e", "timeout": "#9467bd",
                  "error": "#7f7f7f", "unlabeled": "#c7c7c7"}


def require_matplotlib():
    try:
        import matplotlib
    except ImportError:
        # No square brackets: the CLI prints messages as rich markup.
        raise CurateError("curate report needs matplotlib: install curate's `report` extra, "
                          "or pip install 'matplotlib>=3.7'") from None
    return matplotlib


def style():
    """Settings for drawing and saving every figure: names are plain text (a run called `a$b$` must not turn
    into mathtext), SVG text stays text, SVG ids are fixed so the files are deterministic."""
    matplotlib = require_matplotlib()
    return matplotlib.rc_context({"text.parse_math": False, "svg.hashsalt": "curate-report", "svg.fonttype": "none"})


def _figure(w: float, h: float, rows: int = 1, cols: int = 1, **kw):
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, **kw)
    return fig, axes


def colours(names: list[str]) -> dict[str, Any]:
    """One stable colour per run, the same in every figure."""
    require_matplotlib()
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {n: cmap(i % cmap.N) for i, n in enumerate(sorted(names))}


def set_steps_axis(ax, steps: list[int]) -> None:
    """Symlog when the steps span a wide range (0, 10, 20, ..., 640), so the early dip is not squashed.
    Ticks sit on evaluated steps with plain labels (the log formatters' mathtext is slow and reads badly)."""
    pos = sorted(s for s in set(steps) if s > 0)
    gaps = [b - a for a, b in zip(pos, pos[1:])]
    evenly_spaced = bool(gaps) and max(gaps) <= 2 * min(gaps)  # 10, 20, ..., 200 reads best on a linear axis
    log = bool(pos) and pos[-1] / pos[0] >= 16 and not evenly_spaced
    if log:
        ax.set_xscale("symlog", linthresh=pos[0], linscale=0.5)
    uniq = sorted(set(steps))
    ticks = uniq
    if len(uniq) > 12:
        if log:  # the first evaluated step past each doubling
            ticks, want = [s for s in uniq if s <= 0], pos[0]
            for s in pos:
                if s >= want:
                    ticks.append(s)
                    want = 2 * s
        else:
            ticks = uniq[:: -(-len(uniq) // 10)]
        if ticks[-1] != uniq[-1]:
            close = (ticks[-1] * 1.5 > uniq[-1]) if log else (uniq[-1] - ticks[-1] < (uniq[-1] - uniq[0]) / 20)
            ticks = ticks[:-1] + [uniq[-1]] if close and len(ticks) > 1 else ticks + [uniq[-1]]
    ax.set_xticks(ticks)
    ax.set_xticklabels(["base" if s == 0 else str(s) for s in ticks])
    ax.minorticks_off()
    ax.set_xlabel("training step (base = step 0)")
    ax.grid(True, alpha=0.3)


def sane_yaxis(ax, values: list[float], percent: bool = True) -> None:
    """Plain tick labels (never an offset such as 1e-17) and a readable range when the values (nearly) coincide:
    0-100 on a percent axis, +-10% (at least +-1) around the value otherwise."""
    from matplotlib.ticker import ScalarFormatter

    fmt = ScalarFormatter(useOffset=False)
    fmt.set_scientific(False)
    ax.yaxis.set_major_formatter(fmt)
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return
    lo, hi = min(vals), max(vals)
    if percent and hi - lo < 1.0 and -1.0 <= lo and hi <= 101.0:
        ax.set_ylim(-2, 102)
    elif hi - lo < max(1e-9, 1e-6 * abs(hi)):
        pad = max(1.0, 0.1 * abs(hi))
        ax.set_ylim(max(0.0, lo - pad) if lo >= 0 else lo - pad, hi + pad)


def thin_xticklabels(fig) -> bool:
    """Blank the tick labels that would overlap their neighbour (on a log axis 480 and 640 print as `480640`);
    the last label is always kept. Needs a drawn figure (label extents). True when a label was blanked."""
    renderer = fig.canvas.get_renderer()
    hidden = False
    for ax in fig.axes:
        labels = [t for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
        if len(labels) < 2:
            continue
        boxes = [t.get_window_extent(renderer) for t in labels]
        gap = 4.0  # pixels between two labels
        keep = [len(labels) - 1]
        for i in range(len(labels) - 2, -1, -1):
            if boxes[i].x1 + gap <= boxes[keep[-1]].x0:
                keep.append(i)
            else:
                labels[i].set_visible(False)
                hidden = True
    return hidden


def _legend_outside(ax) -> None:
    """The legend right of the axes, never over the data or an axis label."""
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def score_figure(bench: dict, steps: list[int], palette: dict):
    """Score vs step for one benchmark: one line per curve, CI bands, base dotted, dip and recovery marked."""
    fig, axes = _figure(7.6, 4.3)
    ax = axes[0][0]
    annotate = len(bench["curves"]) <= 4
    seen: dict[str, int] = {}
    for c in bench["curves"]:
        col = palette[c["run"]]
        style = ("-", "--", "-.", ":")[seen.get(c["run"], 0) % 4]  # a run's other suites/settings: same colour, new dash
        seen[c["run"]] = seen.get(c["run"], 0) + 1
        pts = c["points"]
        xs, ys = [p["step"] for p in pts], [p["value"] for p in pts]
        ax.plot(xs, ys, style, marker="o", color=col, ms=3.5, lw=1.6, label=c["label"])
        ci = [(p["step"], p["ci_low"], p["ci_high"]) for p in pts if p["ci_low"] is not None and p["ci_high"] is not None]
        if len(ci) >= 2:
            ax.fill_between([x for x, _, _ in ci], [lo for _, lo, _ in ci], [hi for _, _, hi in ci], color=col,
                            alpha=0.15 if annotate else 0.06, lw=0)
        elif ci:
            ax.errorbar([ci[0][0]], [(ci[0][1] + ci[0][2]) / 2], yerr=[[(ci[0][2] - ci[0][1]) / 2]], color=col, capsize=3)
        d = c["dynamics"]
        if d["base"] is not None:
            ax.axhline(d["base"], color=col, ls=":", lw=0.9, alpha=0.8)
            ax.plot([0], [d["base"]], "s", color=col, ms=6)
        if d["dip"]:
            ax.plot([d["min_step"]], [d["min_value"]], "v", color=col, ms=9, mec="black", mew=0.6)
            if annotate:
                ax.annotate(f"dip {d['dip_depth']:.1f}", (d["min_step"], d["min_value"]), textcoords="offset points",
                            xytext=(4, -12), fontsize=8, color=col)
            if d["recovered"]:
                rv = next(p["value"] for p in pts if p["step"] == d["recovery_step"])
                ax.plot([d["recovery_step"]], [rv], "*", color=col, ms=12, mec="black", mew=0.6)
                if annotate:
                    ax.annotate("recovered", (d["recovery_step"], rv), textcoords="offset points", xytext=(4, 6),
                                fontsize=8, color=col)
    set_steps_axis(ax, steps)
    ax.margins(y=0.12)
    percent = not set(bench["metrics"]) <= set(UNSCALED)  # a reward is in its model's units
    sane_yaxis(ax, [v for c in bench["curves"] for p in c["points"] for v in (p["value"], p["ci_low"], p["ci_high"])],
               percent=percent)
    ax.set_ylabel(f"{', '.join(bench['metrics'])}" + (" (%)" if percent else "")
                  + ("  lower is better" if not bench["higher_is_better"] else ""))
    ax.set_title(f"{bench['benchmark']}: score vs step  (square: base, \u25bc: dip minimum, \u2605: recovery)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


def _dashes(runs: list[dict]) -> list[str]:
    """A line style per entry: two training runs sharing a name share its colour, so the second gets a new dash."""
    seen: dict[str, int] = {}
    out = []
    for r in runs:
        out.append(("-", "--", "-.", ":")[seen.get(r["run"], 0) % 4])
        seen[r["run"]] = seen.get(r["run"], 0) + 1
    return out


def behaviour_figure(runs: list[dict], steps: list[int], palette: dict):
    """Mean response length and truncation rate vs step, on the score figures' x-axis."""
    fig, axes = _figure(7.6, 5.4, rows=2, cols=1, sharex=True)
    top, bottom = axes[0][0], axes[1][0]
    dashes = _dashes(runs)
    for r, dash in zip(runs, dashes):
        col = palette[r["run"]]
        for ax, key in ((top, "mean_tokens"), (bottom, "truncation_rate")):
            pts = [(p["step"], p[key]) for p in r["points"] if p.get(key) is not None]
            if pts:
                ax.plot([s for s, _ in pts], [v for _, v in pts], dash, marker="o", color=col, ms=3, lw=1.4,
                        label=r.get("label", r["run"]))
    top.set_ylabel("mean response tokens")
    bottom.set_ylabel("truncated (%)")
    sane_yaxis(top, [p["mean_tokens"] for r in runs for p in r["points"]], percent=False)
    sane_yaxis(bottom, [p["truncation_rate"] for r in runs for p in r["points"]])
    set_steps_axis(bottom, steps)
    set_steps_axis(top, steps)
    top.set_xlabel("")
    top.set_title("response length and truncation vs step (mean over benchmarks)", fontsize=10)
    handles, labels = top.get_legend_handles_labels()
    if labels:  # beside both panels: a legend on the top one alone squashes it
        fig.legend(handles, labels, fontsize=8, loc="outside right upper")
    return fig


def _status_bar(ax, row: int, width: float, left: float, status: str) -> None:
    """One segment of a stacked horizontal bar, in the status's colour; each status enters the legend once."""
    ax.barh(row, width, left=left, color=STATUS_COLOURS.get(status, "#17becf"),
            label=status if status not in ax.get_legend_handles_labels()[1] else None)


def _label_rows(ax, labels: list[str]) -> None:
    """One labelled row per bar, the first at the top."""
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()


def mixture_figure(mixtures: list[dict]):
    """Per mixture: rows by verdict status (with thinking share) and the response-length spread by status."""
    n = len(mixtures)
    fig, axes = _figure(9.0, 2.0 + 0.55 * n, rows=1, cols=2)
    left, right = axes[0][0], axes[0][1]
    names = [m["name"] for m in mixtures]
    for i, m in enumerate(mixtures):
        acc = 0.0
        for status, share in m["status_shares"].items():
            _status_bar(left, i, share * 100, acc, status)
            acc += share * 100
        if m["thinking_share"] is not None:
            left.text(101, i, f"thinking {m['thinking_share'] * 100:.0f}%", va="center", fontsize=7)
        for j, (status, st) in enumerate(sorted(m["length_by_status"].items())):
            if not st.get("n"):
                continue
            y = i + (j - 0.5) * 0.25
            c = STATUS_COLOURS.get(status, "#17becf")
            right.plot([st["min"], st["max"]], [y, y], color=c, lw=1)
            right.plot([st["median"], st["p90"]], [y, y], color=c, lw=5, solid_capstyle="butt")
            right.plot([st["mean"]], [y], "|", color="black", ms=8)
    for ax in (left, right):
        _label_rows(ax, names)
    left.set_xlim(0, 125)
    left.set_xlabel("rows (%)")
    left.set_title("composition by verdict status", fontsize=10)
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncol=min(6, len(labels)))
    right.set_xlabel("response characters")
    right.set_title("response length by status\nline: min-max, bar: median-p90, |: mean", fontsize=9)
    right.grid(True, axis="x", alpha=0.3)
    return fig


def verdict_figure(rows: list[dict], statuses: tuple[str, ...]):
    """Per source and teacher: share of traces by latest verdict status."""
    n = len(rows)
    fig, axes = _figure(8.0, 1.2 + 0.4 * n)
    ax = axes[0][0]
    labels = [f"{r['source']} / {r['model']}" for r in rows]
    for i, r in enumerate(rows):
        acc = 0.0
        for s in statuses:
            share = 100.0 * r[s] / r["traces"] if r["traces"] else 0.0
            if share:
                _status_bar(ax, i, share, acc, s)
            acc += share
        ax.text(101, i, f"n={r['traces']}", va="center", fontsize=7)
    _label_rows(ax, labels)
    ax.set_xlim(0, 115)
    ax.set_xlabel("traces (%)")
    ax.set_title("verdicts per source and teacher (latest verdict)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


def loss_figure(runs: list[dict], palette: dict):
    """Training loss vs step from each run's metrics.jsonl."""
    fig, axes = _figure(7.6, 4.0)
    ax = axes[0][0]
    for r, dash in zip(runs, _dashes(runs)):
        pts = r["points"]
        ax.plot([p["step"] for p in pts], [p["loss"] for p in pts], dash, color=palette.get(r["run"], "#1f77b4"),
                lw=1.3, label=r.get("label", r["run"]))
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss (response tokens)")
    ax.set_title("training loss vs step (metrics.jsonl)", fontsize=10)
    ax.grid(True, alpha=0.3)
    sane_yaxis(ax, [p["loss"] for r in runs for p in r["points"]], percent=False)
    _legend_outside(ax)
    return fig


def dose_figure(items: list[dict]):
    """Score vs the knob's share, one panel per benchmark: condition means with 95% CIs and the fitted line."""
    n = len(items)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = _figure(4.2 * cols + 1.0, 3.6 * rows, rows=rows, cols=cols)
    flat = [a for row in axes for a in row]
    for ax, d in zip(flat, items):
        xs = [100 * p["share"] for p in d["points"]]
        ys = [p["mean"] for p in d["points"]]
        lo = [p["mean"] - p["ci_low"] if p["ci_low"] is not None else 0 for p in d["points"]]
        hi = [p["ci_high"] - p["mean"] if p["ci_high"] is not None else 0 for p in d["points"]]
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", color="#1f77b4", capsize=4, ms=5, label="condition mean, 95% CI")
        if d["slope"] is not None:
            ax.plot([0, 100], [d["intercept"], d["intercept"] + d["slope"]], "--", color="#d62728", lw=1.2,
                    label="fit")
        ax.set_xlim(-5, 105)
        ax.set_xticks(sorted({0, 100, *xs}))
        ax.set_xlabel(f"{d['knob']} (%)")
        ax.set_ylabel(f"{d['metric']} (%)")
        model = Path(d["model"]).name if d.get("model") else None  # a study records a local model by its path
        ax.set_title(f"{d['benchmark']}, step {d['step']}" + (f" ({model})" if model else ""), fontsize=10)
        ax.grid(True, alpha=0.3)
        sane_yaxis(ax, ys + [p[k] for p in d["points"] for k in ("ci_low", "ci_high")])
    for ax in flat[n:]:
        ax.set_visible(False)
    handles, labels = flat[0].get_legend_handles_labels()
    names = {"fit": "least-squares line over the runs"}
    fig.legend(handles, [names.get(lab, lab) for lab in labels], fontsize=8, loc="outside lower center", ncol=2)
    return fig


def save(fig, folder: Path, stem: str) -> bytes:
    """Write stem.png and stem.svg under folder; return the PNG bytes. The PNG is the canvas's own render (one
    draw lays out, renders and measures the tick labels; a second only when labels were blanked)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with style():
        fig.set_dpi(PNG_DPI)
        fig.canvas.draw()
        if thin_xticklabels(fig):
            fig.canvas.draw()
        w, h = fig.canvas.get_width_height(physical=True)
        Image.frombuffer("RGBA", (w, h), fig.canvas.buffer_rgba(), "raw", "RGBA", 0, 1).save(
            buf, format="png", compress_level=1)
        fig.set_layout_engine("none")  # laid out by the PNG draw; the SVG reuses it
        fig.savefig(folder / f"{stem}.svg", format="svg", metadata={"Date": None, "Creator": None})
    png = buf.getvalue()
    (folder / f"{stem}.png").write_bytes(png)
    return png
