"""Differential testing of archspec against the oracle, and a command-line runner.

Per case (a random spec from tests/fuzz/specgen.py with its independently worked-out truth):
``check``'s parameter count, MACs, output shapes and minimum input sizes against the truth;
``state_dict`` keys and shapes of the compiled model against the oracle's; eval outputs,
training outputs and the gradients of the input and of every parameter (float64), and
BatchNorm running statistics after a training step, compiled against oracle; the same for the
standalone file of ``archspec compile``; ``archspec.optimize``'s model against the oracle in eval
(float32, 1e-4 relative); the caller's input left untouched; and one accepted and one refused
input size other than the spec's. Each fault is reported with a category.

    python -m tests.fuzz.differential --cases 2000 --seed 1      # the long run
    python -m tests.fuzz.differential --seed 17 --cases 1 -v     # one case, its YAML
    python -m tests.fuzz.differential --enable relu_on_view      # turn a KNOWN_FAULTS switch back on
    python -m tests.fuzz.differential --outputs 1 --cases 500    # every spec names its outputs (if it can)

Each failure prints its category, the seed, and a minimised spec (YAML and overrides) that
still shows the fault.
"""

from __future__ import annotations

import argparse
import copy
import signal
import sys
import time
import types
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch

import archspec
from tests.fuzz import specgen
from tests.fuzz.oracle import Oracle
from tests.fuzz.specgen import (
    KNOWN_FAULTS,
    Chain,
    Concat,
    Gate,
    If,
    Invalid,
    Named,
    Op,
    Residual,
    Share,
    Spec,
    Take,
    Truth,
    Use,
    generate,
    realize,
    render,
)

RTOL64 = 1e-8
RTOL32 = 1e-4
CASE_SECONDS = 20.0  # a hang guard: a slower case is reported as a finding (category timeout)


@dataclass
class Finding:
    category: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.category}] {self.detail}"


class CaseTimeout(BaseException):  # not caught by the `except Exception` around each stage
    pass


def _backward(outputs: Any, w_out: dict[str, torch.Tensor]) -> None:
    """Back-propagate one fixed random weighting of every output (the same for the model and the oracle)."""
    values = _outputs(outputs)
    dtype = next(iter(values.values())).dtype
    sum(((v * w_out[k]).sum() for k, v in values.items()), torch.zeros((), dtype=dtype)).backward()


class _Noise:
    """How far the oracle's own gradients move when its input, or the weighting of its outputs, moves by one
    part in 10^15 (computed on first use): a chain of BatchNorms over a few values a channel (1×1 maps, a batch
    of 3) can make a float64 gradient chaotic (seed 4301773: the oracle against itself differed as much as
    archspec against the oracle); where a channel is exactly constant over the batch (x − relu6(x) of a positive
    value is 0 in every sample) each BatchNorm divides its gradient by √eps, and only the weighting's move shows
    it, the input's leaving those zeros exact (seed 63300765: five such BatchNorms). A difference within ten
    times that is rounding, not a fault."""

    def __init__(self, oracle: Oracle, x: torch.Tensor, w_out: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> None:
        self.oracle, self.x, self.w_out, self.state = oracle, x, w_out, state
        self.moved: dict[str, float] | None = None

    def of(self, name: str) -> float:
        if self.moved is None:
            self.moved = self._measure()
        return self.moved.get(name, 0.0)

    def _gradients(self, x: torch.Tensor, w_out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        oracle = self.oracle
        oracle.load_state_dict(self.state)
        oracle.train()
        for p in oracle.parameters():
            p.grad = None
        xi = x.clone().requires_grad_(True)
        _backward(oracle(xi), w_out)
        grads = {k: p.grad.clone() for k, p in oracle.named_parameters() if p.grad is not None}
        assert xi.grad is not None
        grads["input"] = xi.grad
        return grads

    def _measure(self) -> dict[str, float]:
        kept = {k: p.grad for k, p in self.oracle.named_parameters()}  # the gradients being compared
        moved = {
            k: w * (1 + 1e-15 * torch.rand(w.shape, generator=torch.Generator().manual_seed(0), dtype=w.dtype))
            for k, w in self.w_out.items()
        }
        a, b, c = (
            self._gradients(self.x, self.w_out),
            self._gradients(self.x * (1 + 1e-15), self.w_out),
            self._gradients(self.x, moved),
        )
        for k, p in self.oracle.named_parameters():
            p.grad = kept[k]
        return {k: max((a[k] - b[k]).abs().max().item(), (a[k] - c[k]).abs().max().item()) for k in a if k in b and k in c}


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float) -> tuple[bool, float]:
    if a.shape != b.shape:
        return False, float("inf")
    if a.numel() == 0:
        return True, 0.0
    err = (a.double() - b.double()).abs().max().item()
    scale = b.double().abs().max().item()
    return err <= rtol * (1.0 + scale), err


def _outputs(out: Any) -> dict[str, torch.Tensor]:
    return dict(out) if isinstance(out, dict) else {"logits": out}


def compare_outputs(got: Any, want: Any, rtol: float) -> str | None:
    g, w = _outputs(got), _outputs(want)
    if set(g) != set(w) or isinstance(got, dict) != isinstance(want, dict):
        return f"outputs {sorted(g)} (dict: {isinstance(got, dict)}), expected {sorted(w)} (dict: {isinstance(want, dict)})"
    for k in w:
        if not isinstance(g[k], torch.Tensor):
            return f"output {k} is a {type(g[k]).__name__}"
        ok, err = _close(g[k], w[k], rtol)
        if not ok:
            return f"output {k}: shape {tuple(g[k].shape)} vs {tuple(w[k].shape)}, max abs error {err:.3g}"
    return None


def _randomize(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Trained-like weights and BatchNorm statistics (so that BN is not the identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=gen, dtype=t.dtype) * 0.3)
            else:
                fan = t[0].numel() if t.dim() > 1 else 1
                t.copy_(torch.randn(t.shape, generator=gen, dtype=t.dtype) / max(1.0, fan) ** 0.5)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _has_dropout(truth: Truth) -> bool:
    return any(p.op in ("dropout", "drop_path") and p.params["p"] > 0 for p in truth.prims)


class Case:
    """One differential case; ``run`` returns its findings (empty: archspec agrees with the oracle)."""

    def __init__(
        self,
        spec: Spec,
        truth: Truth,
        seed: int,
        faults: set[str] | frozenset[str] = frozenset(KNOWN_FAULTS),
        codegen: bool = True,
        optimize: bool = True,
        sizes: bool = True,
    ) -> None:
        self.spec, self.truth, self.seed, self.faults = spec, truth, seed, set(faults)
        self.text = render(spec)
        self.overrides = dict(spec.overrides) or None
        self.do_codegen, self.do_optimize, self.do_sizes = codegen, optimize, sizes
        self.findings: list[Finding] = []

    def fail(self, category: str, detail: str) -> None:
        self.findings.append(Finding(category, detail))

    def run(self) -> list[Finding]:
        try:
            self._run()
        except CaseTimeout:
            self.fail("timeout", f"the case took more than {CASE_SECONDS:g} s")
        return self.findings

    # -- the comparisons
    def _run(self) -> None:
        truth = self.truth
        try:
            report = archspec.check(self.text, self.overrides)
        except archspec.SpecError as e:
            self.fail("refused-valid", f"check refuses a valid spec: {e}")
            return
        except Exception as e:  # noqa: BLE001 - any other exception is the finding
            self.fail("check-crash", f"{type(e).__name__}: {e}")
            return
        self.check_report(report)
        try:
            model = archspec.build(self.text, self.overrides)
        except Exception as e:  # noqa: BLE001
            self.fail("build-crash", f"{type(e).__name__}: {e}")
            return
        oracle = Oracle(truth)
        got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        want = {k: tuple(v.shape) for k, v in oracle.state_dict().items()}
        if got != want:
            missing = sorted(set(want) - set(got))[:4]
            extra = sorted(set(got) - set(want))[:4]
            shapes = sorted(k for k in set(got) & set(want) if got[k] != want[k])[:4]
            self.fail("state-dict", f"missing {missing}, unexpected {extra}, shapes differ {shapes}")
            return
        state = _randomize(model, self.seed)
        oracle.load_state_dict(state)
        model.double()
        oracle.double()
        h, w = truth.size
        gen = torch.Generator().manual_seed(self.seed)
        x = torch.randn(3, truth.channels, h, w, generator=gen, dtype=torch.float64)
        self.compare_model(model, oracle, x, "")
        if self.do_codegen:
            self.check_codegen(state, oracle, x)
        if self.do_optimize:
            self.check_optimize(state, oracle)
        if self.do_sizes:
            self.check_sizes(model, oracle, state)

    def check_report(self, report: Any) -> None:
        t = self.truth
        if report.params != t.params:
            self.fail("params", f"check says {report.params} parameters, expected {t.params}")
        if report.macs != t.macs:
            self.fail("macs", f"check says {report.macs} MACs, expected {t.macs}")
        if tuple(report.output_shape) != t.out_shape():
            self.fail("output-shape", f"check says {tuple(report.output_shape)}, expected {t.out_shape()}")
        h, w = t.size
        for name in t.outputs:
            if name in report.outputs and tuple(report.outputs[name].at(h, w)) != t.out_shape(name):
                self.fail("output-shape", f"{name}: check says {report.outputs[name].at(h, w)}, expected {t.out_shape(name)}")
        if set(report.outputs) != set(t.outputs):
            self.fail("output-shape", f"outputs {sorted(report.outputs)}, expected {sorted(t.outputs)}")
        rows = [(r.path, tuple(r.shape.at(h, w)), r.params) for r in report.rows]
        want = [(path, t.value_shape(v), n) for path, v, n in t.rows]
        if rows != want:
            pairs = zip(rows + [None] * len(want), want + [None] * len(rows), strict=True)
            got_row, want_row = next((a, b) for a, b in pairs if a != b)
            self.fail("rows", f"check's rows (path, shape, parameters) differ first at {got_row}, expected {want_row}")
        unread = [w.message for w in report.warnings if w.code == "unread"]
        if bool(unread) != bool(t.unread and not t.named):  # docs/errors.md, unread: said where no outputs: are written
            expected = f"ops left out {t.unread[:4]}" if t.unread else "none"
            self.fail("unread", f"check's unread warnings {unread[:2]}, expected {expected}")
        if tuple(report.min_input_size) != t.min_size:
            self.fail("min-size", f"check says minimum input {tuple(report.min_input_size)}, expected {t.min_size}")
        if tuple(report.train_min_input_size) != t.train_min_size:
            self.fail(
                "min-size", f"check says training minimum {tuple(report.train_min_input_size)}, expected {t.train_min_size}"
            )

    def compare_model(self, model: torch.nn.Module, oracle: Oracle, x: torch.Tensor, what: str) -> None:
        pre = what + "-" if what else ""
        self.check_frozen_and_rates(model, oracle, pre)
        oracle_state = {k: v.clone() for k, v in oracle.state_dict().items()}
        model_state = {k: v.clone() for k, v in model.state_dict().items()}
        if not self._compare_eval(model, oracle, x, pre):
            return
        # training mode: outputs, gradients, BatchNorm statistics
        model.train()
        oracle.train()
        xo = x.clone().requires_grad_(True)
        xc = x.clone().requires_grad_(True)
        want = oracle(xo)
        try:
            got = model(xc)
        except Exception as e:  # noqa: BLE001
            self.fail(pre + "train-crash", f"{type(e).__name__}: {e}")
            self._restore(model, oracle, model_state, oracle_state)
            return
        if not torch.equal(xc.detach(), x):
            self.fail(pre + "input-modified", "the model wrote into the caller's input tensor (training)")
        exact = not _has_dropout(self.truth)
        if exact:
            problem = compare_outputs(got, want, RTOL64)
            if problem:
                self.fail(pre + "train-mismatch", problem)
        gen = torch.Generator().manual_seed(self.seed + 1)
        w_out = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in _outputs(want).items()}
        _backward(want, w_out)
        try:
            if set(_outputs(got)) == set(w_out) and all(_outputs(got)[k].shape == w_out[k].shape for k in w_out):
                _backward(got, w_out)
            else:  # the outputs differ (reported above): the later checks start from the same state
                self._restore(model, oracle, model_state, oracle_state)
                return
        except Exception as e:  # noqa: BLE001
            self.fail(pre + "backward-crash", f"{type(e).__name__}: {e}")
            self._restore(model, oracle, model_state, oracle_state)
            return
        if exact:
            self._compare_statistics(model, oracle, pre)
            noise = _Noise(oracle, x, w_out, oracle_state)
            self._compare_gradients(model, oracle, [("input", xc.grad, xo.grad)], pre, noise)
        self._restore(model, oracle, model_state, oracle_state)

    def check_frozen_and_rates(self, model: torch.nn.Module, oracle: Oracle, pre: str) -> None:
        """frozen: the parameters that do not train are the oracle's; every dropout and drop_path module has the
        truth's rate at its path (a depth schedule's values are seen nowhere else: drop_path is the identity in
        eval mode, and a training step with a rate above 0 is random)."""
        got = sorted(k for k, p in model.named_parameters() if not p.requires_grad)
        want = sorted(k for k, p in oracle.named_parameters() if not p.requires_grad)
        if got != want:
            self.fail(pre + "frozen", f"parameters without requires_grad {got[:6]}, expected {want[:6]}")
        # every module archspec builds: a layer, a dropout or drop_path, an interpolate (seed 12000335: an
        # in-place concat's interpolate at `2` beside a dropout at `2`, which takes the free name `2_2`)
        kinds = (*specgen.STATEFUL, *specgen.TRAIN_MODULES, *specgen.STATELESS_MODULES)
        # a `share:`'s copy calls its original's layer; a dropout's copy is a module of its own, named apart
        originals = [p for p in self.truth.prims if p.shares is None]
        modules = [p.path for p in originals if p.op in kinds]
        for p in originals:
            if p.op not in specgen.TRAIN_MODULES or not p.path:  # at no path: archspec names the module itself
                continue
            if modules.count(p.path) > 1 or any(m.startswith(p.path + ".") or p.path.startswith(m + ".") for m in modules):
                continue  # its path is another module's too: archspec names it apart (the truth's dropout_module_clash)
            module: Any = model
            for part in p.path.split("."):
                module = module._modules.get(part) if module is not None else None
            rate = getattr(module, "p", None)
            if rate is None or abs(float(rate) - p.params["p"]) > 1e-12:
                self.fail(pre + "rate", f"{p.op} at {p.path!r}: rate {rate}, expected {p.params['p']}")
                return

    def _compare_eval(self, model: torch.nn.Module, oracle: Oracle, x: torch.Tensor, pre: str) -> bool:
        """Eval mode without autograd: in-place ops are allowed here, so aliasing shows as wrong values.
        False where the model crashed (nothing more to compare)."""
        model.eval()
        oracle.eval()
        xc = x.clone()
        with torch.no_grad():
            want = oracle(x)
            try:
                got = model(xc)
            except Exception as e:  # noqa: BLE001
                self.fail(pre + "eval-crash", f"{type(e).__name__}: {e}")
                return False
        if not torch.equal(xc, x):
            self.fail(pre + "input-modified", "the model wrote into the caller's input tensor (eval)")
        problem = compare_outputs(got, want, RTOL64)
        if problem:
            self.fail(pre + "eval-mismatch", problem)
        return True

    def _compare_gradients(self, model: torch.nn.Module, oracle: Oracle, grads: list[Any], pre: str, noise: _Noise) -> None:
        """The input's gradient (given) and each parameter's, against the oracle's; the first difference fails,
        unless the oracle's own gradient moves as much when the input moves by one part in 10^15."""
        mp = dict(model.named_parameters())
        grads += [(k, mp[k].grad if k in mp else None, p.grad) for k, p in oracle.named_parameters()]
        for name, g, want_g in grads:
            if (g is None) != (want_g is None):
                self.fail(
                    pre + "grad-mismatch",
                    f"gradient of {name}: {'none' if g is None else 'one'}, expected {'none' if want_g is None else 'one'}",
                )
                return
            if g is not None and want_g is not None:
                ok, err = _close(g, want_g, RTOL64)
                if not ok and err > 10 * noise.of(name):
                    self.fail(pre + "grad-mismatch", f"gradient of {name}: max abs error {err:.3g}")
                    return

    def _compare_statistics(self, model: torch.nn.Module, oracle: Oracle, pre: str) -> None:
        """BatchNorm's running statistics after the training step."""
        ms = model.state_dict()
        for k, v in oracle.state_dict().items():
            if "running" in k and not _close(ms[k], v, RTOL64)[0]:
                self.fail(pre + "bn-stats", f"{k} after one training step differs")
                return

    @staticmethod
    def _restore(model: torch.nn.Module, oracle: Oracle, ms: dict[str, torch.Tensor], os_: dict[str, torch.Tensor]) -> None:
        model.load_state_dict(ms)
        oracle.load_state_dict(os_)
        model.zero_grad(set_to_none=True)
        oracle.zero_grad(set_to_none=True)

    def check_codegen(self, state: dict[str, torch.Tensor], oracle: Oracle, x: torch.Tensor) -> None:
        from archspec.api import analyze
        from archspec.codegen import generate as codegen

        try:
            report = analyze(self.text, self.overrides)
            graph = report.graph
            source = codegen(graph, "case.yaml")
            module = types.ModuleType("archspec_fuzz_standalone")
            exec(compile(source, "<standalone>", "exec"), module.__dict__)  # noqa: S102 - the file under test
            from archspec.compile import class_name_of

            standalone = getattr(module, class_name_of(report.name))()
        except Exception as e:  # noqa: BLE001
            self.fail("codegen-crash", f"{type(e).__name__}: {e}")
            return
        try:
            standalone.load_state_dict(state)
        except Exception as e:  # noqa: BLE001
            self.fail("codegen-load", f"{type(e).__name__}: {str(e)[:300]}")
            return
        standalone.double()
        self.compare_model(standalone, oracle, x, "codegen")

    def check_optimize(self, state: dict[str, torch.Tensor], oracle: Oracle) -> None:
        try:
            model = archspec.build(self.text, self.overrides)
            model.load_state_dict(state)
            fast = archspec.optimize(model.eval())
        except Exception as e:  # noqa: BLE001
            self.fail("optimize-crash", f"{type(e).__name__}: {e}")
            return
        o32 = copy.deepcopy(oracle).float().eval()
        h, w = self.truth.size
        gen = torch.Generator().manual_seed(self.seed + 2)
        x = torch.randn(2, self.truth.channels, h, w, generator=gen)
        xc = x.clone()
        with torch.no_grad():
            want = o32(x)
            try:
                got = fast(xc)
            except Exception as e:  # noqa: BLE001
                self.fail("optimize-crash", f"forward: {type(e).__name__}: {e}")
                return
        if not torch.equal(xc, x):
            self.fail("optimize-input-modified", "the optimized model wrote into the caller's input")
        problem = compare_outputs(got, want, RTOL32)
        if problem:
            self.fail("optimize-mismatch", problem)

    def check_sizes(self, model: torch.nn.Module, oracle: Oracle, state: dict[str, torch.Tensor]) -> None:
        """One other accepted input size gives the oracle's logits; one refused size raises."""
        import random

        rng = random.Random(self.seed)
        t = self.truth
        model.eval()
        oracle.eval()
        sizes = [(h, w) for h in range(1, 49) for w in range(1, 49)]
        ok = [s for s in sizes if t.accepts(*s) and s != t.size]
        bad = [s for s in sizes if not t.accepts(*s)]
        for pick in [rng.choice(ok)] if ok else []:
            x = torch.randn(2, t.channels, *pick, dtype=torch.float64)
            with torch.no_grad():
                want = oracle(x)
                try:
                    got = model(x.clone())
                except Exception as e:  # noqa: BLE001
                    self.fail(
                        "size-refused",
                        f"input {pick[0]}×{pick[1]} is accepted but the model raises {type(e).__name__}: {str(e)[:200]}",
                    )
                    continue
            problem = compare_outputs(got, want, RTOL64)
            if problem:
                self.fail("size-mismatch", f"at input {pick[0]}×{pick[1]}: {problem}")
        for pick in [rng.choice(bad)] if bad else []:
            x = torch.randn(2, t.channels, *pick, dtype=torch.float64)
            with torch.no_grad():
                try:
                    model(x)
                except Exception:  # noqa: BLE001, S110 - a refusal is what we want
                    continue
            self.fail(
                "size-not-refused", f"input {pick[0]}×{pick[1]} is outside the accepted sizes but the model returns an output"
            )
        for pick in ([rng.choice(ok)] if ok else []) + ([rng.choice(bad)] if bad else []):
            self.check_at_size(pick)

    def check_at_size(self, size: tuple[int, int]) -> None:
        """`check --set input.size=[h,w]`: valid exactly when the truth of that spec is, with its shape."""
        spec = copy.deepcopy(self.spec)
        spec.overrides["input.size"] = list(size)
        try:
            truth: Truth | None = realize(spec, forbid=set(), lenient=True)
        except Invalid:
            truth = None
        try:
            report = archspec.check(self.text, spec.overrides)
        except archspec.SpecError as e:
            if truth is not None:
                self.fail("size-check-refused", f"check --set input.size={list(size)} refuses a valid size: {e}")
            return
        except Exception as e:  # noqa: BLE001
            self.fail("check-crash", f"at input.size={list(size)}: {type(e).__name__}: {e}")
            return
        if truth is None:
            self.fail(
                "size-check-not-refused",
                f"check --set input.size={list(size)} accepts a size the network "
                f"cannot take (output {tuple(report.output_shape)})",
            )
        elif tuple(report.output_shape) != truth.out_shape():
            self.fail(
                "output-shape",
                f"at input.size={list(size)}: check says {tuple(report.output_shape)}, expected {truth.out_shape()}",
            )


# ---- running cases ------------------------------------------------------------------------------


def _alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout()


def run_case(
    spec: Spec,
    truth: Truth,
    seed: int,
    faults: set[str] | frozenset[str] = frozenset(KNOWN_FAULTS),
    seconds: float = CASE_SECONDS,
    **checks: bool,
) -> list[Finding]:
    """The findings of one case, under a per-case time limit (SIGALRM, main thread only)."""
    use_alarm = hasattr(signal, "SIGALRM") and seconds > 0
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return Case(spec, truth, seed, faults, **checks).run()
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


# ---- minimising a failing case ------------------------------------------------------------------


def _slots(obj: Any) -> list[tuple[Any, Any]]:
    """Every (holder, key) where a node of the tree sits, in a fixed walk order."""
    out: list[tuple[Any, Any]] = []

    def walk(holder: Any, key: Any) -> None:
        n = holder[key] if isinstance(key, int) else getattr(holder, key)
        if n is None:
            return
        out.append((holder, key))
        if isinstance(n, Named):
            walk(n, "node")
        elif isinstance(n, Chain):
            for i in range(len(n.items)):
                walk(n.items, i)
        elif isinstance(n, Concat):
            for i in range(len(n.branches)):
                walk(n.branches, i)
        elif isinstance(n, Residual):
            walk(n, "body")
            walk(n, "shortcut")
        elif isinstance(n, If):
            walk(n, "then")
            walk(n, "other")
        elif isinstance(n, Gate):
            walk(n, "body")

    for i in range(len(obj.network.items)):
        walk(obj.network.items, i)
    for b in obj.blocks:
        walk(b, "body")
    for a in obj.aux:
        walk(a, "head")
    return out


def _get(holder: Any, key: Any) -> Any:
    return holder[key] if isinstance(key, int) else getattr(holder, key)


def _set(holder: Any, key: Any, value: Any) -> None:
    if isinstance(key, int):
        holder[key] = value
    else:
        setattr(holder, key, value)


def _without(seq: list[Any] | None, i: int) -> list[Any] | None:
    return None if seq is None else seq[:i] + seq[i + 1 :]


def _chain_edits(n: Chain) -> list[Any]:
    edits: list[Any] = [lambda m, i=i: m.items[i] for i in range(len(n.items))]
    if len(n.items) > 1:
        edits += [lambda m, i=i: Chain(_without(m.items, i), m.form, _without(m.names, i)) for i in range(len(n.items))]
    if n.form != "list":
        edits.append(lambda m: Chain([Named(k, v) for k, v in zip(m.names, m.items, strict=True)] if m.names else m.items))
    return edits


def _concat_edits(n: Concat) -> list[Any]:
    edits: list[Any] = [lambda m, i=i: m.branches[i] for i in range(len(n.branches))]
    if len(n.branches) > 1:
        edits += [lambda m, i=i: Concat(_without(m.branches, i), _without(m.names, i)) for i in range(len(n.branches))]
    return edits


def _op_edits(n: Op) -> list[Any]:
    required = {
        "conv": ("out",),
        "conv2d": ("out",),
        "std_conv2d": ("out",),  # the short form writes `out` first (seed 21100366's minimising crashed without it)
        "conv_transpose": ("out",),
        "linear": ("out",),
        "maxpool": ("kernel",),
        "avgpool": ("kernel",),
        "adaptive_avgpool": ("size",),
    }.get(n.name, ())
    edits: list[Any] = [
        lambda m, k=k: Op(m.name, {a: v for a, v in m.args.items() if a != k}, m.long, m.repeat, m.fixed, m.style)
        for k in n.args
        if k not in required
    ]
    if n.repeat is not None:
        edits.append(lambda m: Op(m.name, m.args, m.long, None, m.fixed, m.style))
    if n.long or n.fixed:
        edits.append(lambda m: Op(m.name, m.args, False, m.repeat, False, m.style))
    if n.name not in ("identity", "relu"):
        edits.append(lambda m: Op("identity"))
    return edits


_EDITS: dict[type, Any] = {
    Named: lambda n: [lambda m: m.node],
    Chain: _chain_edits,
    Concat: _concat_edits,
    Residual: lambda n: [
        lambda m: m.body,
        lambda m: m.shortcut,
        lambda m: Residual(m.body, None, m.scale, m.then),
        lambda m: Residual(m.body, m.shortcut, None, m.then),
        lambda m: Residual(m.body, m.shortcut, m.scale, None),
    ],
    If: lambda n: [lambda m: m.then, lambda m: m.other, lambda m: If(m.cond, m.then, None)],
    Op: _op_edits,
    Use: lambda n: [lambda m: Use(m.block, {}, m.long, m.repeat, m.style), lambda m: Use(m.block, m.args, m.long, None, m.style)],
    Gate: lambda n: [lambda m: Op("identity")],  # x · gate(x) → x
    Take: lambda n: [lambda m: Op("identity")],  # an earlier value → the current one
    Share: lambda n: [lambda m: Op("identity")],  # a part applied again → nothing
}


def _node_edits(n: Any) -> list[Any]:
    """Simpler nodes to put in n's place (functions of a copy of n; None: no such edit)."""
    return _EDITS[type(n)](n)


def _spec_edits(spec: Spec) -> list[Any]:
    """Simplifications of the spec around the network: aux heads, overrides, scale, defaults, items, blocks."""
    edits: list[Any] = [lambda s, i=i: s.aux.pop(i) for i in range(len(spec.aux))]
    edits += [lambda s, k=k: s.overrides.pop(k) for k in spec.overrides]
    edits += [lambda s, op=op: s.defaults.pop(op) for op in spec.defaults]
    edits += [lambda s, b=b: s.blocks.pop(b) for b in range(len(spec.blocks))]
    if spec.scale:
        edits.append(lambda s: setattr(s, "scale", {}))
    if len(spec.network.items) > 1:
        edits += [
            lambda s, i=i: setattr(
                s, "network", Chain(_without(s.network.items, i), s.network.form, _without(s.network.names, i))
            )
            for i in range(len(spec.network.items))
        ]
    if spec.network.form == "chain_map":
        edits.append(
            lambda s: setattr(s, "network", Chain([Named(k, v) for k, v in zip(s.network.names, s.network.items, strict=True)]))
        )
    if spec.channels != 1:
        edits.append(lambda s: setattr(s, "channels", 1))
    return edits + _issue30_edits(spec)


def _issue30_edits(spec: Spec) -> list[Any]:
    """Without frozen:, without the family (or the choice of a member), blocks neither inline nor counted together."""
    edits: list[Any] = []
    if spec.frozen is not None:
        edits.append(lambda s: setattr(s, "frozen", None))
    if spec.variants:
        edits.append(lambda s: (s.variants.clear(), setattr(s, "variant", None), s.overrides.pop("variant", None)))
    if spec.variant is not None:
        edits.append(lambda s: setattr(s, "variant", None))
    edits += [lambda s, i=i: setattr(s.blocks[i], "inline", False) for i, b in enumerate(spec.blocks) if b.inline]
    edits += [lambda s, i=i: setattr(s.blocks[i], "counter", None) for i, b in enumerate(spec.blocks) if b.counter]
    return edits


def _candidates(spec: Spec) -> list[Spec]:
    out: list[Spec] = []

    def variant(change: Any) -> None:
        s = copy.deepcopy(spec)
        try:
            if change(s) is not False:
                out.append(s)
        except (IndexError, KeyError, AttributeError, TypeError):
            pass

    for e in _spec_edits(spec):
        variant(e)
    for idx, (holder, key) in enumerate(_slots(spec)):
        for e in range(len(_node_edits(_get(holder, key)))):

            def edit(s: Spec, idx: int = idx, e: int = e) -> Any:
                h, k = _slots(s)[idx]
                new = _node_edits(_get(h, k))[e](_get(h, k))
                if new is None:
                    return False
                _set(h, k, new)
                return None

            variant(edit)
    return out


def minimize(
    spec: Spec, seed: int, category: str, faults: set[str] | frozenset[str], budget_s: float = 60.0
) -> tuple[Spec, Finding]:
    """Greedy shrinking: keep any simpler valid tree that still shows a fault of the same category."""
    best, finding = spec, None
    deadline = time.monotonic() + budget_s
    improved = True
    while improved and time.monotonic() < deadline:
        improved = False
        for cand in _candidates(best):
            if time.monotonic() > deadline:
                break
            try:
                truth = realize(cand, forbid=faults)
            except Invalid:
                continue
            except Exception:  # noqa: BLE001, S112 - an edit the tree cannot take
                continue
            found = [f for f in run_case(cand, truth, seed, faults) if f.category == category]
            if found and len(render(cand)) < len(render(best)) + (0 if cand.overrides == best.overrides else 1):
                best, finding, improved = cand, found[0], True
                break
    if finding is None:
        truth = realize(best, forbid=faults)
        finding = next(f for f in run_case(best, truth, seed, faults) if f.category == category)
    return best, finding


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz.differential", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0, help="first seed; case i uses seed+i")
    ap.add_argument("--size", type=int, default=1, choices=(0, 1, 2), help="network size: 0 small, 2 larger")
    ap.add_argument(
        "--outputs", type=float, default=None, metavar="P", help=f"draw outputs: with chance P (default {specgen.OUTPUTS_CHANCE})"
    )
    ap.add_argument(
        "--enable",
        action="append",
        default=[],
        metavar="SWITCH",
        help=f"draw a KNOWN_FAULTS construct again (any of: {', '.join(sorted(KNOWN_FAULTS))}; 'all')",
    )
    ap.add_argument("--timeout", type=float, default=CASE_SECONDS, help="seconds per case before it is a finding")
    ap.add_argument("--no-minimize", action="store_true")
    ap.add_argument("--max-failures", type=int, default=20, help="minimize at most this many (one per category)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every case's YAML")
    args = ap.parse_args(argv)
    if args.outputs is not None:  # other seeds then: each draw of the generator shifts the ones after it
        specgen.OUTPUTS_CHANCE = args.outputs
    torch.set_num_threads(1)
    # what cases import on first use, imported before any case's time limit is armed: an alarm inside a
    # module's first import (a busy machine) leaves it half-imported for every later case
    import sympy  # noqa: F401
    import torchvision.ops  # noqa: F401

    faults = set() if "all" in args.enable else set(KNOWN_FAULTS) - set(args.enable)
    start = time.monotonic()
    categories: Counter[str] = Counter()
    shown: set[str] = set()
    failed = 0
    for i in range(args.cases):
        seed = args.seed + i
        try:
            spec, truth = generate(seed, faults, args.size)
        except Exception as e:  # noqa: BLE001 - a bug of the tester itself: report it, go on
            failed += 1
            categories["tester-error"] += 1
            print(f"seed {seed}: tester-error: the generator raised {type(e).__name__}: {e}", flush=True)
            continue
        if args.verbose:
            print(f"--- seed {seed}\n{render(spec)}overrides: {spec.overrides}")
        findings = run_case(spec, truth, seed, faults, args.timeout)
        if (i + 1) % 500 == 0:
            print(
                f"... {i + 1} cases, {failed + bool(findings)} failed, {time.monotonic() - start:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        if not findings:
            continue
        failed += 1
        cats = sorted({f.category for f in findings})
        categories.update(cats)
        print(f"seed {seed}: {', '.join(cats)}", flush=True)
        new = [c for c in cats if c not in shown]
        if not new or len(shown) >= args.max_failures:
            continue
        cat = new[0]
        if args.no_minimize or cat == "timeout":
            small, small_findings = spec, findings
        else:
            small, _ = minimize(spec, seed, cat, faults)
            small_findings = run_case(small, realize(small, forbid=faults), seed, faults)
        shown.update(f.category for f in small_findings)
        shown.add(cat)
        print(
            f"\n=== {cat} (seed {seed})\n"
            + "\n".join(map(str, small_findings))
            + "\n--- minimal spec"
            + (f" with overrides {small.overrides}" if small.overrides else "")
            + f"\n{render(small)}",
            flush=True,
        )
    elapsed = time.monotonic() - start
    print(
        f"\n{args.cases} cases from seed {args.seed} in {elapsed:.1f} s ({args.cases / elapsed:.2f} cases/s); "
        f"{failed} failed; switched off: {', '.join(sorted(faults)) or 'none'}"
    )
    for cat, n in categories.most_common():
        print(f"  {cat}: {n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
