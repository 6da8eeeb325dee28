"""What every browser test shares: launching Debian's Chromium, logging in, screenshots and
the accessibility check.

Accessibility: :func:`check_accessibility` runs axe-core — the npm package pinned by
``tests/browser/package.json`` and its lockfile, installed by ``.ci/run`` with ``npm ci``
(or here, on first use, when npm is present) and injected from ``node_modules``, never a
CDN — on the page as it is, and fails on any *serious* or *critical* violation. Pages
opened through :func:`login` are tracked: every admin page they load must have been checked
before the test ends (the ``browser`` fixture's teardown asserts it), so a test cannot visit
a page without checking it. A page of a context without JavaScript is checked in a twin
context with JavaScript (axe is JavaScript) rendering the very HTML the page received, with
the page's own scripts blocked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("FLAGAPP_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = HERE.parents[1] / "test-artifacts"
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
#: axe impacts that fail a test (minor and moderate ones are reported in the failure text of
#: the blocking ones only).
BLOCKING = ("serious", "critical")
#: WCAG 2.1 A and AA, plus axe's best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]

_install_lock = threading.Lock()


def axe_source() -> str:
    """axe.min.js from ``tests/browser/node_modules`` (``npm ci`` of the lockfile if absent)."""
    with _install_lock:
        if not AXE.exists():
            if shutil.which("npm") is None:
                pytest.fail(
                    "axe-core is not installed: run `npm ci` in tests/browser (needs npm)",
                    pytrace=False,
                )
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=HERE,
                check=True,
                capture_output=True,
                timeout=300,
            )
        return AXE.read_text(encoding="utf-8")


@dataclass
class _Tracked:
    width: int
    height: int
    scheme: str
    javascript: bool
    loaded: list[str] = field(default_factory=list)
    checked: set[str] = field(default_factory=set)


_tracked: dict[Any, _Tracked] = {}


def _key(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A headless Chromium (Debian's package; skipped when absent). At teardown, every
    admin page loaded by a page from :func:`login` must have passed
    :func:`check_accessibility`."""
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are
    # synchronous and safe, so tell Django not to refuse them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    _tracked.clear()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=LAUNCH_ARGS,
            headless=True,
        )
        try:
            yield b
            unchecked = sorted(
                {u for t in _tracked.values() for u in t.loaded if u not in t.checked}
            )
            assert not unchecked, (
                f"admin pages loaded but not checked for accessibility: {unchecked}"
            )
        finally:
            _tracked.clear()
            b.close()


def login(
    chromium: Any,
    base: str,
    user: Any,
    *,
    width: int = 1280,
    height: int = 900,
    scheme: str = "light",
    javascript: bool = True,
    next_url: str = "/admin/",
) -> Any:
    """A new context logged in as ``user`` (a User or a username; password ``pw-<username>``, as
    ``tests.flagapp.governance_helpers.user`` makes them), on ``next_url``. The login page
    and the first page are checked for accessibility."""
    username = getattr(user, "username", user)
    context = chromium.new_context(
        viewport={"width": width, "height": height},
        color_scheme=scheme,
        java_script_enabled=javascript,
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    tracked = _tracked[page] = _Tracked(width, height, scheme, javascript)

    def loaded(frame: Any) -> None:
        if frame == page.main_frame and urlsplit(frame.url).path.startswith("/admin/"):
            tracked.loaded.append(_key(frame.url))

    page.on("framenavigated", loaded)
    page.goto(f"{base}/admin/login/?next={next_url}")
    check_accessibility(page)
    page.fill("#id_username", username)
    page.fill("#id_password", f"pw-{username}")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}{next_url}")
    check_accessibility(page)
    return page


def visit(page: Any, url: str) -> Any:
    """``page.goto(url)`` and the accessibility check of what it shows."""
    response = page.goto(url)
    check_accessibility(page)
    return response


def check_accessibility(page: Any) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is now; fail on serious or critical violations.
    Returns every violation (for a test that wants to look at the minor ones)."""
    tracked = _tracked.get(page)
    if tracked is not None and not tracked.javascript:
        violations = _check_without_javascript(page, tracked)
    else:
        violations = _run_axe(page)
    if tracked is not None:
        tracked.checked.add(_key(page.url))
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    assert not blocking, f"accessibility violations on {page.url}:\n" + "\n".join(
        f"- [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})\n"
        + "\n".join(f"    {n}" for n in v["nodes"][:5])
        for v in blocking
    )
    return violations


def _run_axe(page: Any) -> list[dict[str, Any]]:
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    result: list[dict[str, Any]] = page.evaluate(
        """async (tags) => {
            const r = await axe.run(document, {runOnly: {type: "tag", values: tags},
                                               resultTypes: ["violations"]});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                helpUrl: v.helpUrl,
                nodes: v.nodes.map(n => n.target.join(" ") + "  " +
                                   (n.failureSummary || "").replace(/\\s+/g, " "))}));
        }""",
        AXE_TAGS,
    )
    return result


def _check_without_javascript(page: Any, tracked: _Tracked) -> list[dict[str, Any]]:
    """axe needs JavaScript (timers): render the HTML this page received in a twin context
    with JavaScript, the page's own scripts blocked, same viewport and colour scheme."""
    html = page.content()
    browser = page.context.browser
    twin = browser.new_context(
        viewport={"width": tracked.width, "height": tracked.height},
        color_scheme=tracked.scheme,
        storage_state=page.context.storage_state(),
    )
    try:
        twin_page = twin.new_page()
        twin_page.set_default_timeout(20_000)
        url = page.url
        twin_page.route(
            "**/*",
            lambda route: (
                route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html)
                if route.request.url == url and route.request.resource_type == "document"
                else route.abort()
                if route.request.resource_type == "script"
                else route.continue_()
            ),
        )
        twin_page.goto(url)
        return _run_axe(twin_page)
    finally:
        twin.close()


#: The screenshots docs/admin.md shows: ``make screenshots`` runs the browser tests with
#: ``FLAGAPP_DOCS_SCREENSHOTS=docs/screenshots``, and these are also saved there (the visible
#: window only, to keep the committed PNGs small).
DOCS_SHOTS = frozenset(
    {
        "flag-overview-1400-light",
        "flag-overview-1400-dark",
        "flag-overview-list-prompt-1400-light",
        "flag-overview-change-request-1400-light",
        "governance-1-change-request",
        "governance-2-approved",
        "governance-3-kill-switch",
        "change-request-dark",
        "rules-page-1400",
        "rule-editor-1400-light",
        "rule-editor-1400-dark",
        "history-diff-1400-light",
        "history-diff-390-dark",
        "audit-log-1400-light",
        "playground-1400-light",
        "playground-390-dark",
        "sdk-keys-created-1400-light",
        "sdk-keys-list-1400-light",
        "sdk-keys-list-390-dark",
        "segment-1400-light",
        "segment-390-dark",
        "promote-preview-1400-light",
        "promote-preview-390-dark",
    }
)


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save ``test-artifacts/<name>.png`` (gitignored), and ``$FLAGAPP_DOCS_SCREENSHOTS/
    <name>.png`` for the names in :data:`DOCS_SHOTS` when that variable is set."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    docs = os.environ.get("FLAGAPP_DOCS_SCREENSHOTS")
    if docs and name in DOCS_SHOTS:
        Path(docs).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(docs) / f"{name}.png"), full_page=False)
    return path
