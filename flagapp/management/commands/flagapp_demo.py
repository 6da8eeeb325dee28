"""``manage.py flagapp_demo [--reset]``: a ready-to-click flagapp (what ``make demo`` runs).

Migrates the database, loads demo data **through the services** (so it is exactly what an
admin user could have made: validated, with history and reasons), creates or refreshes the
superuser ``admin`` and the reviewer ``reviewer`` and publishes every environment's
snapshot, then prints both logins.

Demo data: environments ``staging`` and ``production`` (protected: changes there need an
approved change request); owners ``web``, ``payments``, ``growth``; flags of every kind
(boolean, string, integer, float, object) and type (release, experiment, ops, permission);
a segment ``beta-testers``; targeting rules; a percentage rollout; a prerequisite; a flag
switched off (kill switch); a change request by ``admin`` waiting for ``reviewer``; a
rollout plan running in staging (5% → 100%, one step a minute once ``flagapp_run_tasks
--loop`` runs, as ``make demo`` does); an experiment on the theme split with three days of
exposures and conversions.

``--reset`` starts from an empty database (the SQLite file is deleted; another database is
flushed). Without it the database is kept: existing demo objects are left as they are (your
own changes too) and only missing ones are added, so running it again is harmless.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "flagapp-demo"
#: The second person of the two-person rule: may approve change requests, sees everything.
REVIEWER_USERNAME = "reviewer"
REVIEWER_PASSWORD = "flagapp-review"
#: The flag whose rollout plan runs in staging, and the plan's steps (basis points).
ROLLOUT_FLAG = "search.instant-results"
ROLLOUT_STEPS = [500, 1000, 2500, 5000, 10000]
ROLLOUT_STEP_SECONDS = 60
#: The flag the pending change request is about, and the experiment's flag.
CHANGE_REQUEST_FLAG = "search.results-limit"
EXPERIMENT_FLAG = "web.ui.theme"


def _release_expiry() -> dt.date:
    return dt.date.today() + dt.timedelta(days=90)


#: key -> create_flag arguments and per-environment state (staging, production).
DEMO_FLAGS: dict[str, dict[str, Any]] = {
    "checkout.new-flow": {
        "name": "New checkout flow",
        "owner": "payments",
        "flag_type": "release",
        "kind": "boolean",
        "description": "The redesigned checkout: staff and beta testers first, then 25%.",
        "states": {
            "staging": {"enabled": True, "fallthrough": {"variant": "on"}},
            "production": {
                "enabled": True,
                "rules": [
                    {
                        "id": "staff",
                        "description": "Staff see it first",
                        "when": [{"attr": "is_staff", "op": "eq", "values": [True]}],
                        "serve": {"variant": "on"},
                    },
                    {
                        "id": "beta",
                        "description": "Beta testers",
                        "when": [{"op": "in_segment", "values": ["beta-testers"]}],
                        "serve": {"variant": "on"},
                    },
                ],
                "fallthrough": {
                    "rollout": {
                        "weights": [
                            {"variant": "on", "weight": 2500},
                            {"variant": "off", "weight": 7500},
                        ]
                    }
                },
            },
        },
    },
    "checkout.express-pay": {
        "name": "Express pay button",
        "owner": "payments",
        "flag_type": "release",
        "kind": "boolean",
        "description": "Needs the new checkout flow (a prerequisite).",
        "states": {
            "staging": {
                "enabled": True,
                "fallthrough": {"variant": "on"},
                "prerequisites": [{"flag": "checkout.new-flow", "variants": ["on"]}],
            },
            "production": {
                "enabled": True,
                "fallthrough": {"variant": "on"},
                "prerequisites": [{"flag": "checkout.new-flow", "variants": ["on"]}],
            },
        },
    },
    "web.ui.theme": {
        "name": "Site theme",
        "owner": "web",
        "flag_type": "experiment",
        "kind": "string",
        "variants": {"light": "light", "dark": "dark", "contrast": "high-contrast"},
        "description": "A/B test of the dark theme (string variants).",
        "states": {
            "staging": {"enabled": True, "fallthrough": {"variant": "dark"}},
            "production": {
                "enabled": True,
                "rules": [
                    {
                        "id": "a11y",
                        "when": [{"attr": "username", "op": "eq", "values": ["contrast"]}],
                        "serve": {"variant": "contrast"},
                    }
                ],
                "fallthrough": {
                    "rollout": {
                        "weights": [
                            {"variant": "light", "weight": 50},
                            {"variant": "dark", "weight": 50},
                        ]
                    }
                },
            },
        },
    },
    "search.results-limit": {
        "name": "Search results per page",
        "owner": "web",
        "flag_type": "ops",
        "kind": "integer",
        "variants": {"small": 10, "default": 25, "large": 50},
        "states": {
            "staging": {"enabled": True, "fallthrough": {"variant": "large"}},
            "production": {
                "enabled": True,
                "rules": [
                    {
                        "id": "corp",
                        "when": [{"attr": "email_domain", "op": "eq", "values": ["example.com"]}],
                        "serve": {"variant": "large"},
                    }
                ],
                "fallthrough": {"variant": "default"},
            },
        },
    },
    "pricing.discount-rate": {
        "name": "Discount rate",
        "owner": "growth",
        "flag_type": "experiment",
        "kind": "float",
        "variants": {"none": 0.0, "ten": 0.1, "fifteen": 0.15},
        "states": {
            "staging": {"enabled": True, "fallthrough": {"variant": "fifteen"}},
            "production": {"enabled": True, "fallthrough": {"variant": "ten"}},
        },
    },
    "web.banner.config": {
        "name": "Announcement banner",
        "owner": "growth",
        "flag_type": "permission",
        "kind": "object",
        "variants": {
            "launch": {"text": "The new checkout is here", "color": "#2e7d32"},
            "none": {},
        },
        "states": {
            "staging": {"enabled": True, "fallthrough": {"variant": "launch"}},
            "production": {
                "enabled": True,
                "rules": [
                    {
                        "id": "signed-in",
                        "when": [{"attr": "authenticated", "op": "eq", "values": [True]}],
                        "serve": {"variant": "launch"},
                    }
                ],
                "fallthrough": {"variant": "none"},
            },
        },
    },
    ROLLOUT_FLAG: {
        "name": "Instant search results",
        "owner": "web",
        "flag_type": "release",
        "kind": "boolean",
        "description": "Rolled out in staging by a rollout plan: 5% more each minute.",
        "states": {
            "staging": {"enabled": True, "fallthrough": {"variant": "off"}},
            "production": {"enabled": False, "fallthrough": {"variant": "off"}},
        },
    },
    "ops.maintenance-mode": {
        "name": "Maintenance mode",
        "owner": "web",
        "flag_type": "ops",
        "kind": "boolean",
        "description": "Switched off everywhere: the code's default is served.",
        "states": {
            "staging": {"enabled": False, "fallthrough": {"variant": "on"}},
            "production": {"enabled": False, "fallthrough": {"variant": "on"}},
        },
    },
}

DEMO_SEGMENT: dict[str, Any] = {
    "key": "beta-testers",
    "name": "Beta testers",
    "description": "Named testers plus everyone at example.org",
    "include": [],
    "exclude": [],
    "conditions": [{"attr": "email_domain", "op": "eq", "values": ["example.org"]}],
}


class Command(BaseCommand):
    help = "Migrate, load flagapp demo data through the services, create the admin user."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reset", action="store_true", help="start from an empty database")
        parser.add_argument(
            "--no-migrate",
            action="store_true",
            help="do not run migrate (the tables exist already)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["reset"]:
            self._reset()
        if not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        admin = self._admin()
        reviewer = self._reviewer()
        load_demo_data(admin, reviewer=reviewer, stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("flagapp demo data is loaded."))
        addr = os.environ.get("DEMO_ADDR", "127.0.0.1:8000")  # the Makefile's runserver address
        self.stdout.write(
            f"\n  Demo page:  http://{addr}/\n"
            f"  Admin:      http://{addr}/admin/\n"
            f"  Login:      {ADMIN_USERNAME} / {ADMIN_PASSWORD}   (superuser; proposes changes)\n"
            f"  Reviewer:   {REVIEWER_USERNAME} / {REVIEWER_PASSWORD}   (approves change "
            "requests)\n"
            f"  Production is protected: a change there becomes a change request for the other\n"
            f"  user to approve. The rollout of {ROLLOUT_FLAG} in staging advances every "
            f"{ROLLOUT_STEP_SECONDS} s\n"
            "  while `manage.py flagapp_run_tasks --loop` runs (make demo starts it).\n"
        )

    def _reset(self) -> None:
        conn = connections["default"]
        name = str(conn.settings_dict.get("NAME") or "")
        if (
            conn.vendor == "sqlite"
            and name
            and ":memory:" not in name
            and "mode=memory" not in name
        ):
            conn.close()
            path = Path(name)
            if path.exists():
                path.unlink()
                self.stdout.write(f"Removed {path}")
        else:
            call_command("flush", interactive=False, verbosity=0)

    def _reviewer(self) -> Any:
        """The second person: staff, sees every flagapp page, approves change requests,
        changes nothing directly."""
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Permission

        user_model = get_user_model()
        reviewer, _ = user_model.objects.get_or_create(
            username=REVIEWER_USERNAME, defaults={"email": "reviewer@example.com"}
        )
        reviewer.is_staff = True
        reviewer.is_superuser = False
        reviewer.set_password(REVIEWER_PASSWORD)
        reviewer.save()
        perms = Permission.objects.filter(content_type__app_label="flagapp").filter(
            codename__startswith="view_"
        ) | Permission.objects.filter(
            content_type__app_label="flagapp", codename="approve_changerequest"
        )
        reviewer.user_permissions.add(*perms)
        return reviewer

    def _admin(self) -> Any:
        from django.contrib.auth import get_user_model

        user_model = get_user_model()
        admin, _ = user_model.objects.get_or_create(
            username=ADMIN_USERNAME, defaults={"email": "admin@example.com"}
        )
        admin.is_staff = True
        admin.is_superuser = True
        admin.set_password(ADMIN_PASSWORD)
        admin.save()
        return admin


def load_demo_data(actor: Any, *, reviewer: Any = None, stdout: Any = None) -> None:
    """Create whatever demo data is missing, through the services, then publish: flags,
    the pending change request (by ``actor``, for ``reviewer``), the running rollout and the
    experiment with its events."""
    from django.db import transaction

    from flagapp import snapshot

    # One transaction: the services' on-commit publishes then happen once per environment.
    with transaction.atomic():
        envs = _load(actor, stdout)
    for env in envs:
        snapshot.publish(env)
    by_key = {env.key: env for env in envs}
    with transaction.atomic():
        _pending_change_request(actor, by_key["production"], stdout)
    with transaction.atomic():
        _running_rollout(actor, by_key["staging"], stdout)
    with transaction.atomic():
        _experiment(actor, by_key["production"], stdout)
    for env in envs:
        snapshot.publish(env)


def _pending_change_request(author: Any, production: Any, stdout: Any) -> None:
    """A change to production waiting for the reviewer (made once: an approved or rejected
    request is not proposed again)."""
    from flagapp import services
    from flagapp.exceptions import ApprovalRequired
    from flagapp.governance import change_requests as crs
    from flagapp.models import ChangeRequest, Flag, FlagState

    flag = Flag.objects.get(key=CHANGE_REQUEST_FLAG)
    if ChangeRequest.objects.filter(flag=flag).exists():
        return
    state = FlagState.objects.get(flag=flag, environment=production)
    rules = [
        {"id": r.rule_id, "description": r.description, "when": r.conditions, "serve": r.serve}
        for r in state.rules.order_by("order")
    ]
    rules.append(
        {
            "id": "pro-plans",
            "description": "Pro customers asked for longer result pages",
            "when": [{"attr": "plan", "op": "in", "values": ["pro", "enterprise"]}],
            "serve": {"variant": "large"},
        }
    )
    reason = "Pro customers asked for 50 results per page (support ticket 4711)"
    try:
        services.update_flag_state(
            flag, production, actor=author, reason=reason, expected_version=state.version,
            rules=rules,
        )  # fmt: skip
    except ApprovalRequired as exc:
        cr = crs.propose_from(exc, author=author, reason=reason)
        if stdout is not None:
            stdout.write(f"  change request #{cr.pk} waits for {REVIEWER_USERNAME}")


def _running_rollout(actor: Any, staging: Any, stdout: Any) -> None:
    """A rollout plan of the instant-results flag in staging, started once (it advances
    with ``flagapp_run_tasks --loop``; a finished or rolled-back plan is left alone)."""
    from flagapp.models import Flag, RolloutPlan
    from flagapp.rollouts import controller

    flag = Flag.objects.get(key=ROLLOUT_FLAG)
    if RolloutPlan.objects.filter(flag=flag, environment=staging).exists():
        return
    plan = controller.create_plan(
        flag, staging, treatment="on", control="off", actor=actor, steps=ROLLOUT_STEPS,
        min_step_seconds=ROLLOUT_STEP_SECONDS,
    )  # fmt: skip
    controller.start(plan, actor=actor, reason="flagapp demo: ramp instant results up")
    if stdout is not None:
        stdout.write(f"  rollout of {ROLLOUT_FLAG} running in staging")


#: Conversion rates of the demo experiment's data (dark converts a little better).
EXPERIMENT_RATES = {"light": 0.10, "dark": 0.125}
EXPERIMENT_USERS = 2000


def _experiment(actor: Any, production: Any, stdout: Any) -> None:
    """The theme experiment with three days of data: each user is assigned by the engine
    (the published split), gets an exposure, and converts at the variant's rate."""
    import random

    from django.utils import timezone

    from flagapp import services
    from flagapp.models import Experiment, Flag, SdkEvent
    from flagapp.publishing import latest
    from openfeature_provider.engine import evaluate, parse_ruleset

    flag = Flag.objects.get(key=EXPERIMENT_FLAG)
    if Experiment.objects.filter(flag=flag, environment=production).exists():
        return
    started = timezone.now() - dt.timedelta(days=3)
    services.create_experiment(
        actor=actor, flag=flag, environment=production, name="Dark theme converts better",
        hypothesis="The dark theme raises checkout conversion by 2 points.",
        control_variant="light", conversion_event="checkout.completed", started_at=started,
        expected_weights={"light": 50, "dark": 50}, minimum_detectable_effect=0.02,
    )  # fmt: skip
    snap = latest(production.key)
    assert snap is not None
    ruleset = parse_ruleset(snap.document)
    rnd = random.Random(4711)
    events = []
    for i in range(EXPERIMENT_USERS):
        key = f"demo-user-{i}"
        variant = evaluate(ruleset, EXPERIMENT_FLAG, {"targetingKey": key}).variant
        if variant not in EXPERIMENT_RATES:
            continue
        seen = started + dt.timedelta(seconds=rnd.randrange(3 * 86400 - 3600))
        events.append(
            SdkEvent(
                environment=production, kind=SdkEvent.KIND_EXPOSURE, key=EXPERIMENT_FLAG,
                flag_key=EXPERIMENT_FLAG, variant=variant, targeting_key=key, timestamp=seen,
            )
        )  # fmt: skip
        if rnd.random() < EXPERIMENT_RATES[variant]:
            events.append(
                SdkEvent(
                    environment=production, kind=SdkEvent.KIND_TRACKING,
                    key="checkout.completed", targeting_key=key, value=1.0,
                    timestamp=seen + dt.timedelta(minutes=rnd.randrange(1, 50)),
                )
            )  # fmt: skip
    SdkEvent.objects.bulk_create(events, batch_size=500)
    if stdout is not None:
        stdout.write(f"  experiment on {EXPERIMENT_FLAG}: {len(events)} events")


def _load(actor: Any, stdout: Any) -> list[Any]:
    from django.contrib.auth.models import Group

    from flagapp import services
    from flagapp.models import Environment, Flag, Segment
    from flagapp.policy import GrantedApproval

    reason = "flagapp demo data"
    envs = {}
    for order, key in enumerate(("staging", "production")):
        env = Environment.objects.filter(key=key).first()
        if env is None:
            env = services.create_environment(
                key=key, name=key.title(), order=order, protected=key == "production",
                actor=actor, reason=reason,
            )  # fmt: skip
        envs[key] = env
    for owner in ("web", "payments", "growth"):
        Group.objects.get_or_create(name=owner)
    if not Segment.objects.filter(key=DEMO_SEGMENT["key"]).exists():
        services.create_segment(actor=actor, reason=reason, **DEMO_SEGMENT)
    for key, spec in DEMO_FLAGS.items():
        if Flag.objects.filter(key=key).exists():
            continue
        spec = dict(spec)
        states = spec.pop("states")
        if spec["flag_type"] == "release":
            spec["expires_on"] = _release_expiry()
        flag = services.create_flag(key=key, actor=actor, reason=reason, **spec)
        for env_key, state in states.items():
            # The demo's starting point is written as an approved change would be (the
            # seeding is the system's, like the tests' baselines).
            services.update_flag_state(
                flag, envs[env_key], actor=actor, reason=reason,
                change_request=GrantedApproval(), **state,
            )  # fmt: skip
        if stdout is not None:
            stdout.write(f"  flag {key}")
    return list(envs.values())
