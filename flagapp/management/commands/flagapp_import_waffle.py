"""``manage.py flagapp_import_waffle --reason TEXT --owner GROUP [--dry-run] [-e ENV ...]``.

Reads django-waffle's Flags, Switches and Samples from this project's database (waffle
must still be in INSTALLED_APPS) and creates or updates the matching flagapp flags in every
environment (or the ``-e`` ones), creating ``FLAGAPP["ENVIRONMENT"]`` when there is none.
One transaction through ``flagapp.services.code.import_config``; a second run changes
nothing. ``--dry-run`` prints what each waffle object becomes and every semantic
difference, then rolls back. The mapping: docs/migrating-from-waffle.md.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from flagapp.conf import settings as flagapp_settings
from flagapp.exceptions import FlagValidationError
from flagapp.management.importing import (
    add_governance_arguments,
    refused,
    resolve_governance,
    write_result,
)

WAFFLE_CONTEXT_BUILDER = "flagapp.contrib.waffle.context.waffle_context"


class Command(BaseCommand):
    help = "Import django-waffle Flags, Switches and Samples as flagapp flags."

    def add_arguments(self, parser: CommandParser) -> None:
        add_governance_arguments(
            parser,
            user_help="Record the changes as made by this user.",
            change_request_help="An approved change request covering protected environments.",
            dry_run_help="Print what each waffle object becomes and the differences; write "
            "nothing.",
        )
        parser.add_argument(
            "--owner",
            required=True,
            metavar="GROUP",
            help="Owner group (a Django group name) of the flags this run creates.",
        )
        parser.add_argument(
            "--environment",
            "-e",
            action="append",
            dest="environments",
            metavar="ENV",
            help="Import into this environment only (repeatable; default: every environment).",
        )
        parser.add_argument(
            "--expires-in",
            type=int,
            default=None,
            metavar="DAYS",
            help="Expiry of new release flags, in days from today (default: 90, at most "
            "FLAGAPP['RELEASE_EXPIRY_MAX_DAYS']).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from flagapp.contrib.waffle.importer import build_plan, waffle_installed
        from flagapp.models import Environment
        from flagapp.services.code import import_config

        if not waffle_installed():
            raise CommandError(
                "django-waffle is not installed in this project: keep 'waffle' in "
                "INSTALLED_APPS (not flagapp.contrib.waffle) while importing"
            )
        if not Group.objects.filter(name=options["owner"]).exists():
            raise CommandError(f"--owner: no group named {options['owner']!r}")
        actor, change_request = resolve_governance(options)

        max_days = int(flagapp_settings.RELEASE_EXPIRY_MAX_DAYS)
        days = options["expires_in"] if options["expires_in"] is not None else min(90, max_days)
        if not 1 <= days <= max_days:
            raise CommandError(f"--expires-in: between 1 and {max_days} days")
        expires_on = timezone.localdate() + dt.timedelta(days=days)

        existing = list(Environment.objects.values_list("key", flat=True))
        create = not existing
        if options["environments"]:
            envs = list(dict.fromkeys(options["environments"]))
            missing = [e for e in envs if e not in existing]
            if missing and not create:
                raise CommandError(
                    f"--environment: no environment {', '.join(map(repr, missing))} "
                    f"(existing: {', '.join(existing)})"
                )
        else:
            envs = existing or [str(flagapp_settings.ENVIRONMENT)]

        builder = flagapp_settings.CONTEXT_BUILDER
        builder_ok = builder == WAFFLE_CONTEXT_BUILDER or (
            callable(builder)
            and getattr(builder, "__module__", "") + "." + getattr(builder, "__qualname__", "")
            == WAFFLE_CONTEXT_BUILDER
        )
        try:
            plan = build_plan(
                owner=options["owner"],
                environments=envs,
                expires_on=expires_on,
                context_builder_ok=builder_ok,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if create:
            plan.document["environments"] = [
                {"key": e, "name": e.replace("-", " ").replace("_", " ").title()} for e in envs
            ]
        try:
            result = import_config(
                plan.document,
                actor=actor,
                reason=options["reason"],
                environments=envs,
                create_environments=create,
                change_request=change_request,
                dry_run=options["dry_run"],
            )
        except FlagValidationError as exc:
            raise refused(exc) from None

        out = self.stdout
        verb = "would import" if options["dry_run"] else "imported"
        out.write(f"{verb} {len(plan.objects)} waffle object(s) into: {', '.join(envs)}\n")
        if plan.objects:
            out.write(plan.table() + "\n")
        diffs = plan.differences()
        if diffs:
            out.write("\nsemantic differences:\n")
            for d in diffs:
                out.write(f"  - {d}\n")
        if plan.uses_waffle_context and not builder_ok:
            out.write(
                "\nwarning: some flags use waffle languages or testing mode; set "
                f"FLAGAPP['CONTEXT_BUILDER'] = {WAFFLE_CONTEXT_BUILDER!r} (or add "
                "flagapp.contrib.waffle.context.waffle_attributes to your builder)\n"
            )
        out.write("\n")
        write_result(out, result)
