"""Exact spatial sizes as functions of the input size.

Every conv/pool in floor mode maps ``floor((X + a) / m)`` to the same form, because for
integers b and m, s >= 1:  floor((floor((X + a)/m) + b)/s) = floor((X + a + b*m)/(m*s)).
So a feature map's height is two integers (a, m) — a canonical form: two sizes are equal for
every X exactly when their (a, m) are equal, and the size is >= 1 exactly when X >= m - a.
Constants (after a global or adaptive pool) have m == 0. Ceil-mode pooling keeps the form too:
PyTorch's size there is ceil((X + 2p - span)/s) + 1, less one when the last window would start in
the right padding, which is min(floor((X + 2p - span + 2s - 1)/s), ceil((X + p)/s)) (a window is
kept when it starts left of X + p; only the last can fail that), and the smaller of two floors
with one divisor is the floor with the smaller offset. (An opaque replay of PyTorch's formula,
compared and bounded numerically, remains for windows that a later rule finds non-canonical —
none is now — for a size after an upsampling by a factor (:class:`Scale`, floor(X · f)) and after a
transposed convolution of stride s > 1 (:class:`Stretch`, s·X + c), which the form cannot hold.)
Such a replay often has the form k·floor((X + a)/m) + c (:meth:`Dim.affine`): an upsampling by a whole
factor multiplies k and c, a window (or a factor p/q, as floor((k·v + c)·p/q)) divides them where its
stride (q) and k divide one another. Every replay whose factors are exact binary ratios p/q (1.5, 0.75:
:attr:`Scale.ratio`) has the wider form R·(X // P) + t[X mod P] (:meth:`Dim.periodic`): each step g
has g(y + P_g) = g(y) + R_g, so the size rises by R every P inputs (floor(1.5·floor(X/3)): P 6, R 3).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

SCAN_LIMIT = 4096  # sizes checked when a size has no canonical form
MAX_DENOMINATOR, MAX_NUMERATOR = 1 << 16, 1 << 20  # a factor p/q compared exactly (Scale.ratio)
MAX_PERIOD = 1 << 16  # the longest period of a size compared exactly (Dim.periodic)


@dataclass(frozen=True)
class Window:
    """One sliding-window op along one axis (conv or pool)."""

    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    ceil: bool = False

    def apply(self, x: int) -> int:
        """PyTorch's output size for input size x (may be <= 0 when x is too small)."""
        span = self.dilation * (self.kernel - 1) + 1
        num = x + 2 * self.padding - span
        if self.ceil:
            out = -(-num // self.stride) + 1
            if (out - 1) * self.stride >= x + self.padding:
                out -= 1
        else:
            out = num // self.stride + 1
        return out

    @property
    def offset(self) -> int:
        """b in floor((x + b)/s): the whole window op as one floor division."""
        span = self.dilation * (self.kernel - 1) + 1
        b = 2 * self.padding - span + self.stride
        if not self.ceil:
            return b
        # ceil mode: ceil((x + 2p - span)/s) + 1, or one less when the last window starts at or past x + p
        return min(b + self.stride - 1, self.padding + self.stride - 1)

    @property
    def canonical(self) -> bool:
        """Whether ``floor((x + offset)/stride)`` is this window's size for every x: always, ceil mode
        included (see the module's docstring; tests/test_shapes.py checks it against PyTorch)."""
        return True


@dataclass(frozen=True)
class Scale:
    """An interpolation by a factor along one axis: floor(x · factor), as torch's interpolate sizes its
    output from ``scale_factor`` (a product in double precision, rounded down)."""

    factor: float

    def apply(self, x: int) -> int:
        return math.floor(x * self.factor)

    @property
    def ratio(self) -> tuple[int, int] | None:
        """The factor as p/q in lowest terms where torch's floor(x · factor), a product in double precision,
        is floor(x · p/q) exactly for every size below 2³²: q a power of two up to 2¹⁶ and p below 2²⁰
        (1.5, 0.75, 2.5, 0.125 and every whole factor); None for the others (1.1, 1/3 are not such ratios
        in binary, and their products round)."""
        exact = Fraction(self.factor)  # a double is a ratio with a power-of-two denominator, exactly
        if exact.denominator > MAX_DENOMINATOR or exact.numerator >= MAX_NUMERATOR:
            return None
        return exact.numerator, exact.denominator

    def text(self, inner: str) -> str:
        f = self.factor
        return f"{int(f)}·{factor(inner)}" if f == int(f) else f"floor({factor(inner)}·{f:g})"


@dataclass(frozen=True)
class Stretch:
    """A transposed convolution along one axis: ``stride · x + offset`` (torch's ConvTranspose2d output,
    (x − 1)·s − 2p + d·(k − 1) + output_padding + 1)."""

    stride: int
    offset: int

    def apply(self, x: int) -> int:
        return self.stride * x + self.offset

    def text(self, inner: str) -> str:
        grown = f"{self.stride}·{factor(inner)}" if self.stride != 1 else inner
        c = self.offset
        return grown if c == 0 else f"{grown} + {c}" if c > 0 else f"{grown} - {-c}"


Step = Window | Scale | Stretch


@dataclass(frozen=True)
class Dim:
    """A spatial size: floor((X + a)/m) for m >= 1, the constant a for m == 0, or a replay."""

    a: int = 0
    m: int = 1
    base: Dim | None = None  # set for opaque sizes: the canonical size the replay starts from
    steps: tuple[Step, ...] = ()
    symbol: str = "H"
    ref: int | None = None  # the spec's input size on this axis: where a flatten fixes a varying size

    @staticmethod
    def const(value: int) -> Dim:
        return Dim(value, 0)

    @property
    def is_const(self) -> bool:
        return self.base is None and self.m == 0

    @property
    def is_canonical(self) -> bool:
        return self.base is None

    def __call__(self, x: int) -> int:
        """The size for input size x."""
        if self.base is not None:
            v = self.base(x)
            for w in self.steps:
                v = w.apply(v)
            return v
        if self.m == 0:
            return self.a
        return (x + self.a) // self.m

    def _then(self, step: Step) -> Dim:
        """This replay followed by ``step``, a stride-1 shift or a stretch folded into a last stretch
        (s·x + c then + b is s·x + c + b; s2·(s1·x + c1) + c2 is s1·s2·x + s2·c1 + c2): the same sizes."""
        last = self.steps[-1] if self.steps else None
        if isinstance(last, Stretch):
            if isinstance(step, Window) and step.stride == 1 and not step.ceil:
                step = Stretch(last.stride, last.offset + step.offset)
            elif isinstance(step, Stretch):
                step = Stretch(last.stride * step.stride, step.stride * last.offset + step.offset)
            if isinstance(step, Stretch):
                return Dim(base=self.base, steps=self.steps[:-1] + (step,), symbol=self.symbol, ref=self.ref)
        return Dim(base=self.base, steps=self.steps + (step,), symbol=self.symbol, ref=self.ref)

    def window(self, w: Window) -> Dim:
        if self.base is not None:
            # a size-keeping window (stride 1, floor((x + 0)/1)) leaves a replay as it is, so a gate's
            # body after an upsampling gives the record of its input (the spatial gate compares them)
            return self if w.stride == 1 and w.offset == 0 else self._then(w)
        if self.m == 0:
            return Dim.const(w.apply(self.a))
        if not w.canonical:
            return Dim(base=self, steps=(w,), symbol=self.symbol, ref=self.ref)
        return Dim(self.a + w.offset * self.m, self.m * w.stride, symbol=self.symbol, ref=self.ref)

    def scaled(self, f: float) -> Dim:
        """The size after an upsampling by ``f`` (floor(size · f)): a replay unless the size is constant."""
        if f == 1:
            return self
        if self.base is None and self.m == 0:
            return Dim.const(Scale(f).apply(self.a))
        if self.base is not None:
            return Dim(base=self.base, steps=self.steps + (Scale(f),), symbol=self.symbol, ref=self.ref)
        return Dim(base=self, steps=(Scale(f),), symbol=self.symbol, ref=self.ref)

    def stretched(self, stride: int, offset: int) -> Dim:
        """The size after a transposed convolution, ``stride · size + offset``: canonical at stride 1
        (floor((X + a)/m) + c = floor((X + a + c·m)/m)) and for a constant, else a replay."""
        if self.base is None and self.m == 0:
            return Dim.const(stride * self.a + offset)
        if self.base is None and stride == 1:
            return Dim(self.a + offset * self.m, self.m, symbol=self.symbol, ref=self.ref)
        step = Stretch(stride, offset)
        if self.base is not None:
            return self._then(step)
        return Dim(base=self, steps=(step,), symbol=self.symbol, ref=self.ref)

    def affine(self) -> Affine | None:
        """This size as k·floor((X + a)/m) + c for every X, normalised (0 <= a < m; a constant has k = 0),
        or None where it has no such form (a non-integer factor; a window whose stride and the factor
        before it do not divide one another). Sizes of this form compare exactly; two of them grow alike
        when k1/m1 = k2/m2, and then their difference repeats with period lcm(m1, m2):
        2·floor(X/2) (a ×2 upsampling of a map pooled /2) agrees with X where X is even."""
        if self.base is None:
            return (0, 0, 1, self.a) if self.m == 0 else _normal(1, self.a, self.m, 0)
        form = self.base.affine()
        for step in self.steps:
            if form is None:
                return None
            form = _affine_step(form, step)
        return form

    def periodic(self) -> Periodic | None:
        """This size as R·(X // P) + t[X mod P] for every X (P, R and the table t), or None where the
        sizes after a factor that is not an exact ratio (:attr:`Scale.ratio`) have no such form, or its
        period would pass :data:`MAX_PERIOD`. Every size has it otherwise, the forms :meth:`affine` cannot
        hold too (floor(1.5·floor(X/3)), period 6): each step g has g(y + P_g) = g(y) + R_g (a window:
        its stride and 1; a factor p/q: q and p; a transposed conv: 1 and its stride), so the sizes
        advance by R every P inputs."""
        if self.base is None and self.m == 0:
            return (1, 0, (self.a,))
        period, rise = (self.m, 1) if self.base is None else (self.base.m, 1) if self.base.m else (1, 0)
        for step in self.steps:
            moves = _moves(step)
            if moves is None:
                return None
            p_step, r_step = moves
            n = p_step // math.gcd(rise, p_step)  # n·rise: a whole number of the step's periods
            period, rise = n * period, n * rise // p_step * r_step
            if period > MAX_PERIOD:
                return None
        start = period * max(1, -(-self.min_input() // period))  # a period of valid sizes
        if start >= _NEVER:
            return None
        table = tuple(self(x) - rise * (x // period) for x in sorted(range(start, start + period), key=lambda x: x % period))
        return period, rise, table

    def min_input(self) -> int:
        """Smallest input size for which this size is >= 1 (sizes grow with the input)."""
        if self.base is None:
            if self.m == 0:
                return 1 if self.a >= 1 else _NEVER
            return max(1, self.m - self.a)
        return _scan_min(self)

    def input_range(self, value: int) -> tuple[int, int]:
        """The input sizes [lo, hi] at which this size equals ``value`` (empty when lo > hi).

        Sizes never shrink as the input grows, so the set is an interval: exact for canonical
        forms (floor((X + a)/m) == v  <=>  v·m - a <= X <= (v + 1)·m - a - 1), scanned for replays.
        """
        if self.base is None:
            if self.m == 0:
                return (1, NEVER) if self.a == value else (NEVER, 0)
            return max(1, value * self.m - self.a), (value + 1) * self.m - self.a - 1
        hits = [x for x in range(1, SCAN_LIMIT + 1) if self(x) == value]
        return (hits[0], hits[-1]) if hits else (NEVER, 0)

    def equals(self, other: Dim, lo: int = 1) -> tuple[bool, bool]:
        """(equal, proven). Canonical forms compare exactly; replays on every size up to SCAN_LIMIT
        (one replay compared with itself is equal by construction)."""
        if self == other:
            return True, True
        if self.base is None and other.base is None:
            return (self.a, self.m) == (other.a, other.m), True
        mine, theirs = self.affine(), other.affine()
        if mine is not None and theirs is not None:  # normalised forms are equal exactly when the sizes are
            return mine == theirs, True
        cycle, other_cycle = self.periodic(), other.periodic()
        if cycle is not None and other_cycle is not None:  # equal rates and equal over a common period
            start, span = max(lo, 1), math.lcm(cycle[0], other_cycle[0])
            same = cycle[1] * other_cycle[0] == other_cycle[1] * cycle[0]
            return same and all(at(cycle, x) == at(other_cycle, x) for x in range(start, start + span)), True
        start = max(lo, self.min_input(), other.min_input())
        return all(self(x) == other(x) for x in range(start, SCAN_LIMIT + 1)), False

    def __str__(self) -> str:
        return self.formula()

    def formula(self) -> str:
        if self.base is not None:
            inner = self.base.formula()
            for w in self.steps:
                inner = _window_text(w, inner) if isinstance(w, Window) else w.text(inner)
            return inner
        if self.m == 0:
            return str(self.a)
        x = self.symbol
        num = x if self.a == 0 else f"{x} + {self.a}" if self.a > 0 else f"{x} - {-self.a}"
        if self.m == 1:
            return num
        return f"floor({num}/{self.m})" if self.a == 0 else f"floor(({num})/{self.m})"

    def sympy(self):  # type: ignore[no-untyped-def]
        """The size as a sympy expression of the input symbol (for people to read and manipulate)."""
        import sympy

        x = sympy.Symbol(self.symbol, integer=True, positive=True)
        if self.base is None:
            if self.m == 0:
                return sympy.Integer(self.a)
            return sympy.floor((x + self.a) / sympy.Integer(self.m))
        e = self.base.sympy()
        for w in self.steps:
            if isinstance(w, Scale):
                e = sympy.floor(e * sympy.nsimplify(w.factor))
                continue
            if isinstance(w, Stretch):
                e = w.stride * e + w.offset
                continue
            span = w.dilation * (w.kernel - 1) + 1
            num = e + 2 * w.padding - span
            out = sympy.ceiling(num / w.stride) + 1
            e = sympy.Piecewise((out - 1, (out - 1) * w.stride >= e + w.padding), (out, True))
        return e


_NEVER = 1 << 30

Affine = tuple[int, int, int, int]  # (k, a, m, c): k·floor((X + a)/m) + c
Periodic = tuple[int, int, tuple[int, ...]]  # (P, R, t): R·(X // P) + t[X mod P]


def _moves(step: Step) -> tuple[int, int] | None:
    """(P, R) with step(y + P) = step(y) + R for every y; None for a factor that is not an exact ratio."""
    if isinstance(step, Window):
        return step.stride, 1
    if isinstance(step, Stretch):
        return 1, step.stride
    ratio = step.ratio
    return None if ratio is None else (ratio[1], ratio[0])


def at(form: Periodic, x: int) -> int:
    """The size a periodic form gives at input size ``x``."""
    period, rise, table = form
    return rise * (x // period) + table[x % period]


def _normal(k: int, a: int, m: int, c: int) -> Affine:
    """The one way of writing k·floor((X + a)/m) + c with 0 <= a < m (k = 0: the constant c):
    floor((X + a)/m) = floor((X + a mod m)/m) + a div m."""
    if k == 0:
        return (0, 0, 1, c)
    return (k, a % m, m, c + k * (a // m))


def _affine_step(form: Affine, step: Step) -> Affine | None:
    """k·v + c (v = floor((X + a)/m)) after one more step, or None where the result has no such form."""
    k, a, m, c = form
    if isinstance(step, Scale):  # floor((k·v + c)·p/q) = floor((p·k·v + p·c)/q): a window of stride q
        ratio = step.ratio
        if ratio is None:
            return None
        p, q = ratio
        return _divided(k * p, a, m, c * p, q)
    if isinstance(step, Stretch):
        return _normal(k * step.stride, a, m, step.stride * c + step.offset)
    return _divided(k, a, m, c + step.offset, step.stride)


def _divided(k: int, a: int, m: int, d: int, s: int) -> Affine | None:
    """floor((k·v + d)/s) for v = floor((X + a)/m), where it has the form: s and k divide one another."""
    if k % s == 0:  # s divides k: (k/s)·v + floor(d/s)
        return _normal(k // s, a, m, d // s)
    if s % k == 0:  # k divides s: floor((v + floor(d/k))/(s/k)) = floor((X + a + floor(d/k)·m)/(m·s/k))
        return _normal(1, a + (d // k) * m, m * (s // k), 0)
    return None


def _window_text(w: Window, inner: str) -> str:
    """A window op over a size written as a formula: floor((inner + b)/s), or PyTorch's ceil-mode rule by name."""
    if w.ceil:
        return f"ceilpool({inner}; k{w.kernel} s{w.stride} p{w.padding})"
    b = w.offset
    num = inner if b == 0 else f"{inner} + {b}" if b > 0 else f"{inner} - {-b}"
    return num if w.stride == 1 else f"floor(({num})/{w.stride})"


@lru_cache(maxsize=1024)
def _scan_min(d: Dim) -> int:
    # Sizes are non-decreasing in the input, so the first x with d(x) >= 1 is the minimum.
    lo, hi = 1, SCAN_LIMIT
    if d(hi) < 1:
        return _NEVER
    while lo < hi:
        mid = (lo + hi) // 2
        if d(mid) >= 1:
            hi = mid
        else:
            lo = mid + 1
    return lo


NEVER = _NEVER


@dataclass(frozen=True)
class Shape:
    """A tensor's shape without the batch: C×H×W for feature maps, (C,) for vectors.

    ``flat`` marks a vector made by flattening a map whose spatial size is not constant: it holds
    that map's (height, width), whose values at the spec's input size fixed ``channels``; the
    network then accepts only input sizes at which they keep those values.
    """

    channels: int
    height: Dim | None = None
    width: Dim | None = None
    flat: tuple[Dim, Dim] | None = None

    @property
    def is_map(self) -> bool:
        return self.height is not None

    @property
    def per_channel(self) -> bool:
        """C×1×1 whatever the input size: one value per channel, as a gate gives (squeeze-and-excitation)."""
        return (
            self.height is not None
            and self.width is not None
            and self.height.is_const
            and self.width.is_const
            and self.height(0) == self.width(0) == 1
        )

    def at(self, h: int, w: int) -> tuple[int, ...]:
        if self.height is None or self.width is None:
            return (self.channels,)
        return (self.channels, self.height(h), self.width(w))

    def text(self, h: int, w: int) -> str:
        return "×".join(str(v) for v in self.at(h, w))

    def formula(self) -> str:
        if self.height is None or self.width is None:
            if self.flat is not None:
                h, w = self.flat
                fixed = f"{h(h.ref or 0)}×{w(w.ref or 0)}"
                return f"{self.channels} (a flattened map of {h.formula()}×{w.formula()}, fixed at {fixed})"
            return str(self.channels)
        return f"{self.channels}×{factor(self.height.formula())}×{factor(self.width.formula())}"


def factor(formula: str) -> str:
    """A size formula as a factor of a product: 'H - 2' needs parentheses (32×(H - 2)), 'floor((H - 1)/2)' does not."""
    return formula if " " not in formula or re.fullmatch(r"\w+\(.*\)", formula) else f"({formula})"
