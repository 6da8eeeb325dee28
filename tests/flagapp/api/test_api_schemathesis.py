"""Property-based run of the management API against its own OpenAPI schema: no 5xx.

schemathesis generates requests (valid and invalid bodies, odd headers, random path keys)
for every operation of ``/api/schema/`` and sends them to the in-process WSGI app as a
superuser (token auth), so every code path past authentication is reachable. Half of the
path keys are replaced with keys that exist, so the generated bodies reach the services,
not only the 404 branch. Bounded: a few examples per operation, no shrinking.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from flagapp import services
from tests.flagapp.api_support import *  # noqa: F403 - fixtures
from tests.flagapp.api_support import write_headers

pytestmark = pytest.mark.django_db

_TOKEN_HEADER: dict[str, str] = {}
_KNOWN = {
    "key": ["checkout.new-flow", "staging", "beta"],
    "flag_key": ["checkout.new-flow"],
    "environment_key": ["staging", "production"],
    "id": ["1"],
}
_rng = random.Random(1234)
#: Examples per operation. Valid requests reach the services; invalid bodies probe the
#: parsing and validation layers. Invalid path/query/header values are left to the
#: regression tests below: generating them costs most of the time of a run.
_POSITIVE = 5
_NEGATIVE = 3


@pytest.fixture
def api_schema(db: Any, owner_group: Any, envs: Any) -> Iterator[Any]:
    import datetime as dt

    from django.contrib.auth.models import User

    from flagapp.api.tokens import create_api_token
    from flagapp.services.sdk_keys import create_sdk_key

    services.create_flag(
        key="checkout.new-flow",
        name="New checkout",
        owner=owner_group,
        expires_on=dt.date.today() + dt.timedelta(days=30),
        actor=None,
        reason="setup",
    )
    services.create_segment(key="beta", name="Beta", actor=None, reason="setup")
    create_sdk_key(envs["staging"], name="s", actor=None, reason="tests")
    admin = User.objects.create_superuser("fuzz", "fuzz@example.com", "x")
    _, token = create_api_token(admin, "fuzz")
    _TOKEN_HEADER["Authorization"] = f"Token {token}"
    # Like Django's test client: the WSGI handler must not close the test's connection
    # (it is inside the test transaction, so it looks "obsolete" on PostgreSQL).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi(
            "/api/schema/?format=json", WSGIHandler(), headers=_TOKEN_HEADER
        )
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _run_operation(operation: Any, mode: Any, examples: int, failures: list[str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        if case.path_parameters:
            for name, values in _KNOWN.items():
                if name in case.path_parameters and _rng.random() < 0.5:
                    case.path_parameters[name] = _rng.choice(values)
        response = case.call(headers=_TOKEN_HEADER)
        if response.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path} {mode.value} -> {response.status_code}: "
                f"body={case.body!r} query={case.query!r} headers={case.headers!r} "
                f"answer={response.text[:300]!r}"
            )

    with contextlib.suppress(Unsatisfiable):  # e.g. no invalid input exists for a body
        run()


def test_api_schema__generated_requests__never_5xx(api_schema: Any) -> None:
    """Every operation, valid and invalid inputs: a server error is a bug."""
    # Written as a plain test looping over the operations (schemathesis' pytest integration
    # does not support pytest 9 yet), one Hypothesis run per operation and mode.
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15  # the schema really lists the API
    for operation in operations:
        _run_operation(operation, GenerationMode.POSITIVE, _POSITIVE, failures)
        if operation.body:
            _run_operation(operation, GenerationMode.NEGATIVE, _NEGATIVE, failures)
    assert not failures, "\n".join(failures[:20])


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/sdk-keys/null/",
        "/api/v1/sdk-keys/false/revoke/",
        "/api/v1/rollouts/false/start/",
        "/api/v1/change-requests/1e-05/approve/",
        "/api/v1/flags/no.such-flag/environments/%C3%95/",
    ],
)
def test_api__non_integer_or_unknown_ids__404_not_500(admin_client: Any, path: str) -> None:
    """Found by the schemathesis run: ids that are not integers once reached int() in
    views (500); the router now refuses them."""
    assert admin_client.get(path).status_code in (404, 405)
    assert admin_client.post(path, **write_headers(1)).status_code in (404, 405)


def test_api__nul_characters_anywhere__400_not_500(admin_client: Any, api_flag: Any) -> None:
    """PostgreSQL cannot store NUL in text or JSON: every way in is a 400 field error."""
    api_flag()
    url = "/api/v1/flags/checkout.new-flow/environments/staging/"
    version = admin_client.get(url).json()["version"]
    nul_rule = [
        {"when": [{"attr": "a", "op": "eq", "values": ["x\x00"]}], "serve": {"variant": "on"}}
    ]
    cases = {
        "reason": admin_client.post(
            "/api/v1/segments/",
            {"key": "s", "name": "S"},
            format="json",
            **write_headers(reason="why\x00"),
        ),
        "rules": admin_client.patch(
            url, {"rules": nul_rule}, format="json", **write_headers(version)
        ),
        "name": admin_client.post(
            "/api/v1/segments/", {"key": "s", "name": "a\x00"}, format="json", **write_headers()
        ),
        "user": admin_client.get("/api/v1/history/?user=a%00b"),
        "tag": admin_client.get("/api/v1/flags/?tag=a%00b"),
    }
    for field, response in cases.items():
        assert response.status_code == 400, (field, response.content)
        assert field in response.json(), (field, response.json())
    assert admin_client.get("/api/v1/flags/?search=a%00b").status_code == 400
