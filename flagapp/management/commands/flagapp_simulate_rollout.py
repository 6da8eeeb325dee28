"""``manage.py flagapp_simulate_rollout``: two rollouts driven by synthetic traffic through
the real provider and track path — a healthy one that reaches 100%, and one whose new
variant starts failing and is rolled back automatically. Prints both timelines.

Works on the embedded default (SQLite, no broker, no server running): the app is served
in-process on 127.0.0.1 and time is simulated (see flagapp.rollouts.simulation).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Simulate rollouts with synthetic traffic through FlagappProvider: a healthy one "
        "reaches 100%, an error spike in the new variant is rolled back. Prints the timeline."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--scenario", choices=["both", "healthy", "spike"], default="both")
        parser.add_argument("--users", type=int, default=2000, help="Users per tick.")
        parser.add_argument("--tick-minutes", type=float, default=5.0)
        parser.add_argument("--step-minutes", type=float, default=10.0)
        parser.add_argument(
            "--steps", default="500,2500,5000,10000", help="Basis points (100 = 1%%)."
        )
        parser.add_argument("--threshold", type=float, default=0.01, help="Max error rate.")
        parser.add_argument("--min-sample", type=int, default=150)
        parser.add_argument("--spike-error-rate", type=float, default=0.08)
        parser.add_argument("--spike-from-step", type=int, default=1, help="Step index (0-based).")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--environment", default="simulation")
        parser.add_argument("--url", default=None, help="Use a running server instead.")
        parser.add_argument("--svg-dir", default=None, help="Write timeline charts here.")

    def handle(self, *args: Any, **options: Any) -> None:
        from contextlib import nullcontext

        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.core import mail
        from django.test.utils import override_settings

        from flagapp import services
        from flagapp.models import Environment
        from flagapp.rollouts.simulation import Scenario, format_timeline, run_scenario
        from flagapp.rollouts.simulation import serve_in_thread as serve
        from flagapp.services.sdk_keys import create_sdk_key

        try:
            steps = tuple(int(s) for s in options["steps"].split(","))
        except ValueError:
            raise CommandError("--steps must be comma-separated integers") from None
        env = Environment.objects.filter(key=options["environment"]).first()
        if env is None:
            env = services.create_environment(
                key=options["environment"],
                name="Simulation",
                actor=None,
                reason="rollout simulation",
            )
        owner = Group.objects.get_or_create(name="simulation")[0]
        User = get_user_model()
        if not owner.user_set.exists():
            user = User.objects.create(username="simulation-owner", email="owner@sim.example")
            user.groups.add(owner)
        _, token = create_sdk_key(
            env, name="rollout simulation", actor=None, reason="rollout simulation"
        )
        common = {
            "users_per_tick": options["users"],
            "tick": timedelta(minutes=options["tick_minutes"]),
            "min_step": timedelta(minutes=options["step_minutes"]),
            "steps": steps,
            "threshold": options["threshold"],
            "min_sample": options["min_sample"],
            "seed": options["seed"],
        }
        scenarios = []
        if options["scenario"] in ("both", "healthy"):
            scenarios.append(Scenario("healthy", **common))
        if options["scenario"] in ("both", "spike"):
            scenarios.append(
                Scenario(
                    "spike",
                    spike=(options["spike_error_rate"], options["spike_from_step"]),
                    **common,
                )
            )
        expected = {"healthy": "completed", "spike": "rolled_back"}
        failures = []
        server = nullcontext(options["url"]) if options["url"] else serve()
        # Owner emails are captured in memory and summarised, never sent from a simulation.
        capture = override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
        with capture, server as url:
            mail.outbox = []
            self.stdout.write(f"flagapp server: {url} (environment {env.key})")
            for scenario in scenarios:
                self.stdout.write(f"\n== {scenario.name}: " + _describe(scenario))
                result = run_scenario(scenario, url=url, token=token, environment=env, owner=owner)
                self.stdout.write(format_timeline(result))
                self.stdout.write(
                    f"-> flag {result.flag_key}, rollout #{result.plan_id}: {result.final_state}"
                )
                for message in mail.outbox:
                    self.stdout.write(f"   email to {', '.join(message.to)}: {message.subject}")
                mail.outbox = []
                if options["svg_dir"]:
                    path = _write_svg(result.plan_id, Path(options["svg_dir"]))
                    self.stdout.write(f"   timeline chart: {path}")
                if result.final_state != expected[scenario.name]:
                    failures.append(f"{scenario.name} ended {result.final_state}")
        if failures:
            raise CommandError("unexpected outcome: " + "; ".join(failures))
        self.stdout.write(self.style.SUCCESS("\nsimulation finished as expected"))


def _describe(s: Any) -> str:
    from flagapp.rollouts.schedule import format_bps

    steps = " -> ".join(format_bps(b) for b in s.steps)
    spike = (
        f"; the new variant fails {s.spike[0]:.0%} of requests from step {s.spike[1] + 1}"
        if s.spike
        else "; healthy traffic"
    )
    return (
        f"{s.users_per_tick:,} users per {s.tick}, steps {steps} held >= {s.min_step}, "
        f"error_rate <= {s.threshold:.1%} (n >= {s.min_sample}){spike}"
    )


def _write_svg(plan_id: int, directory: Path) -> Path:
    from flagapp.models import RolloutPlan
    from flagapp.rollouts.views import plan_timeline_svg

    directory.mkdir(parents=True, exist_ok=True)
    plan = RolloutPlan.objects.get(pk=plan_id)
    path = directory / f"rollout-{plan_id}-{plan.flag.key}.svg"
    path.write_text(plan_timeline_svg(plan), encoding="utf-8")
    return path
