"""pytest glue for the ONNX backend node conformance suite.

* makes ``_cases`` importable whatever pytest's import mode is;
* tallies the outcomes of ``test_node_conformance.py`` per backend and prints,
  at the end of the run::

      conformance cpu: N passed of M (engine alone: K)

  where N counts passed + xpassed cases, M the cases run for that backend and
  K how many of those same cases the engine alone passes (``engine_<backend>.json``).
"""

from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _cases import BACKENDS, load_engine_results  # noqa: E402

_TEST_FILE = "test_node_conformance.py"
_PARAM_ID = re.compile(r"\[(?P<backend>[^-\]]+)-(?P<case>[^\]]+)\]$")

# backend -> outcome -> count, and backend -> case names seen
_outcomes: dict[str, Counter[str]] = defaultdict(Counter)
_seen: dict[str, set[str]] = defaultdict(set)


def _outcome(report: pytest.TestReport) -> str | None:
    """passed / xpassed / xfailed / failed / skipped, or None if not final yet."""
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if report.passed:
            return "xpassed" if xfail else "passed"
        if report.skipped:
            return "xfailed" if xfail else "skipped"
        return "failed"
    # setup / teardown: only failures and skips are final outcomes
    if report.failed:
        return "error"
    if report.when == "setup" and report.skipped:
        return "xfailed" if xfail else "skipped"
    return None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _TEST_FILE not in report.nodeid:
        return
    m = _PARAM_ID.search(report.nodeid)
    if m is None or m["backend"] not in BACKENDS:
        return
    outcome = _outcome(report)
    if outcome is None:
        return
    backend, case = m["backend"], m["case"]
    if report.when == "teardown" and case in _seen[backend]:
        # a teardown error after a recorded call outcome: count it once, as an error
        _outcomes[backend]["error"] += 1
        return
    _seen[backend].add(case)
    _outcomes[backend][outcome] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines: list[str] = []
    for backend in BACKENDS:
        counts = _outcomes.get(backend)
        if not counts:
            continue
        cases = _seen[backend]
        engine = load_engine_results(backend)
        n_pass = counts["passed"] + counts["xpassed"]
        k = sum(engine.get(c) == "pass" for c in cases)
        lines.append(f"conformance {backend}: {n_pass} passed of {len(cases)} (engine alone: {k})")
        detail = ", ".join(
            f"{counts[o]} {o}" for o in ("passed", "xpassed", "xfailed", "failed", "error", "skipped") if counts[o]
        )
        lines.append(f"    {detail}")
    if lines:
        terminalreporter.write_sep("=", "ONNX backend node conformance")
        for line in lines:
            terminalreporter.write_line(line)
