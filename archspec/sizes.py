"""Which input sizes a network accepts, per output.

Three things limit them; the shapes stage records each on the node where it arises:

* every feature map must be at least 1×1: a lower bound per axis (``Dim.min_input``);
* a flatten of a map whose size grows with the input fixes that size at the spec's input size
  (the vector's length sizes the next linear): an interval per axis (``Dim.input_range``);
* a merge whose branches agree in size at the spec's input size but not at every size (say a
  ceil-mode pool beside a padded stride-2 conv, equal only for even maps; a skip beside a map pooled
  /2 and upsampled ×2, 2·floor(X/2) = X): a condition
  ``k1·floor((X + a1)/m1) + c1 == k2·floor((X + a2)/m2) + c2`` on that axis (symbolic.Dim.affine).

Axes are independent, so the accepted sizes are a product of two sets of integers: an interval
on each axis, filtered by that axis's conditions. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import floor, lcm

from archspec.symbolic import NEVER, Dim, Periodic, at

Range = tuple[int, int, int, int]  # (min H, min W, max H, max W); max is NEVER when unbounded
UNBOUNDED: Range = (1, 1, NEVER, NEVER)
# Two sizes agree on one axis (0 = H, 1 = W): (axis, a1, m1, a2, m2) for floor((X + a1)/m1) == floor((X + a2)/m2)
# (m = 0: the constant a), or (axis, k1, a1, m1, c1, k2, a2, m2, c2) for k1·floor((X + a1)/m1) + c1 ==
# k2·floor((X + a2)/m2) + c2 where a side is not of the first form (after an upsampling, symbolic.Dim.affine)
# After a factor p/q that the first two cannot hold (symbolic.Dim.periodic): (axis, RESIDUES, -1, P, r, ...)
# for X mod P in {r, ...}, or (axis, LISTED, -1, x, ...) for X in {x, ...}
Condition = tuple[int, ...]
COMPARED, RESIDUES, LISTED = -1, 0, 1
Side = tuple[int, int, int, int]  # (k, a, m, c): k·floor((X + a)/m) + c
MAX_PERIOD = 1 << 16


def meet(*ranges: Range) -> Range:
    """The input sizes every one of ``ranges`` accepts."""
    lo_h, lo_w, hi_h, hi_w = ranges[0]
    for r in ranges[1:]:  # a plain loop: this runs once per op on every check
        lo_h, lo_w, hi_h, hi_w = max(lo_h, r[0]), max(lo_w, r[1]), min(hi_h, r[2]), min(hi_w, r[3])
    return lo_h, lo_w, hi_h, hi_w


def condition(axis: int, a: Dim, b: Dim) -> Condition:
    """The condition that sizes ``a`` and ``b`` agree: five integers for two canonical sizes, nine where
    both have the form k·floor((X + a)/m) + c, else (both periodic, symbolic.Dim.periodic) the residues
    mod a period where they agree (sizes growing alike) or the sizes themselves (growing apart)."""
    if a.is_canonical and b.is_canonical:
        return (axis, a.a, a.m, b.a, b.m)
    fa, fb = a.affine(), b.affine()
    if fa is not None and fb is not None:
        return (axis, *fa, *fb)
    pa, pb = a.periodic(), b.periodic()
    assert pa is not None and pb is not None, "a partial merge compares sizes with a periodic form"
    if pa[1] * pb[0] == pb[1] * pa[0]:  # one rate: the difference repeats with the common period
        span = lcm(pa[0], pb[0])
        return (axis, RESIDUES, -1, span, *(r for r in range(span) if at(pa, r) == at(pb, r)))
    top = _apart(pa, pb)
    return (axis, LISTED, -1, *(x for x in range(1, top + 1) if at(pa, x) == at(pb, x)))


def _apart(pa: Periodic, pb: Periodic) -> int:
    """Past this size two periodic sizes that grow at different rates differ for good: R·(X // P) + t[r]
    is (R/P)·X + e with e = t[r] − R·r/P, so they agree only where X = (e_b − e_a)/(rate_a − rate_b)."""

    def spread(form: Periodic) -> list[Fraction]:
        period, rise, table = form
        return [t - Fraction(rise * r, period) for r, t in enumerate(table)]

    gap = max(abs(eb - ea) for ea in spread(pa) for eb in spread(pb))
    return min(floor(gap / abs(Fraction(pa[1], pa[0]) - Fraction(pb[1], pb[0]))) + 1, 4 * MAX_PERIOD)


def _kind(c: Condition) -> int:
    """COMPARED (5 or 9 integers: two sizes compared), RESIDUES or LISTED (symbolic.Dim.periodic's)."""
    return c[1] if len(c) >= 3 and c[2] == -1 else COMPARED  # -1: never an m (5 integers) nor an a (9)


def sides(c: Condition) -> tuple[Side, Side]:
    """The two sizes a condition of five or nine integers compares, each as (k, a, m, c)."""
    if len(c) == 9:
        return (c[1], c[2], c[3], c[4]), (c[5], c[6], c[7], c[8])
    return _canonical_side(c[1], c[2]), _canonical_side(c[3], c[4])


def _canonical_side(a: int, m: int) -> Side:
    return (0, 0, 1, a) if m == 0 else (1, a, m, 0)


def holds(c: Condition, x: int) -> bool:
    kind = _kind(c)
    if kind == RESIDUES:
        return x % c[3] in c[4:]
    if kind == LISTED:
        return x in c[3:]
    (k1, a1, m1, c1), (k2, a2, m2, c2) = sides(c)
    return k1 * ((x + a1) // m1) + c1 == k2 * ((x + a2) // m2) + c2


def grows_alike(c: Condition) -> bool:
    """Both sides grow at one rate (k1/m1 = k2/m2): their difference repeats with period lcm(m1, m2)."""
    kind = _kind(c)
    if kind != COMPARED:
        return kind == RESIDUES
    (k1, _, m1, _), (k2, _, m2, _) = sides(c)
    return k1 * m2 == k2 * m1


def _period_of(c: Condition) -> int:
    kind = _kind(c)
    if kind != COMPARED:
        return c[3] if kind == RESIDUES else 1
    return lcm(*(side[2] for side in sides(c)))


def _constant(c: Condition) -> bool:
    """Both sides constant: a condition that holds everywhere or nowhere."""
    return _kind(c) == COMPARED and sides(c)[0][0] == sides(c)[1][0] == 0


def _parting(c: Condition) -> int:
    """Past this size two sides that grow at different rates differ for good: with r = k/m,
    k·floor((X + a)/m) + c lies in [r·(X + a − m + 1) + c, r·(X + a) + c], so the faster side exceeds
    the slower one once (r_fast − r_slow)·X > r_slow·a_slow + c_slow − r_fast·(a_fast − m_fast + 1) − c_fast."""
    if _kind(c) == LISTED:
        return max(c[3:], default=0)
    rated = sorted((Fraction(k, m), a, m, const) for k, a, m, const in sides(c))
    (r_slow, a_slow, _, c_slow), (r_fast, a_fast, m_fast, c_fast) = rated
    return floor((r_slow * a_slow + c_slow - r_fast * (a_fast - m_fast + 1) - c_fast) / (r_fast - r_slow))


@dataclass(frozen=True)
class Accepted:
    """The input sizes at which a set of outputs can be computed."""

    interval: Range = UNBOUNDED
    conditions: tuple[Condition, ...] = ()

    def _hi(self, axis: int) -> int:
        """The largest size this axis can accept: the interval's top, or lower where a merge compares
        sizes that grow apart (a constant beside a growing size, or different strides): those agree on
        a finite set only, below the bound worked out here."""
        hi = self.interval[axis + 2]
        for c in self.conditions:
            if c[0] == axis and not grows_alike(c):
                hi = min(hi, _parting(c))
        return max(hi, 0)

    def ok_axis(self, axis: int, x: int) -> bool:
        return self.interval[axis] <= x <= self.interval[axis + 2] and all(holds(c, x) for c in self.conditions if c[0] == axis)

    def ok(self, h: int, w: int) -> bool:
        return self.ok_axis(0, h) and self.ok_axis(1, w)

    def _period(self, axis: int) -> int:
        return min(MAX_PERIOD, lcm(1, *(_period_of(c) for c in self.conditions if c[0] == axis)))

    def first(self, axis: int) -> int:
        """The smallest accepted size on this axis, or NEVER."""
        lo, hi = self.interval[axis], self._hi(axis)
        top = hi if hi < self.interval[axis + 2] else min(hi, lo + self._period(axis) - 1)  # a finite set: scan it
        return next((x for x in range(lo, min(top, lo + 4 * MAX_PERIOD) + 1) if self.ok_axis(axis, x)), NEVER)

    def last(self, axis: int) -> int:
        """The largest accepted size on this axis, or NEVER when there is no largest."""
        lo, hi = self.interval[axis], self._hi(axis)
        if hi >= NEVER:
            return NEVER
        bottom = max(lo, hi - 4 * MAX_PERIOD) if hi < self.interval[axis + 2] else max(lo, hi - self._period(axis) + 1)
        return next((x for x in range(hi, bottom - 1, -1) if self.ok_axis(axis, x)), NEVER)

    @property
    def min_size(self) -> tuple[int, int]:
        return self.first(0), self.first(1)

    @property
    def max_size(self) -> tuple[int, int] | None:
        """None when there is no upper bound on either axis (else NEVER marks the unbounded axis)."""
        top = (self.last(0), self.last(1))
        return None if min(top) >= NEVER else top

    @property
    def empty(self) -> bool:
        return NEVER in self.min_size

    def sizes(self, axis: int, limit: int = 40) -> list[int] | None:
        """Every accepted size on this axis when they are few (a bounded interval), else None."""
        lo, hi = self.interval[axis], self._hi(axis)
        if hi >= NEVER or hi - lo > 4 * limit:
            return None
        found = [x for x in range(lo, hi + 1) if self.ok_axis(axis, x)]
        return found if len(found) <= limit else None

    def residues(self, axis: int) -> tuple[int, list[int]] | None:
        """(period p, accepted residues mod p) when this axis's conditions repeat with period p
        (each compares two sizes that grow alike: floor((X + a1)/m) vs floor((X + a2)/m), 2·floor(X/2) vs X);
        else None."""
        conds = [c for c in self.conditions if c[0] == axis]
        if not conds or any(not grows_alike(c) or _constant(c) for c in conds):
            return None
        period = self._period(axis)
        lo = self.first(axis)
        if lo >= NEVER:
            return None
        return period, sorted({x % period for x in range(lo, lo + period) if self.ok_axis(axis, x)})

    def _axis_text(self, axis: int, name: str) -> str:
        """The accepted sizes on one axis whose merges leave gaps: a list when short, else a residue class."""
        lo, hi = self.first(axis), self.last(axis)
        listed = self.sizes(axis)
        if listed is not None:
            return f"{name} in {{{', '.join(map(str, listed))}}}"
        classes = self.residues(axis)
        upto = "" if hi >= NEVER else f" to {hi}"
        if classes is not None:
            period, kept = classes
            if period == 2 and len(kept) == 1:
                return f"{'odd' if kept[0] else 'even'} {name} from {lo}{upto}"
            return f"{name} from {lo}{upto} with {name} mod {period} in {{{', '.join(map(str, kept))}}}"
        # sizes that grow apart agree on a finite set: list it (bounded by where they part for good)
        found = [x for x in range(lo, min(hi, lo + 4 * MAX_PERIOD) + 1) if self.ok_axis(axis, x)]
        if len(found) <= 40:
            return f"{name} in {{{', '.join(map(str, found))}}}"
        return f"{lo} <= {name} <= {found[-1]} where merged branches agree"  # pragma: no cover - huge strides

    def describe_axis(self, axis: int) -> str:
        """The accepted sizes on one axis: 'H >= 75', '223 <= H <= 254', 'odd H from 3', ..."""
        name = ("H", "W")[axis]
        lo, hi = self.first(axis), self.last(axis)
        gaps = any(c[0] == axis for c in self.conditions)
        listed = self.sizes(axis) if gaps else None
        if gaps and (listed is None or listed != list(range(listed[0], listed[-1] + 1))):
            return self._axis_text(axis, name)
        return f"{name} >= {lo}" if hi >= NEVER else f"{lo} <= {name} <= {hi}"

    def describe(self) -> str:
        """'75×75 and up', '223×223 to 254×254', or per axis when merges leave gaps ('odd H from 3')."""
        texts: list[str] = []
        intervals: list[tuple[int, int]] = []
        for axis, name in ((0, "H"), (1, "W")):
            lo, hi = self.first(axis), self.last(axis)
            gaps = any(c[0] == axis for c in self.conditions)
            listed = self.sizes(axis) if gaps else None
            if gaps and (listed is None or listed != list(range(listed[0], listed[-1] + 1))):
                texts.append(self._axis_text(axis, name))
            else:
                intervals.append((lo, hi))
                texts.append(f"{name} >= {lo}" if hi >= NEVER else f"{lo} <= {name} <= {hi}")
        if len(intervals) == 2:
            (lo_h, hi_h), (lo_w, hi_w) = intervals
            if max(hi_h, hi_w) >= NEVER and min(hi_h, hi_w) >= NEVER:
                return f"{lo_h}×{lo_w} and up"
            return f"{lo_h}×{lo_w} to {_inf(hi_h)}×{_inf(hi_w)}"
        return ", ".join(texts)

    def problem(self, h: int, w: int) -> str | None:
        """Why input size h×w is refused, or None when it is accepted."""
        if self.ok(h, w):
            return None
        lo_h, lo_w = self.min_size
        if h < lo_h or w < lo_w:
            return f"input size {h}×{w} is below the minimum {lo_h}×{lo_w}"
        top = self.max_size
        if top is not None and (h > top[0] or w > top[1]):
            return f"input size {h}×{w} is above the maximum {_inf(top[0])}×{_inf(top[1])}"
        return f"input size {h}×{w} is not one at which merged branches agree"

    def guard_args(self) -> tuple[object, ...]:
        """Extra arguments of runtime.check_input after the minimum: maximum and conditions, when any."""
        top = self.max_size
        if top is None and not self.conditions:
            return ()
        bound = (None, None) if top is None else tuple(v if v < NEVER else None for v in top)
        return bound + (([list(c) for c in self.conditions],) if self.conditions else ())  # lists: 5 or 9 integers


def _inf(v: int) -> str:
    return "∞" if v >= NEVER else str(v)
