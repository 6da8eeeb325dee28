"""The visual targeting editor (flagapp.admin.editor + static/flagapp/rule-editor.js).

The JavaScript writes the field's text by joining the pieces the server parsed; these tests
run that very file under Node and require the text it writes to be exactly what
``syntax.format_rules`` writes for the same rules (so visual -> text -> visual is lossless),
then check the server side: the pieces, the two JSON endpoints and their permissions."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from flagapp import services
from flagapp.admin.editor import MAX_TEXT, editor_model, operators
from flagapp.admin.syntax import format_prerequisites, format_rules, parse_rules
from flagapp.models import Flag, Segment

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "flagapp" / "static" / "flagapp" / "rule-editor.js"

CORPUS = [
    "[pro] plan in pro, enterprise => on",
    "[r1] plan in pro; country eq US => on:2500 off:7500",
    "[r2] not email ends_with/i @example.com => off",
    "[seg] in_segment beta, staff => on:10 off:90 by=account_id",
    "[s2] not_in_segment beta => on:1 off:1 salt=x hash=cbor",
    "[ex] email exists; not phone not_exists => on",
    '[q] name in "a, b", "x;y", "42", "with \\"quote\\"" => off',
    "[n] age gte 18; score lt 2.5; beta eq true => on",
    '[j] {"attr": "a", "op": "in", "values": [["nested"]]} => on',
    "[all] => off",
    "[v] app_version semver_gte 2.1.0; ip in_cidr 10.0.0.0/8 => on:3333 off:3333 x:3334",
    "[u] city in Zürich, 東京 => on",
]


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (.ci/run installs Debian's nodejs)")
    return node


def _run_js(function: str, payloads: list[Any]) -> list[Any]:
    """``function`` of the editor's script applied to each payload, in one Node process."""
    program = (
        f"const api = require({json.dumps(str(SCRIPT))});"
        "let input = '';"
        "process.stdin.on('data', d => input += d);"
        "process.stdin.on('end', () => {"
        f"  const out = JSON.parse(input).map(p => api.{function}(...p));"
        "  process.stdout.write(JSON.stringify(out));"
        "});"
    )
    proc = subprocess.run(
        [_node(), "-e", program],
        input=json.dumps(payloads),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return list(json.loads(proc.stdout))


def _rows(text: str) -> list[tuple[str, Any, Any]]:
    return [(r["id"], r["when"], r["serve"]) for r in parse_rules(text)]


def test_rule_editor_js__corpus__writes_exactly_what_format_rules_writes() -> None:
    models = [editor_model("rules", text) for text in CORPUS]
    assert all("items" in m for m in models), models
    written = _run_js("formatRules", [[m["items"]] for m in models])
    for text, js_text in zip(CORPUS, written, strict=True):
        assert js_text == format_rules(_rows(text)), text
        assert parse_rules(js_text) == parse_rules(text)


def _random_rules(rng: random.Random) -> list[dict[str, Any]]:
    ops = [op for op in operators() if op["name"] != "matches"]
    values: list[Any] = ["pro", "a,b", 'q"q', " pad ", "42", 42, 2.5, True, "é;ü", "x/i", "not"]
    rules = []
    for n in range(rng.randint(1, 4)):
        when = []
        for _ in range(rng.randint(0, 3)):
            op = rng.choice(ops)
            cond: dict[str, Any] = {"op": op["name"]}
            if op["uses_attr"]:
                cond["attr"] = rng.choice(["plan", "email", "user.tier", "targetingKey"])
                if rng.random() < 0.3:
                    cond["case_insensitive"] = True
            if op["needs_values"]:
                pool = ["beta", "staff"] if not op["uses_attr"] else values
                cond["values"] = rng.sample(pool, rng.randint(1, min(3, len(pool))))
            if rng.random() < 0.2:
                cond["negate"] = True
            when.append(cond)
        if rng.random() < 0.5:
            serve: dict[str, Any] = {"variant": rng.choice(["on", "off"])}
        else:
            rollout: dict[str, Any] = {
                "weights": [
                    {"variant": "on", "weight": rng.randint(0, 9999)},
                    {"variant": "off", "weight": 1},
                ]
            }
            if rng.random() < 0.4:
                rollout["bucket_by"] = "account_id"
            if rng.random() < 0.3:
                rollout["salt"] = "s1"
            serve = {"rollout": rollout}
        rules.append({"id": f"r{n}", "when": when, "serve": serve})
    return rules


def test_rule_editor_js__random_rules__round_trip_through_the_pieces() -> None:
    rng = random.Random(20261204)
    cases = [_random_rules(rng) for _ in range(200)]
    texts = [format_rules([(r["id"], r["when"], r["serve"]) for r in rules]) for rules in cases]
    models = [editor_model("rules", text) for text in texts]
    written = _run_js("formatRules", [[m["items"]] for m in models])
    assert written == texts


def test_rule_editor_js__prerequisites__written_like_format_prerequisites() -> None:
    prereqs = [{"flag": "payments.v2", "variants": ["on"]}, {"flag": "a.b", "variants": ["x", "y"]}]
    text = format_prerequisites(prereqs)
    model = editor_model("prerequisites", text)
    assert _run_js("formatPrerequisites", [[model["items"]]]) == [text]


def test_rule_editor_js__percent__typed_in_percent_stored_in_basis_points() -> None:
    got = _run_js("toBasisPoints", [["33.33"], ["66.67"], ["100"], ["0.01"], ["12,5"], ["-1"]])
    assert got == [3333, 6667, 10000, 1, 1250, None]
    assert _run_js("percentOf", [[1, 3], [2500, 10000], [0, 0]]) == ["33.33", "25.00", "0.00"]


def test_rule_editor_js__chip_token__text_syntax_quoting() -> None:
    got = _run_js("chipToken", [["pro"], ["42"], ['"42"'], ["a, b"], ["  "], ["true"]])
    assert got == ["pro", "42", '"42"', '"a, b"', None, "true"]


def test_editor_model__syntax_error__the_parser_message() -> None:
    assert editor_model("rules", "plan in pro") == {
        "error": "line 1: expected '[id] <condition>; <condition> => <serve>'"
    }
    assert "error" in editor_model("prerequisites", "no colon here")


def test_editor_model__pieces__tokens_as_the_text_shows_them() -> None:
    model = editor_model("rules", '[r] not plan in/i "42", a => on:1 off:3 by=org salt=s')
    assert model == {
        "items": [
            {
                "id": "r",
                "when": [
                    {
                        "negate": True,
                        "attr": "plan",
                        "op": "in",
                        "ci": True,
                        "values": ['"42"', "a"],
                    }
                ],
                "serve": {
                    "weights": [{"variant": "on", "weight": 1}, {"variant": "off", "weight": 3}],
                    "options": ["by=org", "salt=s"],
                },
            }
        ]
    }


# --- the endpoints ---------------------------------------------------------------------------


@pytest.fixture
def staff(db: Any) -> Client:
    user = User.objects.create_user("ed", password="pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_flag", content_type__app_label="flagapp")
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_editor_options__staff_with_view_permission__operators_segments_variants(
    staff: Client,
) -> None:
    from django.contrib.auth.models import Group

    owners = Group.objects.create(name="web")
    flag = services.create_flag(
        key="ui.x", name="X", owner=owners, flag_type="ops", actor=None, reason="t"
    )
    services.create_segment(key="beta", name="Beta", include=["a"], actor=None, reason="t")
    body = staff.get(reverse("admin:flagapp_editor_options")).json()
    assert [op["name"] for op in body["operators"]][:2] == ["eq", "neq"]
    assert body["segments"] == ["beta"]
    assert body["flags"][str(flag.pk)] == {
        "key": "ui.x",
        "archived": False,
        "variants": ["on", "off"],
    }
    assert Segment.objects.count() == 1 and Flag.objects.count() == 1


@pytest.mark.django_db
def test_editor_endpoints__no_view_permission__403(db: Any) -> None:
    user = User.objects.create_user("nobody", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get(reverse("admin:flagapp_editor_options")).status_code == 403
    assert client.post(reverse("admin:flagapp_editor_parse"), {"kind": "rules"}).status_code == 403
    anonymous = Client().get(reverse("admin:flagapp_editor_options"))
    assert anonymous.status_code == 302  # to the admin login


@pytest.mark.django_db
def test_editor_parse__text_mode_edit__pieces_or_the_error(staff: Client) -> None:
    url = reverse("admin:flagapp_editor_parse")
    ok = staff.post(url, {"kind": "rules", "text": "[a] plan in pro => on"}).json()
    assert ok["items"][0]["when"][0]["values"] == ["pro"]
    bad = staff.post(url, {"kind": "rules", "text": "plan in pro"}).json()
    assert bad["error"].startswith("line 1:")
    assert staff.get(url).status_code == 405
    assert staff.post(url, {"kind": "flags", "text": ""}).status_code == 400
    too_long = staff.post(url, {"kind": "rules", "text": "x" * (MAX_TEXT + 1)})
    assert too_long.status_code == 400 and "text" in too_long.json()["error"]


@pytest.mark.django_db
def test_flag_page__state_blocks__editor_widgets_with_their_pieces(db: Any) -> None:
    from django.contrib.auth.models import Group

    admin = User.objects.create_superuser("root", "r@example.com", "pw")
    env = services.create_environment(key="staging", name="Staging", actor=None, reason="t")
    flag = services.create_flag(
        key="ui.y",
        name="Y",
        owner=Group.objects.create(name="w"),
        flag_type="ops",
        actor=None,
        reason="t",
    )
    services.update_flag_state(
        flag, env, actor=None, reason="t",
        rules=[{"id": "pro", "when": [{"attr": "plan", "op": "in", "values": ["pro"]}],
                "serve": {"variant": "on"}}],
    )  # fmt: skip
    client = Client()
    client.force_login(admin)
    html = client.get(reverse("admin:flagapp_flag_change", args=[flag.pk])).content.decode()
    assert 'data-flagapp-editor="rules"' in html
    assert 'data-flagapp-editor="prerequisites"' in html
    assert "flagapp/rule-editor.js" in html and "flagapp/rule-editor.css" in html
    assert f'data-flag-id="{flag.pk}"' in html
    assert "&quot;pro&quot;" in html  # the pieces, escaped in the attribute
