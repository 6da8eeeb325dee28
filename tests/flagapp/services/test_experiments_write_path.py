"""Experiments go through flagapp.services.experiments from the admin and the API: the same
validation refuses the same experiment on both (the admin used to save what the API
refused: a confidence of 1, a control variant the flag lacks, an SRM threshold of 2)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from flagapp import services
from flagapp.exceptions import ChangeNotPermitted, FlagValidationError
from flagapp.models import Experiment
from flagapp.services.experiments import create_experiment, update_experiment

pytestmark = pytest.mark.django_db

REFUSED = [
    ({"confidence": "1.0"}, "confidence"),
    ({"control_variant": "nope"}, "control_variant"),
    ({"srm_threshold": "2.0"}, "srm_threshold"),
    ({"baseline_rate": "0"}, "baseline_rate"),
    ({"expected_weights": '{"on": -1}'}, "expected_weights"),
]


@pytest.fixture
def superuser(db: Any) -> User:
    return User.objects.create_superuser("root", "r@example.com", "pw")


@pytest.fixture
def exp_flag(make_flag: Callable[..., Any]) -> Any:
    return make_flag("shop.exp-write", flag_type="experiment", expires_on=None)


def _admin_body(flag: Any, envs: dict[str, Any], **extra: str) -> dict[str, str]:
    return {
        "flag": str(flag.pk),
        "environment": str(envs["production"].pk),
        "name": "checkout test",
        "hypothesis": "",
        "control_variant": "off",
        "conversion_event": "buy",
        "started_at_0": "2026-01-01",
        "started_at_1": "00:00:00",
        "ended_at_0": "",
        "ended_at_1": "",
        "confidence": "0.95",
        "srm_threshold": "0.001",
        "expected_weights": '{"on": 1, "off": 1}',
        "baseline_rate": "",
        "minimum_detectable_effect": "",
        **extra,
    }


def _api_body(flag: Any, extra: dict[str, str]) -> dict[str, Any]:
    import json

    body: dict[str, Any] = {
        "flag": flag.key,
        "environment": "production",
        "name": "checkout test",
        "control_variant": "off",
        "conversion_event": "buy",
        "started_at": "2026-01-01T00:00:00Z",
    }
    for name, value in extra.items():
        body[name] = json.loads(value) if name == "expected_weights" else value
    return body


@pytest.mark.parametrize(("extra", "field"), REFUSED)
def test_experiment_write__invalid_value__refused_by_admin_and_api_on_the_same_field(
    superuser: User,
    exp_flag: Any,
    envs: dict[str, Any],
    extra: dict[str, str],
    field: str,
) -> None:
    client = Client()
    client.force_login(superuser)
    page = client.post("/admin/flagapp/experiment/add/", _admin_body(exp_flag, envs, **extra))
    assert page.status_code == 200, "the admin saved what the services refuse"
    assert field in page.context["adminform"].form.errors
    api = APIClient()
    api.force_authenticate(superuser)
    r = api.post("/api/v1/experiments/", _api_body(exp_flag, extra), format="json")
    assert r.status_code == 400 and field in r.json(), r.content
    assert not Experiment.objects.exists()


def test_experiment_write__valid__admin_and_api_store_through_services(
    superuser: User, exp_flag: Any, envs: dict[str, Any]
) -> None:
    client = Client()
    client.force_login(superuser)
    page = client.post("/admin/flagapp/experiment/add/", _admin_body(exp_flag, envs))
    assert page.status_code == 302, page.content
    api = APIClient()
    api.force_authenticate(superuser)
    r = api.post("/api/v1/experiments/", _api_body(exp_flag, {}), format="json")
    assert r.status_code == 201, r.content
    assert Experiment.objects.count() == 2
    assert set(Experiment.objects.values_list("created_by__username", flat=True)) == {"root"}


def _experiment(exp_flag: Any, envs: dict[str, Any]) -> Any:
    return create_experiment(
        actor=None,
        flag=exp_flag,
        environment=envs["production"],
        name="e",
        control_variant="off",
        conversion_event="buy",
        started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )


def test_experiment_write__admin_change_to_invalid__field_error_and_unchanged(
    superuser: User, exp_flag: Any, envs: dict[str, Any]
) -> None:
    exp = _experiment(exp_flag, envs)
    client = Client()
    client.force_login(superuser)
    body = _admin_body(exp_flag, envs, confidence="1.0")
    page = client.post(f"/admin/flagapp/experiment/{exp.pk}/change/", body)
    assert page.status_code == 200 and "confidence" in page.context["adminform"].form.errors
    exp.refresh_from_db()
    assert exp.confidence == 0.95
    api = APIClient()
    api.force_authenticate(superuser)
    r = api.patch(
        f"/api/v1/experiments/{exp.pk}/", {"confidence": 1.0}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert r.status_code == 400 and "confidence" in r.json()


def test_create_experiment__release_flag__field_error_on_flag(
    make_flag: Callable[..., Any], envs: dict[str, Any]
) -> None:
    with pytest.raises(FlagValidationError) as exc:
        services.create_experiment(
            actor=None,
            flag=make_flag("shop.release"),
            environment=envs["production"],
            name="e",
            control_variant="off",
            conversion_event="buy",
            started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        )
    assert "flag" in exc.value.message_dict


def test_create_experiment__user_without_permission__refused(
    exp_flag: Any, envs: dict[str, Any]
) -> None:
    user = User.objects.create_user("viewer")
    with pytest.raises(ChangeNotPermitted):
        services.create_experiment(
            actor=user,
            flag=exp_flag,
            environment=envs["production"],
            name="e",
            control_variant="off",
            conversion_event="buy",
            started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        )
    assert not Experiment.objects.exists()


def test_update_experiment__stale_version__conflict_nothing_written_identical_retry_ok(
    exp_flag: Any, envs: dict[str, Any]
) -> None:
    from flagapp.exceptions import VersionConflict

    exp = _experiment(exp_flag, envs)
    assert exp.version == 1
    assert update_experiment(exp, actor=None, expected_version=1, name="first").version == 2
    with pytest.raises(VersionConflict) as info:
        update_experiment(exp, actor=None, expected_version=1, name="second")
    assert (info.value.current_version, info.value.resource) == (2, "experiment " + str(exp.pk))
    exp.refresh_from_db()
    assert (exp.name, exp.version) == ("first", 2)
    # the retry of the first write (its answer lost) asks for what is stored: no conflict
    assert update_experiment(exp, actor=None, expected_version=1, name="first").version == 2


def test_experiment_api__patch__if_match_required_stale_409_fresh_200(
    exp_flag: Any, envs: dict[str, Any], superuser: Any
) -> None:
    exp = _experiment(exp_flag, envs)
    api = APIClient()
    api.force_authenticate(superuser)
    url = f"/api/v1/experiments/{exp.pk}/"
    assert api.get(url).json()["version"] == 1
    assert api.patch(url, {"name": "x"}, format="json").status_code == 428
    r = api.patch(url, {"name": "x"}, format="json", HTTP_IF_MATCH='"1"')
    assert r.status_code == 200 and r.json()["version"] == 2
    r = api.patch(url, {"name": "y"}, format="json", HTTP_IF_MATCH='"1"')
    assert r.status_code == 409
    exp.refresh_from_db()
    assert (exp.name, exp.version) == ("x", 2)


def test_experiment_admin__saved_over_another_change__conflict_shown_nothing_saved(
    exp_flag: Any, envs: dict[str, Any], superuser: Any
) -> None:
    exp = _experiment(exp_flag, envs)
    client = Client()
    client.force_login(superuser)
    page = client.get(f"/admin/flagapp/experiment/{exp.pk}/change/")
    assert b'name="version" value="1"' in page.content
    update_experiment(exp, actor=None, expected_version=1, name="theirs")
    r = client.post(
        f"/admin/flagapp/experiment/{exp.pk}/change/",
        _admin_body(exp_flag, envs, name="mine", version="1"),
    )
    assert r.status_code == 200
    assert b"was changed by someone else since you opened it (now version 2)" in r.content
    exp.refresh_from_db()
    assert (exp.name, exp.version) == ("theirs", 2)
    ok = client.post(
        f"/admin/flagapp/experiment/{exp.pk}/change/",
        _admin_body(exp_flag, envs, name="mine", version="2"),
    )
    assert ok.status_code == 302, ok.content
    exp.refresh_from_db()
    assert (exp.name, exp.version) == ("mine", 3)
