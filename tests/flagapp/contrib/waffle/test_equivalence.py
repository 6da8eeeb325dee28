"""Equivalence with the real django-waffle: the same requests, answered by waffle before the
import and by flagapp after it.

Why this test exists: a migration tool is only trustworthy if a project can check that
nobody's answer changes. Every deterministic waffle setting (everyone, users, groups,
staff, superusers, authenticated, languages, testing, switches, 0 %/100 % samples) must give
the same answer for every request; percentages cannot match user by user (waffle draws at
random per browser) so they must match in share — within one percentage point over 10,000
users — and flagapp's answer must be sticky.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any

import pytest
import waffle
from django.contrib.auth.models import AnonymousUser, Group, User
from django.core.management import call_command
from django.test import RequestFactory
from waffle import defaults as waffle_defaults
from waffle.models import Flag, Sample, Switch

from flagapp import evaluate
from flagapp.contrib import waffle as compat
from flagapp.contrib.waffle.keys import flag_key
from flagapp.testutils import reset_flag_cache

# Bounded by count (about 35,000 waffle and 45,000 flagapp checks); the timeout is only
# generous for a loaded shared machine.
pytestmark = [pytest.mark.django_db, pytest.mark.timeout(900)]

GROUPS = ["alpha", "beta", "Gamma Team", "delta"]
LANGUAGES = ["en", "de", "fr", "es", "pt-br"]
N_USERS = 1000
N_ANONYMOUS = 200
N_MIXES = 10

WAFFLE_CONTEXT = {
    "ENVIRONMENT": "production",
    "SINGLE_PROCESS": True,
    "CONTEXT_BUILDER": "flagapp.contrib.waffle.context.waffle_context",
}


@pytest.fixture(autouse=True)
def _fresh_flag_cache(settings: Any) -> Iterator[None]:
    # waffle reads ~12 settings per check, each a caught AttributeError when unset: set
    # them to waffle's own defaults (same behaviour, several times faster).
    for name, value in vars(waffle_defaults).items():
        if name.isupper():
            setattr(settings, f"WAFFLE_{name}", value)
    reset_flag_cache()
    yield
    reset_flag_cache()


def _make_population() -> tuple[list[User], dict[int, str | None]]:
    """1,000 users (staff, superusers, group members, languages) and their languages."""
    rng = random.Random(16)
    groups = [Group.objects.create(name=name) for name in GROUPS]
    users = User.objects.bulk_create(
        [
            User(
                username=f"user{i}",
                is_staff=(i % 7 == 0),
                is_superuser=(i % 13 == 0),
            )
            for i in range(N_USERS)
        ]
    )
    through = User.groups.through
    links = []
    for user in users:
        for group in groups:
            if rng.random() < 0.2:
                links.append(through(user_id=user.pk, group_id=group.pk))
    through.objects.bulk_create(links)
    languages = {u.pk: rng.choice([*LANGUAGES, None]) for u in users}
    return users, languages


def _waffle_flags(users: list[User]) -> list[str]:
    """Every deterministic setting alone, in pairs with everyone, and random mixes."""
    rng = random.Random(1616)
    groups = {g.name: g for g in Group.objects.all()}
    base = {"superusers": False}  # waffle's default is True: isolate each setting
    specs: list[tuple[str, dict[str, Any], list[User], list[str]]] = [
        ("everyone_on", {"everyone": True}, [], []),
        ("everyone_off", {"everyone": False, "staff": True}, [], []),
        ("everyone_on_with_staff", {"everyone": True, "staff": True, "testing": True}, [], []),
        ("nothing", dict(base), [], []),
        ("defaults", {}, [], []),  # superusers=True, as waffle creates flags
        ("authenticated", {**base, "authenticated": True}, [], []),
        ("staff", {**base, "staff": True}, [], []),
        ("superusers", {"superusers": True}, [], []),
        ("lang_de", {**base, "languages": "de"}, [], []),
        ("lang_many", {**base, "languages": "fr, es ,pt-br"}, [], []),
        ("some_users", dict(base), rng.sample(users, 25), []),
        ("group_alpha", dict(base), [], ["alpha"]),
        ("groups_two", dict(base), [], ["beta", "Gamma Team"]),
        ("Mixed Case Name!", {**base, "staff": True}, [], ["delta"]),
        ("dotted.name.v2", {**base, "languages": "en"}, [], []),
        ("everyone_off_users", {"everyone": False}, rng.sample(users, 10), ["alpha"]),
        ("testing_plain", {**base, "testing": True}, [], []),
        ("testing_staff", {**base, "testing": True, "staff": True}, [], []),
    ]
    for i in range(N_MIXES):
        fields = {
            "everyone": rng.choice([None, None, None, True, False]),
            "authenticated": rng.random() < 0.2,
            "staff": rng.random() < 0.4,
            "superusers": rng.random() < 0.5,
            "testing": rng.random() < 0.2,
            "languages": ",".join(rng.sample(LANGUAGES, rng.randint(0, 2))),
        }
        chosen_users = rng.sample(users, rng.randint(0, 15))
        chosen_groups = rng.sample(GROUPS, rng.choice([0, 0, 1, 2]))
        specs.append((f"mix_{i}", fields, chosen_users, chosen_groups))
    for name, fields, flag_users, flag_groups in specs:
        flag = Flag.objects.create(name=name, **fields)
        flag.users.add(*flag_users)
        flag.groups.add(*(groups[g] for g in flag_groups))
    return [name for name, *_ in specs]


def _requests(users: list[User], languages: dict[int, str | None]) -> list[Callable[[], Any]]:
    """Request builders: each call builds a fresh request (no context cached from a
    previous pass). Some anonymous requests and some users use testing mode."""
    rng = random.Random(161616)
    factory = RequestFactory()
    builders: list[Callable[[], Any]] = []

    def build(
        user: Any,
        language: str | None,
        query: dict[str, str],
        cookies: dict[str, str],
        headers: dict[str, str],
    ) -> Callable[[], Any]:
        def make() -> Any:
            request = factory.get("/", query, headers=headers)
            request.COOKIES.update(cookies)
            request.user = user
            if language is not None:
                request.LANGUAGE_CODE = language
            return request

        return make

    testing_names = ["testing_plain", "testing_staff", "everyone_on_with_staff"] + [
        f"mix_{i}" for i in range(N_MIXES)
    ]
    for i, user in enumerate(users):
        query: dict[str, str] = {}
        cookies: dict[str, str] = {}
        headers: dict[str, str] = {}
        if i % 10 == 0:
            name = rng.choice(testing_names)
            where = rng.choice(["query", "cookie", "header"])
            if where == "query":
                query[f"dwft_{name}"] = rng.choice(["1", "0"])
            elif where == "cookie":
                cookies[f"dwft_{name}"] = rng.choice(["True", "False"])
            else:
                headers[f"dwft-{name.replace('_', '-')}"] = rng.choice(["1", "0"])
        builders.append(build(user, languages[user.pk], query, cookies, headers))
    for _ in range(N_ANONYMOUS):
        builders.append(build(AnonymousUser(), rng.choice([*LANGUAGES, None]), {}, {}, {}))
    return builders


def _import(committed: Callable[[], AbstractContextManager[Any]]) -> str:
    Group.objects.get_or_create(name="platform")
    out = io.StringIO()
    with committed():
        call_command(
            "flagapp_import_waffle",
            "--reason",
            "waffle migration",
            "--owner",
            "platform",
            stdout=out,
        )
    reset_flag_cache()
    return out.getvalue()


def test_import_waffle__1000_users_every_deterministic_setting__same_answer_as_waffle(
    committed: Callable[[], AbstractContextManager[Any]], settings: Any
) -> None:
    settings.FLAGAPP = WAFFLE_CONTEXT
    users, languages = _make_population()
    names = _waffle_flags(users)
    switches = {f"switch_{i}": i % 3 != 0 for i in range(6)}
    for name, active in switches.items():
        Switch.objects.create(name=name, active=active)
    Sample.objects.create(name="never", percent=Decimal("0.0"))
    Sample.objects.create(name="always", percent=Decimal("100.0"))
    builders = _requests(users, languages)

    # One request per person and pass (as a page checking many flags), fresh per pass.
    before = []
    for make in builders:
        request = make()
        before.append([waffle.flag_is_active(request, name) for name in names])
    switches_before = {n: waffle.switch_is_active(n) for n in switches}
    samples_before = {n: waffle.sample_is_active(n) for n in ("never", "always")}

    _import(committed)

    after_compat = []
    after_native = []  # flagapp-native callers (default False) see the same answers
    for make in builders:
        request = make()
        after_compat.append([compat.flag_is_active(request, name) for name in names])
        after_native.append([evaluate(flag_key(n), False, request).value for n in names])
    mismatches = [
        (i, names[j], before[i][j], after_compat[i][j])
        for i in range(len(builders))
        for j in range(len(names))
        if before[i][j] != after_compat[i][j]
    ]
    assert mismatches == []
    assert after_native == before
    assert {n: compat.switch_is_active(n) for n in switches} == switches_before == switches
    assert {n: compat.sample_is_active(n) for n in ("never", "always")} == samples_before
    # the population really exercises every branch
    total = len(builders) * len(names)
    on = sum(map(sum, before))
    assert 0.1 * total < on < 0.9 * total
    print(
        f"\nwaffle equivalence: {len(builders)} requests ({N_USERS} users, {N_ANONYMOUS} "
        f"anonymous) x {len(names)} flags = {total} answers, {on} on, "
        f"{len(mismatches)} mismatches; {len(switches)} switches, 2 samples equal"
    )


PERCENTS = ["12.5", "50.0"]
N_STICKY_USERS = 2_000
N_PERCENT_USERS = 10_000


def test_import_waffle__percent_flags_over_10000_users__share_within_one_point_and_sticky(
    committed: Callable[[], AbstractContextManager[Any]], settings: Any
) -> None:
    """Shares: waffle (its own random draw, seeded) vs flagapp (hash of the user pk)."""
    for p in PERCENTS:
        Flag.objects.create(name=f"pct_{p}", percent=Decimal(p), superusers=False)
    Flag.objects.create(name="pct_rollout", percent=Decimal("25.0"), rollout=True)
    names = [f"pct_{p}" for p in PERCENTS] + ["pct_rollout"]
    expected = {**{f"pct_{p}": float(p) for p in PERCENTS}, "pct_rollout": 25.0}
    # Unsaved users with a primary key: the percentage path reads no user row.
    people = [User(pk=100_000 + i, username=f"p{i}") for i in range(N_PERCENT_USERS)]
    factory = RequestFactory()

    def request_for(user: User) -> Any:
        request = factory.get("/")
        request.user = user
        return request

    random.seed(20261204)  # waffle draws with the random module
    waffle_on = dict.fromkeys(names, 0)
    for user in people:
        request = request_for(user)
        for name in names:
            waffle_on[name] += bool(waffle.flag_is_active(request, name))

    _import(committed)

    first: dict[str, list[bool]] = {n: [] for n in names}
    for user in people:
        request = request_for(user)
        for name in names:
            first[name].append(compat.flag_is_active(request, name))
    again: dict[str, list[bool]] = {n: [] for n in names}
    for user in reversed(people[:N_STICKY_USERS]):
        request = request_for(user)
        for name in names:
            again[name].append(compat.flag_is_active(request, name))
    lines = []
    for name in names:
        waffle_share = 100 * waffle_on[name] / N_PERCENT_USERS
        flagapp_share = 100 * sum(first[name]) / N_PERCENT_USERS
        lines.append(
            f"{name}: configured {expected[name]:.1f}%, waffle {waffle_share:.2f}%, "
            f"flagapp {flagapp_share:.2f}%"
        )
        assert abs(flagapp_share - expected[name]) <= 1.0, lines[-1]
        assert abs(waffle_share - expected[name]) <= 1.0, lines[-1]
        assert abs(flagapp_share - waffle_share) <= 1.0, lines[-1]
        assert first[name][:N_STICKY_USERS] == list(reversed(again[name])), f"{name} not sticky"
    print("\nwaffle percentages over 10,000 users:\n  " + "\n  ".join(lines))
