"""The example project: flagapp_demo loads through the services; the pages and admin work."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client, modify_settings, override_settings

import flagapp
from flagapp.management.commands.flagapp_demo import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    CHANGE_REQUEST_FLAG,
    DEMO_FLAGS,
    EXPERIMENT_FLAG,
    REVIEWER_PASSWORD,
    REVIEWER_USERNAME,
    ROLLOUT_FLAG,
    ROLLOUT_STEP_SECONDS,
)
from tests.flagapp.eval_helpers import clean_flag_cache_fixture  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.django_db

demo_site = [
    override_settings(ROOT_URLCONF="example_project.urls"),
    modify_settings(
        INSTALLED_APPS={"append": "example_project.demo"},
        MIDDLEWARE={"append": "flagapp.middleware.FlagMiddleware"},
    ),
]


def _demo_site(func: Any) -> Any:
    for decorator in reversed(demo_site):
        func = decorator(func)
    return func


@pytest.fixture
def demo(django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        call_command("flagapp_demo", "--no-migrate", stdout=io.StringIO())


def test_demo_command__data__every_kind_and_type_two_environments(demo: None):
    from flagapp.models import Environment, Flag, Segment, Snapshot, TargetingRule

    assert set(Environment.objects.values_list("key", flat=True)) == {"staging", "production"}
    flags = Flag.objects.all()
    assert {f.kind for f in flags} == {"boolean", "string", "integer", "float", "object"}
    assert {f.flag_type for f in flags} == {"release", "experiment", "ops", "permission"}
    assert Segment.objects.filter(key="beta-testers").exists()
    assert TargetingRule.objects.exists()
    assert Snapshot.objects.filter(environment__key="production").exists()
    assert set(DEMO_FLAGS) == set(flags.values_list("key", flat=True))
    # written through the services: every flag has history with the demo reason
    flag = Flag.objects.get(key="checkout.new-flow")
    assert flag.history.first().history_change_reason == "flagapp demo data"  # type: ignore[attr-defined]


def test_demo_command__snapshot__rollout_and_segment_evaluate(demo: None):
    staff = {"targetingKey": "1", "is_staff": True}
    assert flagapp.evaluate("checkout.new-flow", False, staff).reason == "TARGETING_MATCH"
    beta = {"targetingKey": "9", "is_staff": False, "email_domain": "example.org"}
    assert flagapp.evaluate("checkout.new-flow", False, beta).value is True
    reasons = {
        flagapp.evaluate("checkout.new-flow", False, {"targetingKey": f"v{i}"}).reason
        for i in range(20)
    }
    assert reasons == {"SPLIT"}
    assert flagapp.evaluate("ops.maintenance-mode", False).reason == "DISABLED"
    assert flagapp.evaluate("web.ui.theme", "x", environment="staging").value == "dark"


def test_demo_command__run_twice__idempotent_and_admin_login_refreshed(demo: None):
    from django.contrib.auth import get_user_model

    from flagapp.models import Flag

    count = Flag.objects.count()
    call_command("flagapp_demo", "--no-migrate", stdout=io.StringIO())
    assert Flag.objects.count() == count
    admin = get_user_model().objects.get(username=ADMIN_USERNAME)
    assert admin.is_superuser and admin.check_password(ADMIN_PASSWORD)


@_demo_site
def test_demo_page__anonymous__renders_tags_and_variant(demo: None):
    client = Client()
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="checkout"' in html
    assert 'data-theme="light"' in html or 'data-theme="dark"' in html  # the string variant
    assert "web.ui.theme" in html and "SPLIT" in html  # the session key buckets the visitor
    assert "ops.maintenance-mode" in html


@_demo_site
def test_demo_page__admin_logged_in__staff_rule_opens_new_checkout(demo: None):
    client = Client()
    assert client.login(username=ADMIN_USERNAME, password=ADMIN_PASSWORD)
    html = client.get("/").content.decode()
    assert "new checkout" in html
    assert client.get("/checkout/new/").status_code == 200
    assert client.get("/checkout/express/").status_code == 200  # prerequisite met
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/flagapp/flag/").status_code == 200


@_demo_site
def test_demo_page__decorated_view_flag_off__redirected(demo: None):
    from flagapp.testutils import override_flag

    with override_flag("checkout.new-flow", active=False):
        response = Client().get("/checkout/new/")
    assert (response.status_code, response["Location"]) == (302, "/")
    with override_flag("checkout.express-pay", active=False):
        assert Client().get("/checkout/express/").status_code == 404


@_demo_site
def test_demo_status__async_view__serves_float_flag(demo: None):
    response = Client().get("/status/")
    assert response.json() == {"ok": True, "discount": 0.1}
    from flagapp.testutils import override_flag

    with override_flag("ops.maintenance-mode", active=True):
        assert Client().get("/status/").status_code == 404


def test_admin_login_page__demo_site__served(demo: None):
    with override_settings(ROOT_URLCONF="example_project.urls"):
        assert Client().get("/admin/login/").status_code == 200


@pytest.mark.slow
def test_make_demo_command__fresh_sqlite_file__migrates_loads_prints_login(tmp_path: Path):
    """What ``make demo`` runs before runserver, in a subprocess on a new SQLite file."""
    db = tmp_path / "demo.sqlite3"
    env = {**os.environ, "DATABASE_PATH": str(db)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "flagapp_demo", "--reset"],
        cwd=ROOT / "example_project",
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{ADMIN_USERNAME} / {ADMIN_PASSWORD}" in result.stdout
    assert f"{REVIEWER_USERNAME} / {REVIEWER_PASSWORD}" in result.stdout
    assert "http://127.0.0.1:8000/admin/" in result.stdout
    assert db.exists()


@_demo_site
def test_demo_status__asgi_request_path__async_view_and_middleware(demo: None):
    import asyncio

    from django.test import AsyncClient

    async def fetch() -> Any:
        return await AsyncClient().get("/status/")

    response = asyncio.run(fetch())
    assert (response.status_code, response.json()) == (200, {"ok": True, "discount": 0.1})


def test_demo_command__governance__protected_production_reviewer_pending_request(demo: None):
    from django.contrib.auth import get_user_model

    from flagapp.governance import change_requests as crs
    from flagapp.models import ChangeRequest, Environment, FlagState

    assert Environment.objects.get(key="production").protected
    assert not Environment.objects.get(key="staging").protected
    reviewer = get_user_model().objects.get(username=REVIEWER_USERNAME)
    assert reviewer.check_password(REVIEWER_PASSWORD) and reviewer.is_staff
    assert not reviewer.is_superuser
    assert reviewer.has_perm("flagapp.approve_changerequest")
    assert reviewer.has_perm("flagapp.view_flag") and not reviewer.has_perm("flagapp.change_flag")
    cr = ChangeRequest.objects.get()
    assert (cr.flag_key, cr.environment_key, cr.status) == (
        CHANGE_REQUEST_FLAG,
        "production",
        "pending",
    )
    assert cr.author.username == ADMIN_USERNAME
    assert crs.can_review(cr, reviewer) and not crs.can_review(cr, cr.author)
    approved = crs.approve(cr, reviewer=reviewer, comment="ok")
    assert approved.status == "applied"
    state = FlagState.objects.get(flag__key=CHANGE_REQUEST_FLAG, environment__key="production")
    assert [r.rule_id for r in state.rules.order_by("order")] == ["corp", "pro-plans"]


def test_demo_command__rollout__running_in_staging_and_advances_each_step(demo: None):
    import datetime as dt

    from django.utils import timezone

    from flagapp.models import RolloutPlan
    from flagapp.rollouts import controller

    plan = RolloutPlan.objects.get(flag__key=ROLLOUT_FLAG)
    assert (plan.environment.key, plan.state, plan.current_bps) == ("staging", "running", 500)
    later = timezone.now() + dt.timedelta(seconds=ROLLOUT_STEP_SECONDS + 1)
    controller.tick(now=later)
    plan.refresh_from_db()
    assert plan.current_bps == 1000
    assert flagapp.evaluate(ROLLOUT_FLAG, False, {"targetingKey": "x"}, environment="staging")


def test_demo_command__experiment__exposures_and_conversions_both_variants(demo: None):
    from flagapp.models import Experiment, SdkEvent

    exp = Experiment.objects.get(flag__key=EXPERIMENT_FLAG)
    assert exp.environment.key == "production" and exp.control_variant == "light"
    exposures = SdkEvent.objects.filter(kind="exposure", flag_key=EXPERIMENT_FLAG)
    assert set(exposures.values_list("variant", flat=True)) == {"light", "dark"}
    assert exposures.count() > 1500
    conversions = SdkEvent.objects.filter(kind="tracking", key=exp.conversion_event)
    assert 100 < conversions.count() < exposures.count()
    assert all(e.timestamp >= exp.started_at for e in exposures[:50])


def test_demo_command__run_again__database_kept_nothing_duplicated(demo: None):
    from flagapp.models import ChangeRequest, Experiment, RolloutPlan, SdkEvent

    counts = (ChangeRequest.objects.count(), RolloutPlan.objects.count(),
              Experiment.objects.count(), SdkEvent.objects.count())  # fmt: skip
    out = io.StringIO()
    call_command("flagapp_demo", "--no-migrate", stdout=out)
    assert (ChangeRequest.objects.count(), RolloutPlan.objects.count(),
            Experiment.objects.count(), SdkEvent.objects.count()) == counts  # fmt: skip
    assert f"{ADMIN_USERNAME} / {ADMIN_PASSWORD}" in out.getvalue()
    assert f"{REVIEWER_USERNAME} / {REVIEWER_PASSWORD}" in out.getvalue()


@pytest.mark.parametrize(("args", "reset"), [([], False), (["RESET=1"], True)])
def test_make_demo__reset_only_on_request__flag_passed_through(args: list[str], reset: bool):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    result = subprocess.run(
        ["make", "-n", "demo", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    demo_line = next(line for line in result.stdout.splitlines() if "flagapp_demo" in line)
    assert ("--reset" in demo_line) is reset
    assert "flagapp_run_tasks --loop" in result.stdout  # the rollout advances
    assert "runserver" in result.stdout
