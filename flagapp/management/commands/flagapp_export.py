"""``manage.py flagapp_export [--environment ENV ...] [--output FILE]``: the flag
configuration as one JSON document (docs/flags-as-code.md), sorted so that it diffs cleanly
in version control."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from flagapp.exceptions import FlagValidationError
from flagapp.services.code import export_config


class Command(BaseCommand):
    help = "Export flags, variants, segments and per-environment states and rules as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--environment",
            "-e",
            action="append",
            dest="environments",
            metavar="ENV",
            help="Only this environment's states (repeatable). Default: every environment.",
        )
        parser.add_argument(
            "--output", "-o", metavar="FILE", help="Write to FILE instead of standard output."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            doc = export_config(options["environments"])
        except FlagValidationError as exc:
            raise CommandError(str(exc)) from None
        text = json.dumps(doc, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as fh:
                fh.write(text)
            self.stderr.write(
                f"exported {len(doc['flags'])} flags, {len(doc['segments'])} segments to "
                f"{options['output']}"
            )
        else:
            self.stdout.write(text, ending="")
