"""HTTP helpers of the fault tests: what an SDK, an OFREP client and an API author do."""

from __future__ import annotations

import secrets
import string
from typing import Any

import httpx

FLAG = "faults.kill-switch"
STATE_PATH = f"/api/v1/flags/{FLAG}/environments/production/"


def ruleset_enabled(base: str, headers: dict[str, str]) -> bool | None:
    """Whether /sdk/v1/ruleset serves the flag enabled (None: not a 200)."""
    r = httpx.get(base + "/sdk/v1/ruleset", headers=headers, timeout=10)
    if r.status_code != 200:
        return None
    return bool(r.json()["flags"][FLAG]["enabled"])


def ofrep(base: str, headers: dict[str, str], key: str = FLAG, timeout: float = 10) -> Any:
    return httpx.post(
        f"{base}/ofrep/v1/evaluate/flags/{key}",
        json={"context": {"targetingKey": "user-1"}},
        headers=headers,
        timeout=timeout,
    )


def ofrep_disabled(base: str, headers: dict[str, str]) -> bool:
    r = ofrep(base, headers)
    return r.status_code == 200 and r.json().get("reason") == "DISABLED"


def state(base: str, api_headers: dict[str, str]) -> dict[str, Any]:
    r = httpx.get(base + STATE_PATH, headers=api_headers, timeout=20)
    assert r.status_code == 200, r.text[:300]
    return dict(r.json())


def patch_state(
    base: str, api_headers: dict[str, str], version: int, body: dict[str, Any], reason: str
) -> Any:
    return httpx.patch(
        base + STATE_PATH,
        json=body,
        headers={**api_headers, "If-Match": f'"{version}"', "X-Change-Reason": reason},
        timeout=30,
    )


def unknown_sdk_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "fa_production_" + "".join(secrets.choice(alphabet) for _ in range(40))
