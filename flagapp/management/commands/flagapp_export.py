"""``manage.py flagapp_export [--environment ENV ...] [--output FILE]``: the flag
configuration as one JSON document (docs/flags-as-code.md), sorted so that it diffs cleanly
in version control.

``--format flagd --environment ENV [--flagd-bucketing cbor|legacy]`` writes that environment's
flags as flagd flag definitions instead (docs/interop.md); what flagd cannot evaluate
identically is refused with the flag and JSON path."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from flagapp.exceptions import FlagValidationError
from flagapp.services.code import export_config
from openfeature_provider.interop.flagd import BUCKETING_MODES, FlagdExportError, export_flagd


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
        parser.add_argument(
            "--format",
            choices=("flagapp", "flagd"),
            default="flagapp",
            help="flagapp (default): flags-as-code JSON; flagd: flagd flag definitions of one "
            "environment.",
        )
        parser.add_argument(
            "--flagd-bucketing",
            choices=BUCKETING_MODES,
            default="cbor",
            help="cbor (default): flagd-core 2.x / flagd after its hashing ADR; legacy: "
            "flagd-core 1.x / older flagd. See docs/bucketing.md.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["format"] == "flagd":
            doc = self._flagd(options["environments"] or [], options["flagd_bucketing"])
        else:
            try:
                doc = export_config(options["environments"])
            except FlagValidationError as exc:
                raise CommandError(str(exc)) from None
        text = json.dumps(doc, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as fh:
                fh.write(text)
            self.stderr.write(
                f"exported {len(doc['flags'])} flags, "
                f"{len(doc.get('segments', doc.get('$evaluators', {})))} segments to "
                f"{options['output']}"
            )
        else:
            self.stdout.write(text, ending="")

    @staticmethod
    def _flagd(environments: list[str], bucketing: Any) -> dict[str, Any]:
        from flagapp.documents import compile_environment
        from flagapp.models import Environment

        if len(environments) != 1:
            raise CommandError("--format flagd exports one environment: give --environment ENV")
        try:
            environment = Environment.objects.get(key=environments[0])
        except Environment.DoesNotExist:
            raise CommandError(f"unknown environment {environments[0]!r}") from None
        try:
            return export_flagd(compile_environment(environment), bucketing)
        except FlagdExportError as exc:
            raise CommandError(f"cannot export to flagd identically: {exc}") from None
