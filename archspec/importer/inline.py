"""A block used once is written in place (issue 26 §2: imported YAML reads like the zoo).

A module class the network holds once (torchvision's ASPP, its pooling branch, DeepLabV3's head) is
no repeated structure: the zoo writes it where it runs, under its module name, and so does the
import. The instance's body takes the instance's place and name (its list index where it has none,
`"0": [...]`), so every module keeps its path and a value read by name keeps its target; the body's
ops are written with their own values, which a block of one instance has as its defaults.

Only instances reached from the network (or an aux head) through parts written in place are
inlined: one inside a repeated block's body stays a block, as do the blocks whose template is more
than one instance's body (merged over optional parts, `if: $projection`), that count with other
blocks (`counter:`) or that hold a drop-path rate schedule.
"""

from __future__ import annotations

from archspec.importer.emit import Block, E


def _alone(block: Block) -> bool:
    return (
        len(block.instances) == 1
        and block.merged is None
        and not block.optional
        and not block.reps
        and block.counter is None
        and not block.rates
    )


def inline_once(trees: list[E], blocks: list[Block]) -> list[Block]:
    """Writes in place every instance of a block used once that the trees reach through parts written
    in place; returns the blocks still written as blocks."""
    inlined: set[int] = set()

    def visit(e: E) -> None:
        for k, x in enumerate(e.items):
            block = x.inst.block if x.kind == "inst" and x.inst is not None else None
            if x.inst is not None and block is not None and _alone(block):
                body = x.inst.body
                body.name = x.name or (str(k) if e.kind in ("list", "concat") else None)
                e.items[k] = x = body
                inlined.add(id(block))
            if x.kind != "inst":
                visit(x)

    for tree in trees:
        visit(tree)
    return [b for b in blocks if id(b) not in inlined]


__all__ = ["inline_once"]
