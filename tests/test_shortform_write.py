"""The short-form writer is the lexer's inverse: ``parse(write(p)) == p`` for every op and option the
fuzzer draws, with and without a spec's ``defaults:``, and with fields given as block parameters.

The truth is the lexer itself (archspec/language/shortform.py, the parser every spec goes through) and
the op's pydantic model; the ops and values come from the fuzzer's generator (tests/fuzz/specgen.py),
not from the writer."""

from __future__ import annotations

from typing import Any

import pytest

from archspec.language.overrides import _set_in_short
from archspec.language.resolve import resolve
from archspec.language.shortform import Scope, ShortForms
from archspec.ops import REGISTRY
from archspec.ops.write import LETTERS, value_text, write
from tests.fuzz import specgen

SEEDS = range(800)  # twice the generator's coverage test (tests/test_differential.py): fields drawn as plain values


def _drawn() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(op, its arguments, the spec's defaults for it) for every op the fuzzer draws with plain values."""
    out = []
    for seed in SEEDS:
        spec, _ = specgen.generate(seed)
        roots = [spec.network] + [b.body for b in spec.blocks] + [a.head for a in spec.aux]
        for root in roots:
            for n in specgen._walk(root):
                # a parameter, an expression, a schedule or a computed width is text the spec computes, not a value
                if isinstance(n, specgen.Op) and not any(isinstance(v, specgen.VALUES) for v in n.args.values()):
                    out.append((n.name, dict(n.args), dict(spec.defaults.get(n.name, {}))))
    return out


DRAWN = _drawn()


class _Lexer:
    """The real parser of short forms, on a one-op spec (no blocks): text → validated params."""

    def __init__(self) -> None:
        self.resolved = resolve({"archspec": 1, "name": "t", "input": {"channels": 3, "size": 8}, "network": ["relu"]})
        self.forms = ShortForms(self.resolved)

    def parse(self, text: str, defaults: dict[str, Any], env: dict[str, Any] | None = None) -> Any:
        ref = self.forms.parse(text, ("network", 0), Scope(self.resolved.source, env or {}), None)
        assert ref.repeat == 1 and not ref.fixed
        return REGISTRY[ref.name].Params.model_validate({**defaults, **ref.args})


@pytest.fixture(scope="module")
def lexer() -> _Lexer:
    return _Lexer()


def test_the_fuzzer_draws_every_standalone_op() -> None:
    drawn = {name for name, _, _ in DRAWN}
    assert drawn == {name for name, op in REGISTRY.items() if op.standalone}


def test_parse_of_write_is_the_identity(lexer: _Lexer) -> None:
    seen: set[tuple[str, str]] = set()
    for name, args, defaults in DRAWN:
        op = REGISTRY[name]
        p = op.Params.model_validate(args)
        for base in ({}, defaults):
            text = write(op, p, defaults=base)
            assert lexer.parse(text, base) == p, (name, args, base, text)
        seen.update((name, k) for k in [*args, *defaults])
    # every option the fuzzer knows (specgen.OPTIONS) went through the writer
    assert {(op, k) for op, keys in specgen.OPTIONS.items() for k in keys} <= seen


def test_fields_written_as_block_parameters_read_back(lexer: _Lexer) -> None:
    """``conv $out $k s$stride``: each positional, grid and letter field as a $param, its value the
    text the importer gives a block parameter."""
    checked = 0
    for name, args, _ in DRAWN:
        op = REGISTRY[name]
        p = op.Params.model_validate(args)
        fields = [f for f in (*op.positional, op.grid, *LETTERS) if f in args and f in op.Params.model_fields]
        for f in fields:
            v = getattr(p, f)
            if isinstance(v, str) or (isinstance(v, tuple) and len(v) != 2):
                continue  # groups=in, padding=same: flags, never a parameter; pad's four sides: no one number
            env_value = f"{v[0]}x{v[1]}" if f == op.grid else v[0] if isinstance(v, tuple) and v[0] == v[1] else v
            if isinstance(env_value, tuple):
                continue  # an asymmetric stride is no one number
            text = write(op, p, refs={f: "$x"})
            assert "$x" in text
            assert lexer.parse(text, {}, {"x": env_value}) == p, (name, args, f, text)
            checked += 1
    assert checked > 100


def test_merges_write_their_options(lexer: _Lexer) -> None:
    add = REGISTRY["add"]
    for scale in (1.0, 0.17, 0.1 + 0.2, 1e-06, 2.0):
        p = add.Params(scale=scale)
        text = write(add, p)
        key, _, value = text.partition(" ")[2].partition("=")
        assert (key == "scale" and float(value) == scale) or (not key and scale == 1.0)


def test_values_that_yaml_would_misread_are_written_readably() -> None:
    assert value_text(2.0) == "2"  # read back as 2, which a float field takes as 2.0
    assert value_text((1, 2)) == "[1,2]"  # one token
    assert value_text(0.1 + 0.2) == repr(0.1 + 0.2)  # exact
    assert value_text(True) == "true"


# ---- --set on a short form goes through the lexer's tokens ---------------------------------------
@pytest.mark.parametrize(
    ("text", "attr", "value", "expected"),
    [
        ("conv 64 3x3 s2", "out", 32, "conv 32 3x3 s2"),  # a positional number, in place
        ("channel_slice 0 4", "start", 2, "channel_slice 2 4"),
        ("conv 64 3x3 s2", "stride", 1, "conv 64 3x3 stride=1"),  # the letter token that set it goes
        ("conv 64 3x3 dw", "groups", 2, "conv 64 3x3 groups=2"),  # so does a flag that set it
        ("conv ${a + b} 3x3 * 2", "repeat", 3, "conv ${a + b} 3x3 * 3"),  # ${...} stays one token
        ("conv ${a + b} 3x3 *2", "eps", 0.001, "conv ${a + b} 3x3 eps=0.001 *2"),
        ("block k=${a * 2} * 2", "k", 4, "block k=4 * 2"),
        ("conv $out 3x3", "out", 16, "conv 16 3x3"),
    ],
)
def test_set_in_a_short_form(text: str, attr: str, value: Any, expected: str) -> None:
    assert _set_in_short(text, attr, value, f"network.0.{attr}") == expected
