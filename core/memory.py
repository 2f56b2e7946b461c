"""Static memory reuse: one arena per gear, every intermediate tensor at an offset in it.

Liveness is computed on the graph's node order: a tensor lives from the node that produces it to
the last node that reads it (a read from inside a subgraph counts as a read by the node holding
the subgraph). Graph inputs, initializers and graph outputs are not intermediates: the caller owns
them. Offsets come from greedy placement, tried in several orders (by size as TensorFlow Lite's
planner does, by lifetime length, by first use) keeping the smallest arena; each tensor takes the
best-fitting gap among the tensors already placed whose lifetimes overlap its own. An order whose
arena is above the lower bound is repaired: the tensors placed above the bound go first and the
order is placed again (a few rounds, :func:`_repair`).

The lower bound is the largest total of simultaneously live bytes over all steps: no plan can use
less. Sizes are rounded up to :data:`ALIGNMENT` bytes for the plan and the bound alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import onnx_ir as ir

__all__ = ["ALIGNMENT", "MemoryPlan", "Tensor", "last_uses", "lifetimes", "plan_memory", "plan_tensors"]

#: Offsets and sizes are multiples of this (bytes): a cache line, enough for SIMD loads.
ALIGNMENT = 64


@dataclass(frozen=True)
class Tensor:
    """An intermediate tensor: name, bytes (aligned), first and last step it is live."""

    name: str
    size: int
    first: int
    last: int


@dataclass
class MemoryPlan:
    """The arena layout of one gear."""

    arena_bytes: int = 0
    intermediate_bytes: int = 0  # sum of all intermediate sizes: the memory without reuse
    lower_bound_bytes: int = 0  # largest total of simultaneously live bytes
    strategy: str = ""
    offsets: dict[str, int] = field(default_factory=dict)
    unplanned: list[str] = field(default_factory=list)  # intermediates without a static size

    @property
    def ratio(self) -> float:
        """arena / lower bound (1.0 is optimal)."""
        return self.arena_bytes / self.lower_bound_bytes if self.lower_bound_bytes else 1.0

    def to_json(self, *, offsets: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "arena_bytes": self.arena_bytes,
            "intermediate_bytes": self.intermediate_bytes,
            "lower_bound_bytes": self.lower_bound_bytes,
            "arena_over_lower_bound": round(self.ratio, 4),
            "planned_tensors": len(self.offsets),
            "unplanned_tensors": len(self.unplanned),
            "alignment": ALIGNMENT,
            "strategy": self.strategy,
        }
        if offsets:
            data["offsets"] = dict(sorted(self.offsets.items()))
        return data


def _aligned(nbytes: int) -> int:
    return -(-nbytes // ALIGNMENT) * ALIGNMENT


def _nbytes(value: ir.Value) -> int | None:
    if value.dtype is None or value.shape is None or not value.shape.is_static():
        return None
    try:
        itemsize = value.dtype.itemsize
    except (AttributeError, TypeError, ValueError):
        return None
    count = 1
    for d in value.shape:
        count *= int(d)
    return int(count * itemsize)


def _reads(node: ir.Node) -> Iterable[ir.Value]:
    """Values ``node`` reads, those read inside its subgraphs from enclosing scopes included."""
    yield from (v for v in node.inputs if v is not None)
    for attr in node.attributes.values():
        graphs = [attr.value] if attr.type == ir.AttributeType.GRAPH else []
        if attr.type == ir.AttributeType.GRAPHS:
            graphs = list(attr.value)
        for graph in graphs:
            for inner in ir.traversal.RecursiveGraphIterator(graph):
                yield from (v for v in inner.inputs if v is not None and v.graph is not inner.graph)


def last_uses(graph: ir.Graph) -> dict[str, int]:
    """Name of every value read by a node of ``graph`` -> index of the last node reading it."""
    last: dict[str, int] = {}
    for index, node in enumerate(graph):
        for value in _reads(node):
            if value.name:
                last[value.name] = index
    return last


def lifetimes(graph: ir.Graph) -> tuple[list[Tensor], list[str]]:
    """The intermediates of ``graph`` (node outputs that are not graph outputs) and the names of
    those without a static size."""
    last = last_uses(graph)
    tensors, unsized = [], []
    for index, node in enumerate(graph):
        for value in node.outputs:
            if not value.name or value.is_graph_output():
                continue
            size = _nbytes(value)
            if size is None:
                unsized.append(value.name)
                continue
            tensors.append(Tensor(value.name, _aligned(size), index, max(index, last.get(value.name, index))))
    return tensors, unsized


def _lower_bound(tensors: list[Tensor]) -> int:
    events: dict[int, int] = {}
    for t in tensors:
        events[t.first] = events.get(t.first, 0) + t.size
        events[t.last + 1] = events.get(t.last + 1, 0) - t.size
    live = best = 0
    for step in sorted(events):
        live += events[step]
        best = max(best, live)
    return best


def _place(order: list[Tensor]) -> tuple[int, dict[str, int]]:
    """Greedy best-fit placement in the given order; returns (arena bytes, offsets)."""
    placed: list[tuple[int, Tensor]] = []
    offsets: dict[str, int] = {}
    arena = 0
    for t in order:
        busy = sorted((o, o + p.size) for o, p in placed if p.first <= t.last and t.first <= p.last)
        best_offset, best_gap, cursor = None, None, 0
        for start, end in busy:
            gap = start - cursor
            if gap >= t.size and (best_gap is None or gap < best_gap):
                best_offset, best_gap = cursor, gap
            cursor = max(cursor, end)
        offset = best_offset if best_offset is not None else cursor
        placed.append((offset, t))
        offsets[t.name] = offset
        arena = max(arena, offset + t.size)
    return arena, offsets


def _live_per_step(tensors: list[Tensor]) -> list[int]:
    steps = max(t.last for t in tensors) + 2
    delta = [0] * steps
    for t in tensors:
        delta[t.first] += t.size
        delta[t.last + 1] -= t.size
    live, total = [], 0
    for d in delta:
        total += d
        live.append(total)
    return live


def _peak_first(tensors: list[Tensor]) -> list[Tensor]:
    """Tensors of the busiest steps first (the largest live total over the tensor's lifetime), long
    lifetimes before short ones there, then by size: the tensors that must fit exactly at a peak are
    placed before the ones around it fragment the space (it closes the gap greedy-by-size leaves on
    PP-OCR's detector)."""
    live = _live_per_step(tensors)
    peak = {t.name: max(live[t.first : t.last + 1]) for t in tensors}
    return sorted(tensors, key=lambda t: (-peak[t.name], -(t.last - t.first), -t.size, t.name))


_ORDERS = {
    "greedy_by_size": lambda t: (-t.size, t.first, t.name),
    "greedy_by_lifetime": lambda t: (-(t.last - t.first), -t.size, t.name),
    "greedy_by_first_use": lambda t: (t.first, -t.size, t.name),
    "greedy_by_size_x_lifetime": lambda t: (-t.size * (t.last - t.first + 1), t.name),
}


#: Placements tried per order by :func:`_repair` (the first included).
REPAIR_ROUNDS = 8


def _repair(order: list[Tensor], target: int) -> tuple[int, dict[str, int], int]:
    """Greedy placement in ``order``, then "squeaky wheel" rounds: the tensors placed above
    ``target`` (the lower bound) move to the front of the order, keeping their relative order, and
    everything is placed again; stops at ``target``, when the order no longer changes, or after
    :data:`REPAIR_ROUNDS` placements. Returns the best (arena, offsets) and the round it came from.

    It closes the gap residual chains leave: an Add's output cannot take the place of the input it
    reads, so consecutive residual tensors need two slots unless the large tensors of alternate
    blocks move aside (PP-OCR cls: 1.07x the bound from every order, 1.0 after three rounds).
    """
    best: tuple[int, dict[str, int], int] | None = None
    for round_ in range(REPAIR_ROUNDS):
        arena, offsets = _place(order)
        if best is None or arena < best[0]:
            best = (arena, offsets, round_)
        if arena <= target:
            break
        over = [t for t in order if offsets[t.name] + t.size > target]
        reordered = over + [t for t in order if offsets[t.name] + t.size <= target]
        if reordered == order:
            break
        order = reordered
    assert best is not None
    return best


def plan_tensors(tensors: list[Tensor], bound: int | None = None) -> tuple[int, dict[str, int], str]:
    """(arena bytes, offsets, strategy) for ``tensors``: each order of :data:`_ORDERS` and the
    peak-first order, repaired (:func:`_repair`), the smallest arena kept; stops at the lower
    ``bound`` (computed when not given)."""
    bound = _lower_bound(tensors) if bound is None else bound
    best: tuple[int, dict[str, int], str] | None = None
    orders = {name: (lambda key=key: sorted(tensors, key=key)) for name, key in _ORDERS.items()}
    orders["greedy_by_peak_then_lifetime"] = lambda: _peak_first(tensors)
    for name, order in orders.items():
        arena, offsets, round_ = _repair(order(), bound)
        if best is None or arena < best[0]:
            best = (arena, offsets, name if round_ == 0 else f"{name}+repair{round_}")
        if arena <= bound:
            break
    assert best is not None
    return best


def plan_memory(graph: ir.Graph) -> MemoryPlan:
    """Plans the arena of ``graph`` (main graph; subgraph values live in their own scopes)."""
    tensors, unsized = lifetimes(graph)
    plan = MemoryPlan(
        intermediate_bytes=sum(t.size for t in tensors),
        lower_bound_bytes=_lower_bound(tensors),
        unplanned=unsized,
    )
    if not tensors:
        plan.strategy = "none"
        return plan
    plan.arena_bytes, plan.offsets, plan.strategy = plan_tensors(tensors, plan.lower_bound_bytes)
    return plan
