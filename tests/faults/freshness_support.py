"""Shared by the freshness and Redis fault tests: a change made by another process, and
the probe that says every worker serves it."""

from __future__ import annotations

from .helpers import ofrep_disabled, ruleset_enabled

KILL_SCRIPT = """
from flagapp import services
from flagapp.models import Environment, Flag
flag = Flag.objects.get(key="faults.kill-switch")
env = Environment.objects.get(key="production")
for i in range({n}):
    state = flag.states.get(environment=env)
    services.set_flag_enabled(flag, env, not state.enabled, expected_version=state.version,
                              actor=None, reason="manage.py toggle " + str(i))
state = flag.states.get(environment=env)
print("ENABLED", state.enabled)
"""


def all_disabled(base: str, headers: dict[str, str], probes: int = 4) -> bool:
    """Several requests (new connections: any worker may answer) all serve the change."""
    return all(
        ruleset_enabled(base, headers) is False and ofrep_disabled(base, headers)
        for _ in range(probes)
    )
