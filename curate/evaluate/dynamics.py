"""Training dynamics of one score curve: the dip below the base model, recovery, final gain, best step, and
whether two conditions swap places between an early step and the last one. Pure functions, no I/O.

A curve is a set of points (step, value[, ci_low, ci_high]); step 0 is the base model. Steps need not be
regular and may be missing; points without a value (an incomplete benchmark) are ignored.

Definitions, so the dip is measured the same way every time:
- dip depth: base - the lowest value after step 0 (0 when nothing falls below base); min step: where it is.
- significant: a one-sided z-test of base - minimum, with the standard error of the difference from both
  points' 95% CIs (se = sqrt(hw_base**2 + hw_min**2) / 1.96), Bonferroni-corrected for having picked the lowest
  of m trained checkpoints: significant when p * m <= 0.025 (`dip_p_adjusted` = min(1, p * m)). Without the
  correction a flat curve of 8 noisy checkpoints "dips significantly" about 12% of the time instead of 2.5%.
  None when either CI is unknown.
- recovery: the first step after the minimum whose value is at or above base; `never` when none is.
- relapse: after recovering, a later step below base again (`relapse_step`, the first such step); the recovery
  then reads "step 20, relapsed at step 80" and, when the curve ends below base, how far below.
- final gain: last value - base. Best step: the step of the highest value (the base included; earliest on ties).
- For metrics where lower is better (attack success rate), pass higher_is_better=False: "dip" then means a rise,
  depths and gains are reported in the direction of "worse" / "better", values as measured.
- ranking flip: the order of two conditions at a common early step is the opposite of their order at the last
  common step. An order counts only where the difference exceeds its noise, |a - b| > sqrt(hw_a**2 + hw_b**2)
  (both CIs known); a difference inside it is a tie, and ties never count. Curves without CIs (published
  numbers) are compared on their values alone, and the flip says so (`tested = False`). This is the "short runs
  mislead" warning.

Test: tests/test_dynamics.py (the study's published curves and edge cases).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Iterable, Mapping, Optional, Union


@dataclass(frozen=True)
class Point:
    step: int
    value: float
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None

    @property
    def half_width(self) -> Optional[float]:
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / 2


Z95 = NormalDist().inv_cdf(0.975)
DIP_ALPHA = 0.025  # one-sided: the dip test asks whether the minimum is below base, not whether it differs


def _noise(a: Point, b: Point) -> Optional[float]:
    """The 95% half-width of a - b from both points' CIs (independent estimates); None when either is unknown."""
    if a.half_width is None or b.half_width is None:
        return None
    return math.hypot(a.half_width, b.half_width)


CurveLike = Union[Mapping[int, float], Iterable[Union[Point, Mapping, tuple]]]


def curve(points: CurveLike) -> list[Point]:
    """Normalise a curve: a {step: value} mapping, Points, (step, value[, lo, hi]) tuples or dict rows with
    step/value/ci_low/ci_high. Sorted by step; rows without a step or value are dropped; a repeated step is an error."""
    if isinstance(points, Mapping):
        items = [Point(int(s), float(v)) for s, v in points.items() if s is not None and v is not None]
    else:
        items = []
        for p in points:
            if isinstance(p, Point):
                items.append(p)
            elif isinstance(p, Mapping):
                if p.get("step") is None or p.get("value") is None:
                    continue
                items.append(Point(int(p["step"]), float(p["value"]), _f(p.get("ci_low")), _f(p.get("ci_high"))))
            else:
                s, v, *ci = p
                if s is None or v is None:
                    continue
                items.append(Point(int(s), float(v), *(_f(c) for c in ci[:2])))
    items = [p for p in items if math.isfinite(p.value)]
    items.sort(key=lambda p: p.step)
    steps = [p.step for p in items]
    if len(set(steps)) != len(steps):
        dup = sorted({s for s in steps if steps.count(s) > 1})
        raise ValueError(f"a curve has one value per step; repeated steps: {dup}")
    return items


def _f(x) -> Optional[float]:
    return None if x is None else float(x)


@dataclass(frozen=True)
class Dynamics:
    """What `dynamics()` measures on one curve. Fields that cannot be computed are None; `notes` says why."""

    points: int
    first_step: Optional[int]
    last_step: Optional[int]
    base: Optional[float]
    final: Optional[float]
    final_gain: Optional[float]
    best_step: Optional[int]
    best: Optional[float]
    dip: Optional[bool]
    dip_depth: Optional[float]
    min_step: Optional[int]
    min_value: Optional[float]
    dip_significant: Optional[bool]
    recovered: Optional[bool]
    recovery_step: Optional[int]
    higher_is_better: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)
    dip_p_adjusted: Optional[float] = None  # the dip test's one-sided p-value times the trained checkpoints
    relapsed: Optional[bool] = None  # below base again after recovering (None without a recovery)
    relapse_step: Optional[int] = None

    @property
    def recovery(self) -> str:
        """`step N`, `step N, relapsed at step M[, ends X below base]`, `never`, or `-` when there is no dip to
        recover from (or no base)."""
        if self.recovered is None:
            return "-"
        if not self.recovered:
            return "never"
        out = f"step {self.recovery_step}"
        if self.relapsed:
            out += f", relapsed at step {self.relapse_step}"
            if self.final_gain is not None and self.final_gain < 0:  # final_gain is in the "better" direction
                out += f", ends {-self.final_gain:.1f} {'below' if self.higher_is_better else 'above'} base"
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["notes"] = list(self.notes)
        d["recovery"] = self.recovery
        return d


def dynamics(points: CurveLike, higher_is_better: bool = True) -> Dynamics:
    """Dip, recovery, final gain and best step of one curve (see the module docstring for the definitions)."""
    pts = curve(points)
    sign = 1.0 if higher_is_better else -1.0
    notes: list[str] = []
    if not pts:
        return Dynamics(0, None, None, None, None, None, None, None, None, None, None, None, None, None, None,
                        higher_is_better, ("no points",))
    # Work in "goodness" g = sign * value so one code path serves both directions.
    g = {p.step: sign * p.value for p in pts}
    by_step = {p.step: p for p in pts}
    last = pts[-1]
    best_step = max(pts, key=lambda p: (g[p.step], -p.step)).step
    base_pt = by_step.get(0)
    trained = [p for p in pts if p.step > 0]
    common = dict(points=len(pts), first_step=pts[0].step, last_step=last.step, final=last.value,
                  best_step=best_step, best=by_step[best_step].value, higher_is_better=higher_is_better)
    if base_pt is None:
        notes.append("no base model point (step 0): dip, recovery and gain are undefined")
        return Dynamics(base=None, final_gain=None, dip=None, dip_depth=None, min_step=None, min_value=None,
                        dip_significant=None, recovered=None, recovery_step=None, notes=tuple(notes), **common)
    base = base_pt.value
    if not trained:
        notes.append("only the base model point: nothing trained to compare")
        return Dynamics(base=base, final_gain=None, dip=None, dip_depth=None, min_step=None, min_value=None,
                        dip_significant=None, recovered=None, recovery_step=None, notes=tuple(notes), **common)
    low = min(trained, key=lambda p: (g[p.step], p.step))
    depth = g[0] - g[low.step]
    dip = depth > 0
    significant = p_adj = None
    if dip:
        noise = _noise(base_pt, low)
        if noise is None:
            notes.append("dip significance unknown: no confidence interval at the base or the minimum")
        else:
            se = noise / Z95
            p = (0.0 if depth > 0 else 1.0) if se == 0 else 1.0 - NormalDist().cdf(depth / se)
            p_adj = min(1.0, p * len(trained))  # Bonferroni: the minimum was picked among len(trained) checkpoints
            significant = p_adj <= DIP_ALPHA
    recovered = recovery_step = relapsed = relapse_step = None
    if dip:
        after = [p for p in trained if p.step > low.step and g[p.step] >= g[0]]
        recovered = bool(after)
        recovery_step = after[0].step if after else None
        if recovered:
            below = [p for p in trained if p.step > recovery_step and g[p.step] < g[0]]
            relapsed = bool(below)
            relapse_step = below[0].step if below else None
    return Dynamics(base=base, final_gain=round(g[last.step] - g[0], 6), dip=dip,
                    dip_depth=round(max(depth, 0.0), 6), min_step=low.step, min_value=low.value,
                    dip_significant=significant if dip else False, recovered=recovered, recovery_step=recovery_step,
                    notes=tuple(notes), dip_p_adjusted=None if p_adj is None else round(p_adj, 6), relapsed=relapsed,
                    relapse_step=relapse_step, **common)


@dataclass(frozen=True)
class RankingFlip:
    """Order of conditions a and b at the last common step and at earlier common steps."""

    last_step: Optional[int]
    leader_last: Optional[str]      # name of the better condition at the last common step (None on a tie)
    margin_last: Optional[float]    # |a - b| at the last common step
    flipped: bool
    early_step: Optional[int]       # the earliest common step whose order is the opposite of the last one
    leader_early: Optional[str]
    margin_early: Optional[float]
    opposite_steps: tuple[int, ...] = ()
    common_steps: tuple[int, ...] = ()
    tested: bool = True  # every compared step had both CIs, so orders inside the noise counted as ties

    def to_dict(self) -> dict:
        d = asdict(self)
        d["opposite_steps"] = list(self.opposite_steps)
        d["common_steps"] = list(self.common_steps)
        return d


def ranking_flip(a: CurveLike, b: CurveLike, names: tuple[str, str] = ("a", "b"), early_step: Optional[int] = None,
                 higher_is_better: bool = True) -> RankingFlip:
    """Does the order of a and b at an early step differ from their order at the last common step?

    With `early_step` only that step is checked; otherwise every common trained step (> 0) before the last.
    Where both points carry CIs, a difference inside sqrt(hw_a**2 + hw_b**2) is a tie (no leader)."""
    pa = {p.step: p for p in curve(a)}
    pb = {p.step: p for p in curve(b)}
    va = {s: p.value for s, p in pa.items()}
    vb = {s: p.value for s, p in pb.items()}
    common = sorted(set(va) & set(vb))
    if not common:
        return RankingFlip(None, None, None, False, None, None, None, (), ())
    sign = 1.0 if higher_is_better else -1.0
    untested: set[int] = set()

    def lead(s: int) -> Optional[str]:
        d = sign * (va[s] - vb[s])
        noise = _noise(pa[s], pb[s])
        if noise is None:
            untested.add(s)
        elif abs(d) <= noise:
            return None
        return names[0] if d > 0 else names[1] if d < 0 else None

    last = common[-1]
    leader_last = lead(last)
    if early_step is not None:
        candidates = [early_step] if early_step in va and early_step in vb and early_step < last else []
    else:
        candidates = [s for s in common if 0 < s < last]
    opposite = tuple(s for s in candidates if leader_last is not None and lead(s) not in (None, leader_last))
    early = opposite[0] if opposite else (candidates[0] if candidates else None)
    return RankingFlip(
        last_step=last, leader_last=leader_last, margin_last=round(abs(va[last] - vb[last]), 6), flipped=bool(opposite),
        early_step=early, leader_early=lead(early) if early is not None else None,
        margin_early=round(abs(va[early] - vb[early]), 6) if early is not None else None,
        opposite_steps=opposite, common_steps=tuple(common),
        tested=not (untested & ({last, early} if early is not None else {last})),
    )
