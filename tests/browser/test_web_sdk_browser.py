"""The published web SDK in real Chromium against a live flagapp (issue 15, part 3).

A page on another origin (a second loopback port) runs ``@openfeature/web-sdk`` +
``@openfeature/ofrep-web-provider`` (pinned in ``tests/interop/node``, bundled with the
pinned esbuild; no CDN) against flagapp under uvicorn (ASGI, in this process so the test
database and the in-process notifier are shared) with:

* a client-side SDK key (OFREP only),
* CORS for the page's origin (``OFREP_CORS_ORIGINS``; the preflight and the ETag exposure
  are what the browser needs),
* the ``{% flagapp_bootstrap %}`` JSON rendered into the page: the first evaluation is
  served from it before any request,
* the bulk answer's ``eventStreams``: polling is off, so only the SSE stream can bring the
  change.

The flag is flipped through the services; the page must show the flip. The time from the
change to the page showing it is printed (``-s``; docs/interop.md quotes it). The wait is
bounded at 10 s as a liveness bound, not a performance assertion (benchmarks/ has those).
"""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.template import Context, Template
from django.test import RequestFactory

from flagapp import services
from flagapp.conf import settings as flagapp_settings
from flagapp.services import sdk_keys
from tests.flagapp.sdk_helpers import AsgiServer
from tests.interop.node_clients import bundle, node_available

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not node_available(), reason="node/npm not installed: no web SDK bundle"),
]

FLAG = "web.banner"
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>web sdk</title></head>
<body>
<p>banner: <span id="flag">(none)</span></p>
{bootstrap}
<script src="/bundle.js"></script>
<script>FlagappPage.start({config});</script>
</body></html>
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[str]:
    """A static server on another loopback port: the page's origin."""
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def world(transactional_db: Any) -> dict[str, Any]:
    env = services.create_environment(key="production", name="P", actor=None, reason="t")
    owner = Group.objects.create(name="web")
    flag = services.create_flag(
        key=FLAG, name="Banner", owner=owner, actor=None, reason="t", flag_type="ops"
    )
    services.update_flag_state(
        flag, env, enabled=True, fallthrough={"variant": "off"}, actor=None, reason="t"
    )
    _key, token = sdk_keys.create_sdk_key(
        env, name="web page", scope="client", actor=None, reason="tests"
    )
    return {"env": env, "flag": flag, "token": token}


def _bootstrap() -> str:
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    template = Template("{% load flagapp %}{% flagapp_bootstrap %}")
    return template.render(Context({"request": request}))


def test_web_sdk__flag_changed_through_services__page_on_other_origin_shows_the_flip(
    browser: Any,
    world: dict[str, Any],
    page_server: str,
    tmp_path: Path,
    settings: Any,
) -> None:
    import json

    settings.FLAGAPP = {
        **settings.FLAGAPP,
        "OFREP_CORS_ORIGINS": [page_server],
        "STREAM_HEARTBEAT_SECONDS": 60,  # only the notifier can bring the change in time
    }
    flagapp_settings.reload()
    bundle("web-page.js", tmp_path / "bundle.js")
    server = AsgiServer().start()
    try:
        config = {
            "baseUrl": server.url,
            "token": world["token"],
            "flagKey": FLAG,
            "context": {"targetingKey": "visitor-1"},
        }
        (tmp_path / "index.html").write_text(
            PAGE.format(bootstrap=_bootstrap(), config=json.dumps(config))
        )
        context = browser.new_context()
        page = context.new_page()
        stream_opened = threading.Event()
        page.on(
            "request",
            lambda r: stream_opened.set() if "/ofrep/v1/event-stream" in r.url else None,
        )
        page.goto(f"{page_server}/index.html")
        page.wait_for_function(
            "window.flagappPage && window.flagappPage.renders.some(r => r.source === 'ready')",
            timeout=10_000,
        )
        state = page.evaluate("window.flagappPage")
        # The first evaluation came from the bootstrap, before any OFREP request.
        assert state["renders"][0]["source"] == "bootstrap"
        assert state["renders"][0]["value"] is False
        assert state["ofrepRequestsBeforeFirstRender"] == 0
        assert state["errors"] == []
        assert page.text_content("#flag") == "false"
        deadline = time.monotonic() + 10
        while not stream_opened.is_set() and time.monotonic() < deadline:
            page.wait_for_timeout(50)
        assert stream_opened.is_set(), "the web provider did not open the eventStreams SSE"
        page.wait_for_timeout(300)  # the EventSource's connection is established

        started = time.monotonic()
        services.update_flag_state(
            world["flag"], world["env"], fallthrough={"variant": "on"}, actor=None, reason="go"
        )
        page.wait_for_function(
            "document.getElementById('flag').textContent === 'true'", timeout=10_000
        )
        elapsed = time.monotonic() - started
        print(f"\nweb SDK flip shown {elapsed * 1000:.0f} ms after the change (eventStreams)")
        renders = page.evaluate("window.flagappPage.renders")
        assert renders[-1] == {**renders[-1], "source": "changed", "value": True}
        context.close()
    finally:
        server.stop()
        flagapp_settings.reload()
