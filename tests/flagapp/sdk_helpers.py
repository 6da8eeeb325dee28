"""Fixtures shared by the SDK/OFREP/stream/events tests (not a test module).

Rulesets are installed straight into the per-process evaluation cache where a test is about
the HTTP surface; the end-to-end tests (test_provider_live*.py) go through the services.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from django.core.cache import caches

from flagapp import evaluation, sampling
from flagapp.sdk import keys
from flagapp.services import sdk_keys
from openfeature_provider.engine import Ruleset, parse_ruleset
from tests.flagapp.eval_helpers import flag_doc as _flag_doc
from tests.flagapp.eval_helpers import ruleset_doc as ruleset_doc

#: Fixtures, for ``from .sdk_helpers import *`` in the test modules.
__all__ = [
    "clean_sdk_state",
    "environments",
    "install_flags",
    "sdk_token",
    "staging_token",
]


def flag_doc(
    kind: str = "boolean", variants: Mapping[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """``eval_helpers.flag_doc`` with metadata version 3 (what these tests have always
    published); the document shape itself lives in one place."""
    kwargs.setdefault("metadata_version", 3)
    return _flag_doc(kind, variants, **kwargs)


#: One flag of every kind plus the awkward cases, used by the OFREP tests.
ALL_KINDS: dict[str, Any] = {
    "demo.bool": flag_doc(),
    "demo.string": flag_doc("string", {"a": "alpha", "b": "beta"}, fallthrough="b"),
    "demo.int": flag_doc("integer", {"small": 1, "big": 100}, fallthrough="big"),
    "demo.float": flag_doc("float", {"one": 1.0, "half": 0.5}, fallthrough="one"),
    "demo.object": flag_doc("object", {"cfg": {"limit": 3, "tags": ["x"]}}, fallthrough="cfg"),
    "demo.off": flag_doc(enabled=False),
    "demo.zero": flag_doc("integer", {"zero": 0}, fallthrough="zero"),
    "demo.gated": flag_doc(prerequisites=[{"flag": "demo.off", "variants": ["on"]}]),
    "demo.pro": flag_doc(
        rules=[
            {
                "id": "pro",
                "when": [{"attr": "plan", "op": "in", "values": ["pro"]}],
                "serve": {"variant": "on"},
            }
        ],
        fallthrough="off",
    ),
    "demo.split": flag_doc(
        fallthrough={
            "rollout": {
                "weights": [{"variant": "on", "weight": 1}, {"variant": "off", "weight": 1}]
            }
        }
    ),
    "demo.nodefault": flag_doc(
        rules=[
            {
                "id": "r",
                "when": [{"attr": "plan", "op": "eq", "values": ["x"]}],
                "serve": {"variant": "on"},
            }
        ],
        fallthrough=None,
    ),
}


@pytest.fixture(autouse=True)
def clean_sdk_state() -> Iterator[None]:
    """Cold caches, no buffered samples, before and after every test."""
    evaluation.clear_cache()
    caches["default"].clear()
    keys.clear_cache()
    sampling.reset()
    yield
    evaluation.clear_cache()
    caches["default"].clear()
    keys.clear_cache()
    sampling.reset()


@pytest.fixture
def install_flags() -> Callable[..., Ruleset]:
    def install(
        flags: Mapping[str, Any], *, environment: str = "production", version: int = 1
    ) -> Ruleset:
        ruleset = parse_ruleset(ruleset_doc(flags, environment=environment, version=version))
        evaluation.install(environment, ruleset)
        return ruleset

    return install


@pytest.fixture
def environments(db: Any) -> dict[str, Any]:
    from flagapp.models import Environment

    return {
        key: Environment.objects.get_or_create(key=key, defaults={"name": key.title()})[0]
        for key in ("production", "staging")
    }


@pytest.fixture
def sdk_token(environments: dict[str, Any]) -> str:
    _key, token = sdk_keys.create_sdk_key(
        environments["production"], name="tests", actor=None, reason="tests"
    )
    return token


@pytest.fixture
def staging_token(environments: dict[str, Any]) -> str:
    _key, token = sdk_keys.create_sdk_key(
        environments["staging"], name="tests", actor=None, reason="tests"
    )
    return token


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


class AsgiServer:
    """uvicorn serving this project's ASGI application on 127.0.0.1 in a thread."""

    def __init__(self) -> None:
        import socket
        import threading

        import uvicorn
        from django.core.asgi import get_asgi_application

        from flagapp.asgi import sdk_fast_path

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # The production shape (docs/deploy.md): SDK paths on the middleware-free handler.
        config = uvicorn.Config(
            sdk_fast_path(get_asgi_application()),
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> AsgiServer:
        import time

        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(5)
        self._sock.close()


@pytest.fixture
def asgi_server(transactional_db: Any) -> Iterator[AsgiServer]:
    """A real ASGI server (uvicorn) for the stream; data must be committed to be seen."""
    server = AsgiServer().start()
    yield server
    server.stop()


__all__ += ["asgi_server"]
