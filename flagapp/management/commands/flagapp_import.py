"""``manage.py flagapp_import FILE --reason TEXT [...]``: apply a flags-as-code document.

Everything is validated before anything is committed (one transaction); applying the same
file twice changes nothing the second time. ``--from-environment staging
--to-environment production`` promotes the file's staging states to production. Use ``-``
for standard input (``flagapp_export -e staging | flagapp_import - ...``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from flagapp.exceptions import FlagValidationError
from flagapp.services.code import import_config


class Command(BaseCommand):
    help = "Import (or promote) flags, variants, segments, states and rules from JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The JSON document ('-' for standard input).")
        parser.add_argument(
            "--reason", "-r", required=True, help="Why: recorded in the history of every change."
        )
        parser.add_argument(
            "--environment",
            "-e",
            action="append",
            dest="environments",
            metavar="ENV",
            help="Only apply this environment's states (repeatable).",
        )
        parser.add_argument(
            "--from-environment",
            metavar="SRC",
            help="Promote: read the states of SRC from the file...",
        )
        parser.add_argument("--to-environment", metavar="DST", help="...and apply them to DST.")
        parser.add_argument(
            "--create-environments",
            action="store_true",
            help="Create environments the file names but the database lacks.",
        )
        parser.add_argument(
            "--user",
            metavar="USERNAME",
            help="Record the changes as made by this user (permissions apply).",
        )
        parser.add_argument(
            "--change-request",
            type=int,
            metavar="ID",
            help="An approved change request covering protected changes.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Validate and report, then roll everything back."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["file"] == "-":
                doc = json.load(sys.stdin)
            else:
                with open(options["file"], encoding="utf-8") as fh:
                    doc = json.load(fh)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {options['file']}: {exc}") from None
        actor = None
        if options["user"]:
            user_model = get_user_model()
            try:
                actor = user_model._default_manager.get_by_natural_key(options["user"])
            except user_model.DoesNotExist:
                raise CommandError(f"no user {options['user']!r}") from None
        change_request = None
        if options["change_request"] is not None:
            from flagapp.models import ChangeRequest

            change_request = ChangeRequest.objects.filter(pk=options["change_request"]).first()
            if change_request is None:
                raise CommandError(f"no change request #{options['change_request']}")
        try:
            result = import_config(
                doc,
                actor=actor,
                reason=options["reason"],
                environments=options["environments"],
                from_environment=options["from_environment"],
                to_environment=options["to_environment"],
                create_environments=options["create_environments"],
                change_request=change_request,
                dry_run=options["dry_run"],
            )
        except FlagValidationError as exc:
            lines = [f"{where}: {msg}" for where, msgs in exc.message_dict.items() for msg in msgs]
            raise CommandError(
                "import refused, nothing was written:\n  " + "\n  ".join(lines)
            ) from None
        for label in result.created:
            self.stdout.write(f"created  {label}")
        for label in result.changed:
            self.stdout.write(f"changed  {label}")
        self.stdout.write(result.summary())
