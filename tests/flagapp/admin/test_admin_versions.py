"""The admin's flag, segment and environment pages carry the version they were opened at
(a hidden field) and the services' one optimistic-concurrency rule refuses a save over a
newer version with an error naming the resource (issue 12 part 1)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from flagapp import services
from flagapp.models import Environment, Flag, FlagState, Segment
from tests.flagapp.admin.test_admin import _state_prefix, form_data, post_errors

pytestmark = pytest.mark.django_db


def _open(client: Client, name: str, pk: int) -> tuple[str, dict[str, Any]]:
    url = reverse(f"admin:flagapp_{name}_change", args=[pk])
    page = client.get(url)
    assert page.status_code == 200
    return url, form_data(page)


def test_flag_page__renamed_in_another_tab__save_refused_naming_the_flag(
    admin_client: Client, make_flag: Any
) -> None:
    flag = make_flag()
    url, data = _open(admin_client, "flag", flag.pk)
    assert data["version"] == "1"
    services.update_flag(flag, name="Theirs", actor=None, reason="other tab")
    data.update({"name": "Mine", "reason": "mine"})
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert any(
        "flag checkout.new-flow was changed by someone else since you opened it" in e
        for e in post_errors(response)
    )
    assert Flag.objects.get(pk=flag.pk).name == "Theirs"


def test_flag_page__flag_renamed_elsewhere__state_only_edit_still_saved(
    admin_client: Client, make_flag: Any, envs: dict[str, Environment]
) -> None:
    flag = make_flag()
    url, data = _open(admin_client, "flag", flag.pk)
    services.update_flag(flag, name="Theirs", actor=None, reason="other tab")
    prefix = _state_prefix(data, "staging", flag)
    data.update({f"{prefix}-enabled": "on", "reason": "turn on in staging"})
    response = admin_client.post(url, data)
    assert response.status_code == 302, post_errors(response)
    assert Flag.objects.get(pk=flag.pk).name == "Theirs"  # not overwritten by the page
    assert FlagState.objects.get(flag=flag, environment=envs["staging"]).enabled


def test_segment_page__changed_in_another_tab__save_refused_naming_the_segment(
    admin_client: Client, envs: Any
) -> None:
    segment = services.create_segment(key="beta", name="Beta", actor=None, reason="r")
    url, data = _open(admin_client, "segment", segment.pk)
    services.update_segment(segment, name="Theirs", actor=None, reason="other tab")
    data.update({"name": "Mine", "reason": "mine"})
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert any(
        "segment beta was changed by someone else since you opened it" in e
        for e in post_errors(response)
    )
    assert Segment.objects.get(pk=segment.pk).name == "Theirs"


def test_environment_page__changed_in_another_tab__save_refused_naming_it(
    admin_client: Client, envs: dict[str, Environment]
) -> None:
    env = envs["staging"]
    url, data = _open(admin_client, "environment", env.pk)
    services.update_environment(env, name="Theirs", actor=None, reason="other tab")
    data.update({"order": "7", "reason": "mine"})
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert any(
        "environment staging was changed by someone else since you opened it" in e
        for e in post_errors(response)
    )
    assert Environment.objects.get(pk=env.pk).order != 7
