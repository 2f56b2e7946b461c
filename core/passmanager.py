"""Runs the pass pipeline: stages in order, switches honoured, a report entry per pass.

The canonicalize, fold and fuse stages run as one group, repeated (at most :data:`MAX_ROUNDS`
times) while a round still changes the graph: a fusion often exposes a no-op or a constant that
an earlier stage removes. The layout and memory stages run once, after the group.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import onnx_ir as ir

from openatc.errors import OpenATCError
from openatc.graph import count_nodes
from openatc.types import STAGES, PassContext, PassSpec

__all__ = [
    "MAX_ROUNDS",
    "PassRecord",
    "enabled_passes",
    "missed_fusions",
    "order_passes",
    "parse_fusion_switch_file",
    "run_passes",
]

logger = logging.getLogger(__name__)

#: Rounds of the canonicalize ▸ fold ▸ fuse group at most.
MAX_ROUNDS = 3
_REPEATED_STAGES = ("canonicalize", "fold", "fuse")


@dataclass(frozen=True)
class PassRecord:
    """One line of the pass report (over all rounds the pass ran in)."""

    name: str
    stage: str
    nodes_before: int
    nodes_after: int
    modified: bool
    seconds: float
    hits: Mapping[str, int]
    rounds: int = 1

    def to_json(self, *, timings: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "stage": self.stage,
            "nodes_before": self.nodes_before,
            "nodes_after": self.nodes_after,
            "modified": self.modified,
            "hits": dict(self.hits),
            "rounds": self.rounds,
        }
        if timings:
            data["seconds"] = round(self.seconds, 6)
        return data


# -- --fusion_switch_file ---------------------------------------------------------------------------
def parse_fusion_switch_file(path: Path) -> tuple[tuple[str, bool], ...]:
    """Reads ATC's fusion switch file: lines ``PassName:off`` / ``PassName:on`` (``#`` comments), or
    JSON ``{"Switch": {"GraphFusion": {"ALL": "off", "Pass": "on"}, "UBFusion": {...}}}``.

    Returns ``(name, on)`` pairs in file order (``ALL`` included); raises E10001 when malformed.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OpenATCError("E10001", f"--fusion_switch_file={path}: cannot read it ({exc})") from None
    hint = 'Write lines "PassName:off", or JSON {"Switch": {"GraphFusion": {"ALL": "off"}}}.'
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OpenATCError("E10001", f"--fusion_switch_file={path}: invalid JSON ({exc})", hint=hint) from None
        groups = data.get("Switch") if isinstance(data, dict) else None
        if not isinstance(groups, dict) or not all(isinstance(g, dict) for g in groups.values()):
            raise OpenATCError("E10001", f'--fusion_switch_file={path}: no "Switch" object of groups', hint=hint)
        items = [(str(k), v) for group in groups.values() for k, v in group.items()]
        return tuple(_switch(path, name, value, hint) for name, value in items)
    switches = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, value = line.rpartition(":")
        if not sep or not name.strip():
            raise OpenATCError(
                "E10001", f"--fusion_switch_file={path}, line {number}: '{raw.strip()}' is not 'Pass:on|off'", hint=hint
            )
        switches.append(_switch(path, name.strip(), value.strip(), hint))
    return tuple(switches)


def _switch(path: Path, name: str, value: object, hint: str) -> tuple[str, bool]:
    if not isinstance(value, str) or value.lower() not in ("on", "off"):
        raise OpenATCError(
            "E10001", f"--fusion_switch_file={path}: '{name}' is set to {value!r}, not on/off", hint=hint
        )
    return name, value.lower() == "on"


def enabled_passes(specs: Iterable[PassSpec], switches: Sequence[tuple[str, bool]] = ()) -> dict[str, bool]:
    """Whether each pass runs, given the switches (``ALL`` first, then names; later lines win).

    ``ALL:off`` turns every switchable pass off, ``ALL:on`` restores the defaults; a named pass may
    then be turned on or off. A name that is not a switchable pass raises E10001 listing them.
    """
    specs = list(specs)
    switchable = {s.name for s in specs if s.switchable}
    for name, _ in switches:
        if name != "ALL" and name not in switchable:
            fixed = " (it always runs)" if name in {s.name for s in specs} else ""
            raise OpenATCError(
                "E10001",
                f"--fusion_switch_file names '{name}', which is not a switchable pass{fixed}",
                hint="Switchable passes: " + ", ".join(sorted(switchable)) + " ('openatc plugins' lists them).",
            )
    state = {s.name: s.default_on for s in specs}
    for name, on in switches:
        if name == "ALL":
            for spec in specs:
                if spec.switchable:
                    state[spec.name] = spec.default_on if on else False
        else:
            state[name] = on
    return state


def order_passes(
    specs: Iterable[PassSpec],
    disabled: frozenset[str] = frozenset(),
    *,
    switches: Sequence[tuple[str, bool]] = (),
) -> list[PassSpec]:
    """Passes that will run, ordered by stage, then ``order``, then name.

    ``switches`` are the ``--fusion_switch_file`` entries (see :func:`enabled_passes`); ``disabled``
    names further switchable passes to leave out.
    """
    specs = list(specs)
    state = enabled_passes(specs, switches)
    chosen = [s for s in specs if state[s.name] and not (s.switchable and s.name in disabled)]
    return sorted(chosen, key=lambda s: (STAGES.index(s.stage), s.order, s.name))


# -- running ------------------------------------------------------------------------------------------
def _run_one(model: ir.Model, spec: PassSpec, ctx: PassContext, done: list[str], before: int) -> PassRecord:
    """Runs one pass; ``before`` is the graph's node count (the last pass's ``nodes_after``)."""
    pass_ = spec.factory(ctx)
    top_level = len(model.graph)
    start = time.perf_counter()
    try:
        result = pass_(model)
    except OpenATCError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        logger.debug("passes that ran before '%s': %s", spec.name, ", ".join(done) or "none")
        node = _failing_node(exc)
        at = f" at node '{node.name}' ({node.op_type})" if node is not None else ""
        raise OpenATCError(
            "E30001",
            f"pass '{spec.name}' ({spec.stage}) failed{at}: {first}",
            hint="Run with --log=debug for the traceback; turn the pass off with --fusion_switch_file "
            f"('{spec.name}:off') and report the model.",
        ) from exc
    seconds = time.perf_counter() - start
    if result.model is not model:
        raise OpenATCError("E30001", f"pass '{spec.name}' returned a new model; passes must work in place")
    done.append(spec.name)
    hits = {k: int(v) for k, v in (getattr(pass_, "hits", None) or {}).items()}
    # a pass that changed nothing left the count as it was (len is O(1); a full count walks every node)
    changed = result.modified or len(model.graph) != top_level
    after = count_nodes(model.graph) if changed else before
    return PassRecord(spec.name, spec.stage, before, after, bool(result.modified), seconds, hits)


def _failing_node(exc: BaseException) -> ir.Node | None:
    """The node a pass was working on when it raised: the innermost frame holding an ``ir.Node``
    in a local variable (passes iterate nodes; this names the culprit without their help)."""
    found = None
    tb = exc.__traceback__
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            if isinstance(value, ir.Node):
                found = value
                break
        tb = tb.tb_next
    return found


def _merge(old: PassRecord, new: PassRecord) -> PassRecord:
    hits = dict(old.hits)
    for key, value in new.hits.items():
        hits[key] = hits.get(key, 0) + value
    return replace(
        old,
        nodes_after=new.nodes_after,
        modified=old.modified or new.modified,
        seconds=old.seconds + new.seconds,
        hits=hits,
        rounds=old.rounds + 1,
    )


def run_passes(model: ir.Model, specs: Iterable[PassSpec], ctx: PassContext) -> list[PassRecord]:
    """Runs ``specs`` (ordered by :func:`order_passes`) on ``model`` in place; returns the report.

    The canonicalize/fold/fuse passes repeat as a group while a round changes the node count or
    reports rule hits (at most :data:`MAX_ROUNDS` rounds); the others run once. In a later round a
    pass is skipped when it changed nothing last time and no pass has changed the graph since
    (passes are deterministic functions of the graph).
    """
    specs = list(specs)
    repeated = [s for s in specs if s.stage in _REPEATED_STAGES]
    once = [s for s in specs if s.stage not in _REPEATED_STAGES]
    records: dict[str, PassRecord] = {}
    done: list[str] = []
    settled: set[str] = set()  # passes that changed nothing, with no pass changing the graph since
    nodes = count_nodes(model.graph)  # kept current: each record's nodes_after
    for round_ in range(MAX_ROUNDS):
        start_nodes = nodes
        progress = False
        for spec in repeated:
            if spec.name in settled:
                continue  # it would find what it found last time: nothing
            record = _run_one(model, spec, ctx, done, nodes)
            nodes = record.nodes_after
            progress = progress or (record.modified and any(record.hits.values()))
            records[spec.name] = _merge(records[spec.name], record) if spec.name in records else record
            if record.modified or record.nodes_after != record.nodes_before:
                settled.clear()
            else:
                settled.add(spec.name)
        if not repeated or (nodes == start_nodes and not progress):
            break
        logger.debug("pass round %d changed the graph; running the group again", round_ + 1)
    for spec in once:
        records[spec.name] = _run_one(model, spec, ctx, done, nodes)
        nodes = records[spec.name].nodes_after
    report = [records[s.name] for s in specs if s.name in records]
    for record in report:
        logger.info(
            "pass %-34s %-12s nodes %5d -> %5d  %8.2f ms%s%s",
            record.name,
            record.stage,
            record.nodes_before,
            record.nodes_after,
            record.seconds * 1e3,
            "" if record.modified else "  (no change)",
            "  hits " + json.dumps({k: v for k, v in record.hits.items() if v}) if any(record.hits.values()) else "",
        )
    return report


# -- expected but not applied -------------------------------------------------------------------------
def _producer_op(value: ir.Value | None) -> str | None:
    """The producer's op type (any domain: a backend's FusedMatMul counts as a MatMul here)."""
    node = value.producer() if value is not None else None
    return None if node is None else node.op_type.removeprefix("Fused")


def _consumer_ops(value: ir.Value) -> set[str]:
    return {use.node.op_type.removeprefix("Fused") for use in value.uses()}


def _missed_at(node: ir.Node) -> tuple[str, str] | None:
    """(fusion pass, why) when ``node`` starts a pattern some fusion pass rewrites."""
    if node.domain not in ("", "ai.onnx") or not node.outputs:
        return None
    op, out = node.op_type, node.outputs[0]
    if op == "BatchNormalization" and _producer_op(node.inputs[0]) in ("Conv", "ConvTranspose", "Gemm"):
        return "conv_bn_fusion", f"BatchNormalization after {_producer_op(node.inputs[0])}"
    if op in ("Identity", "Dropout"):
        return "noop_elimination", f"{op} left in the graph"
    if op == "Erf" and "Add" in _consumer_ops(out):
        return "gelu_fusion", "Erf followed by Add (GELU, erf form)"
    if op == "Tanh" and _producer_op(node.inputs[0]) == "Mul" and "Add" in _consumer_ops(out):
        return "gelu_fusion", "Tanh followed by Add (GELU, tanh form)"
    if op == "ReduceMean" and "Sub" in _consumer_ops(out):
        return "layer_norm_fusion", "ReduceMean then Sub (decomposed LayerNormalization)"
    if (
        op == "Softmax"
        and _producer_op(node.inputs[0]) in ("MatMul", "Div", "Mul", "Add", "Where")
        and ("MatMul" in _consumer_ops(out) or {"IsNaN", "Where"} <= _consumer_ops(out))
    ):
        return "attention_fusion", "MatMul, Softmax, MatMul (scaled dot-product attention)"
    if op == "Transpose" and _producer_op(node.inputs[0]) == "Transpose":
        return "shape_op_merge", "Transpose after Transpose"
    return None


def missed_fusions(model: ir.Model) -> list[dict[str, Any]]:
    """Patterns left in the optimized graph that a fusion pass exists for, with the reason to look.

    Recorded in the manifest per gear and logged at --log=info, so that a fusion that was expected
    from the model's pattern but did not fire (switched off, a check failed, the backend does not
    offer the fused op) is visible, not silent.
    """
    found = []
    for node in model.graph:
        missed = _missed_at(node)
        if missed is not None:
            found.append({"fusion": missed[0], "node": node.name or "", "why": missed[1]})
            logger.info("fusion not applied: %s at node '%s' (%s)", missed[0], node.name, missed[1])
    return found
