"""``manage.py flagapp_demo [--reset]``: a ready-to-click flagapp (what ``make demo`` runs).

Migrates the database, loads demo data **through the services** (so it is exactly what an
admin user could have made: validated, with history and reasons), creates or refreshes the
superuser ``admin`` and publishes every environment's snapshot, then prints how to log in.

Demo data: environments ``staging`` and ``production``; owners ``web``, ``payments``,
``growth``; flags of every kind (boolean, string, integer, float, object) and type (release,
experiment, ops, permission); a segment ``beta-testers``; targeting rules; a percentage
rollout; a prerequisite; a flag switched off (kill switch).

``--reset`` starts from an empty database (the SQLite file is deleted; another database is
flushed). Without it, existing demo flags are left as they are and only missing ones are
added, so running it twice is harmless.
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
        load_demo_data(admin, stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("flagapp demo data is loaded."))
        addr = os.environ.get("DEMO_ADDR", "127.0.0.1:8000")  # the Makefile's runserver address
        self.stdout.write(
            f"\n  Demo page:  http://{addr}/\n"
            f"  Admin:      http://{addr}/admin/\n"
            f"  Login:      {ADMIN_USERNAME} / {ADMIN_PASSWORD}\n"
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


def load_demo_data(actor: Any, *, stdout: Any = None) -> None:
    """Create whatever demo data is missing, through the services, then publish."""
    from django.db import transaction

    from flagapp import snapshot

    # One transaction: the services' on-commit publishes then happen once per environment.
    with transaction.atomic():
        envs = _load(actor, stdout)
    for env in envs:
        snapshot.publish(env)


def _load(actor: Any, stdout: Any) -> list[Any]:
    from django.contrib.auth.models import Group

    from flagapp import services
    from flagapp.models import Environment, Flag, Segment

    reason = "flagapp demo data"
    envs = {}
    for order, key in enumerate(("staging", "production")):
        env = Environment.objects.filter(key=key).first()
        if env is None:
            env = services.create_environment(
                key=key, name=key.title(), order=order, actor=actor, reason=reason
            )
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
            services.update_flag_state(flag, envs[env_key], actor=actor, reason=reason, **state)
        if stdout is not None:
            stdout.write(f"  flag {key}")
    return list(envs.values())
