"""Runs the pass pipeline: stages in order, switches honoured, a report entry per pass."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import onnx_ir as ir

from openatc.errors import OpenATCError
from openatc.graph import count_nodes
from openatc.types import STAGES, PassContext, PassSpec

__all__ = ["PassRecord", "order_passes", "run_passes"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassRecord:
    """One line of the pass report."""

    name: str
    stage: str
    nodes_before: int
    nodes_after: int
    modified: bool
    seconds: float
    hits: Mapping[str, int]

    def to_json(self, *, timings: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "stage": self.stage,
            "nodes_before": self.nodes_before,
            "nodes_after": self.nodes_after,
            "modified": self.modified,
            "hits": dict(self.hits),
        }
        if timings:
            data["seconds"] = round(self.seconds, 6)
        return data


def order_passes(specs: Iterable[PassSpec], disabled: frozenset[str] = frozenset()) -> list[PassSpec]:
    """Passes that will run, ordered by stage, then ``order``, then name."""
    chosen = [s for s in specs if s.default_on and not (s.switchable and s.name in disabled)]
    return sorted(chosen, key=lambda s: (STAGES.index(s.stage), s.order, s.name))


def run_passes(model: ir.Model, specs: Iterable[PassSpec], ctx: PassContext) -> list[PassRecord]:
    """Runs ``specs`` in order on ``model`` (in place) and returns the report."""
    report: list[PassRecord] = []
    for spec in specs:
        pass_ = spec.factory(ctx)
        before = count_nodes(model.graph)
        start = time.perf_counter()
        try:
            result = pass_(model)
        except OpenATCError:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OpenATCError(
                "E30001",
                f"pass '{spec.name}' ({spec.stage}) failed: {first}",
                hint="Run with --log=debug for the traceback and report the model.",
            ) from exc
        seconds = time.perf_counter() - start
        if result.model is not model:
            raise OpenATCError("E30001", f"pass '{spec.name}' returned a new model; passes must work in place")
        hits = dict(getattr(pass_, "hits", None) or {})
        record = PassRecord(
            spec.name, spec.stage, before, count_nodes(model.graph), bool(result.modified), seconds, hits
        )
        logger.info(
            "pass %-34s %-12s nodes %5d -> %5d  %8.2f ms%s",
            spec.name,
            spec.stage,
            record.nodes_before,
            record.nodes_after,
            seconds * 1e3,
            "" if record.modified else "  (no change)",
        )
        report.append(record)
    return report
