"""Code-reference scanner: which flag keys the source reads (pure part, no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flagapp.governance import coderefs


def _write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_scan__python_template_and_openfeature_calls__every_key_found_with_line(
    tmp_path: Path,
) -> None:
    _write(
        tmp_path,
        "app/views.py",
        "import flagapp\n"
        "if flagapp.evaluate('checkout.new-flow', False, request):\n"
        "    pass\n"
        '@flag_required("payments.v2")\n'
        "def view(): ...\n"
        "client.get_boolean_value(flag_key='search.fuzzy', default_value=False)\n",
    )
    _write(
        tmp_path,
        "app/templates/page.html",
        '{% load flagapp %}\n{% flag "ui.dark-mode" %}on{% endflag %}\n',
    )
    _write(tmp_path, "web/app.ts", "const v = client.getStringValue('ui.banner-text', '');\n")
    refs = coderefs.scan_paths([tmp_path])
    found = {(Path(r.path).name, r.line, r.key, r.pattern) for r in refs}
    assert found == {
        ("views.py", 2, "checkout.new-flow", "python"),
        ("views.py", 4, "payments.v2", "python"),
        ("views.py", 6, "search.fuzzy", "openfeature"),
        ("page.html", 2, "ui.dark-mode", "template"),
        ("app.ts", 1, "ui.banner-text", "openfeature"),
    }


def test_scan__request_first_helpers_negation_and_mixin__keys_found(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "views.py",
        "if flag_is_active(request, 'search.fuzzy'):\n"
        "    x = await aget_value(self.request, 'search.limit', 10)\n"
        "y = get_value(ctx, default=3, key='search.depth')\n"
        "@flag_required('!legacy.ui.off')\n"
        "class V(FlagRequiredMixin, View):\n"
        '    required_flag = "beta.page"\n'
        "perm = FlagPermission.for_flag('api.v2')\n",
    )
    _write(
        tmp_path,
        "t.html",
        '{% flag "!ui.old" %}{% endflag %}{% flag_value "ui.color" "red" as c %}',
    )
    keys = {(r.key, r.pattern) for r in coderefs.scan_paths([tmp_path])}
    assert keys == {
        ("search.fuzzy", "python_request_first"),
        ("search.limit", "python_request_first"),
        ("search.depth", "python_request_first"),
        ("legacy.ui.off", "python"),
        ("beta.page", "python_attribute"),
        ("api.v2", "python"),
        ("ui.old", "template"),
        ("ui.color", "template"),
    }


def test_scan__dependency_and_cache_dirs__skipped(tmp_path: Path) -> None:
    _write(tmp_path, ".venv/lib/x.py", "evaluate('vendor.flag')\n")
    _write(tmp_path, "node_modules/p/index.js", "getBooleanValue('vendor.js-flag')\n")
    _write(tmp_path, "src/a.py", "evaluate('team.a.b')\n")
    assert [r.key for r in coderefs.scan_paths([tmp_path])] == ["team.a.b"]


def test_compare__dead_and_unknown_keys__reported_separately(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", "evaluate('known.used')\nevaluate('typo.unknown')\n")
    report = coderefs.compare(coderefs.scan_paths([tmp_path]), ["known.used", "known.dead"])
    assert report.unreferenced == ["known.dead"]
    assert list(report.unknown) == ["typo.unknown"]
    assert report.unknown["typo.unknown"][0].line == 2
    assert not report.ok


def test_compare__ignored_keys__exempt_from_both_checks(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", "evaluate('fixture.only')\n")
    report = coderefs.compare(
        coderefs.scan_paths([tmp_path]), ["other.repo"], ignore=["fixture.only", "other.repo"]
    )
    assert report.ok


def test_scan__custom_patterns__replace_the_defaults(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", "FEATURE('acme.custom')\nevaluate('not.matched')\n")
    refs = coderefs.scan_paths([tmp_path], patterns=[r"FEATURE\('(?P<key>[\w.-]+)'\)"])
    assert [(r.key, r.pattern) for r in refs] == [("acme.custom", "custom0")]


def test_compile_patterns__no_key_group__value_error_names_pattern() -> None:
    with pytest.raises(ValueError, match="mine"):
        coderefs.compile_patterns({"mine": r"evaluate\('([\w.]+)'\)"})


def test_scan__missing_path__file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        coderefs.scan_paths([tmp_path / "nope"])


def test_scan__explicit_file_with_other_extension__scanned(tmp_path: Path) -> None:
    path = _write(tmp_path, "notes.cfg", "evaluate('cfg.flag-a')\n")
    assert [r.key for r in coderefs.scan_paths([path])] == ["cfg.flag-a"]


@pytest.mark.django_db
def test_command__dead_and_unknown_flags__listed_exit_one(tmp_path: Path) -> None:
    import json
    from io import StringIO

    from django.contrib.auth.models import Group
    from django.core.management import CommandError, call_command

    from tests.flagapp import governance_helpers as h

    team = Group.objects.create(name="checkout")
    h.flag("checkout.used.flag", team)
    h.flag("checkout.dead.flag", team)
    h.flag("checkout.archived.flag", team, archived=True)
    _write(
        tmp_path,
        "app.py",
        "evaluate('checkout.used.flag')\nevaluate('checkout.typo.flag')\n"
        "evaluate('checkout.archived.flag')\n",
    )
    out = StringIO()
    with pytest.raises(CommandError) as info:
        call_command("flagapp_code_refs", str(tmp_path), "--json", stdout=out)
    assert info.value.returncode == 1
    doc = json.loads(out.getvalue())
    assert doc["unreferenced"] == ["checkout.dead.flag"]
    assert sorted(doc["unknown"]) == ["checkout.archived.flag", "checkout.typo.flag"]
    assert doc["unknown"]["checkout.typo.flag"][0]["line"] == 2

    out = StringIO()
    call_command(
        "flagapp_code_refs",
        str(tmp_path),
        "--ignore",
        "checkout.typo.flag",
        "--ignore",
        "checkout.dead.flag",
        "--include-archived",
        stdout=out,
    )
    assert "3 reference(s) found" in out.getvalue()
