"""What the two live Prometheus tests share: a real Prometheus scraping a live flagapp, the
guarded rollout they drive, and the controller loop that waits for its decisions.

``tests/flagapp/metrics/test_prometheus_live.py`` drives the rollout through the Python
provider, ``test_django_views_live.py`` through a Django app's own views; both start the same
plan (20 → 50 → 100 %, guardrails on the error rate and the p95 latency, read from
Prometheus), check it until it advances, degrade the treatment, check it until it rolls
back, and read the same evidence from its transitions. The fixtures (``prometheus_binary``,
``server_settings_lines``, ``flagapp_server``, ``prometheus``) are in this folder's
conftest.py.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

__all__ = ["SCRAPE_INTERVAL", "TOKEN", "Checks", "Prometheus", "guarded_plan", "verified_decisions"]

#: The bearer token the live server requires at /metrics, and Prometheus sends.
TOKEN = "scrape-" + uuid.uuid4().hex
SCRAPE_INTERVAL = "1s"

#: The rollout's guardrails: what a healthy treatment passes and a degraded one breaches.
GUARDRAILS: list[dict[str, Any]] = [
    {"metric": "error_rate", "threshold": 0.05, "min_sample": 60},
    {
        "metric": "latency",
        "event_key": "latency_ms",
        "percentile": 95,
        "threshold": 250,
        "min_sample": 60,
    },
]


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = httpx.post(f"{self.url}/api/v1/query", data={"query": promql}, timeout=5)
        body = response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None


def guarded_plan(flag: Any, environment: Any) -> Any:
    """The draft plan both tests start: 20 → 50 → 100 %, 3 s a step, Prometheus guardrails."""
    from flagapp.rollouts import controller

    return controller.create_plan(
        flag,
        environment,
        treatment="on",
        control="off",
        steps=[2000, 5000, 10000],
        min_step_seconds=3,
        metric_source="prometheus",
        notify_owners=False,
        guardrails=GUARDRAILS,
    )


@dataclass
class Checks:
    """``controller.run_check`` every 0.5 s; every outcome kept with its time since
    ``started`` (the failure message shows the last ones)."""

    plan: Any
    started: float = field(default_factory=time.monotonic)
    outcomes: list[tuple[float, str, str]] = field(default_factory=list)

    def until(self, action: str, within: float) -> float | None:
        """The monotonic time ``action`` was decided, or None after ``within`` seconds."""
        from flagapp.rollouts import controller

        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            outcome = controller.run_check(self.plan)
            self.outcomes.append((time.monotonic() - self.started, outcome.action, outcome.message))
            if outcome.action == action:
                return time.monotonic()
            time.sleep(0.5)
        return None


def verified_decisions(plan: Any, flag: Any, environment: Any) -> tuple[Any, Any]:
    """The plan's advance and rollback transitions, checked: it advanced on two passing
    guardrails, rolled back on its own, and the flag serves the control variant again."""
    plan.refresh_from_db()
    assert plan.state == "rolled_back"
    # The evidence of each decision is what Prometheus answered for the two guardrails.
    advance = plan.transitions.get(action="advance")
    assert [(r["label"], r["status"]) for r in advance.details["results"]] == [
        ("error_rate", "ok"),
        ("latency_ms_p95", "ok"),
    ], advance.details
    rollback = plan.transitions.get(action="rollback")
    assert rollback.automatic and rollback.reason.startswith("automatic rollback:"), rollback
    assert {r["status"] for r in rollback.details["results"]} & {"breach"}, rollback.details
    assert flag.states.get(environment=environment).fallthrough == {"variant": "off"}
    return advance, rollback
