"""The OpenAPI 3 schema at /api/schema/ and the docs page at /api/docs/."""

from __future__ import annotations

import re
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.flagapp.api_support import *  # noqa: F403 - fixtures

pytestmark = pytest.mark.django_db


def _schema(client: Any) -> dict[str, Any]:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def test_schema__anonymous__401(db: Any) -> None:
    assert APIClient().get("/api/schema/").status_code == 401


def test_schema__authenticated__openapi3_describing_the_management_api(
    admin_client: Any,
) -> None:
    schema = _schema(admin_client)
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    for path in (
        "/api/v1/flags/",
        "/api/v1/flags/{key}/",
        "/api/v1/flags/{flag_key}/environments/{environment_key}/",
        "/api/v1/segments/{key}/",
        "/api/v1/environments/{key}/",
        "/api/v1/history/",
        "/api/v1/sdk-keys/{id}/revoke/",
    ):
        assert path in paths, path
    assert all(p.startswith("/api/v1/") for p in paths)
    assert set(schema["components"]["securitySchemes"]) == {"tokenAuth", "cookieAuth"}


def test_schema__write_operations__document_if_match_reason_409_and_202(
    admin_client: Any,
) -> None:
    patch = _schema(admin_client)["paths"][
        "/api/v1/flags/{flag_key}/environments/{environment_key}/"
    ]["patch"]
    headers = {p["name"] for p in patch["parameters"] if p["in"] == "header"}
    assert headers == {"If-Match", "X-Change-Reason"}
    assert {"200", "202", "400", "403", "409", "428"} <= set(patch["responses"])


def test_schema__history__documents_its_filters(admin_client: Any) -> None:
    get = _schema(admin_client)["paths"]["/api/v1/history/"]["get"]
    names = {p["name"] for p in get["parameters"]}
    assert {"flag", "environment", "user", "since", "until", "model", "page"} <= names


def test_docs_page__authenticated__swagger_ui_from_local_static_files_only(
    admin_client: Any,
) -> None:
    response = admin_client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    external = re.findall(r"""(?:src|href)=["'](https?://[^"']+)""", html)
    assert external == []
    assert "/api/schema/" in html


def test_docs_page__anonymous__401(db: Any) -> None:
    assert APIClient().get("/api/docs/").status_code == 401


def test_schema__project_without_default_schema_class__generated(db: Any) -> None:
    """The README's configuration has no REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]; the
    schema classes are chosen when the views are imported, so a fresh process is needed."""
    import subprocess
    import sys

    script = (
        "import django, json; django.setup()\n"
        "from django.contrib.auth.models import User\n"
        "from rest_framework.settings import api_settings\n"
        "from rest_framework.test import APIRequestFactory, force_authenticate\n"
        "from flagapp.api.schema import SchemaView\n"
        "assert 'spectacular' not in str(api_settings.DEFAULT_SCHEMA_CLASS)\n"
        "request = APIRequestFactory().get('/api/schema/?format=json')\n"
        "force_authenticate(request, user=User(username='reader'))\n"
        "response = SchemaView.as_view()(request)\n"
        "assert response.status_code == 200, response.status_code\n"
        "print(json.dumps(sorted(response.data['paths'])))\n"
    )
    env = {**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "tests.flagapp.readme_settings"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "/api/v1/change-requests/preview/" in done.stdout


def test_schema__preview_body__its_own_component_not_the_change_request_model(
    admin_client: Any,
) -> None:
    schema = _schema(admin_client)
    body = schema["paths"]["/api/v1/change-requests/preview/"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert "operation" in component["properties"]
    assert "status" not in component["properties"]
    assert "status" in schema["components"]["schemas"]["ChangeRequest"]["properties"]


def test_schema__sdk_keys__reason_fields_and_token_documented(admin_client: Any) -> None:
    schemas = _schema(admin_client)["components"]["schemas"]
    fields = set(schemas["SdkKey"]["properties"])
    assert {"scope", "created_by", "created_reason", "revoked_at", "revoked_by",
            "revoke_reason"} <= fields  # fmt: skip
    assert "token" not in fields and "token" in schemas["SdkKeyCreated"]["properties"]
    assert "scope" in schemas["SdkKeyCreateRequest"]["properties"]
