"""``manage.py flagapp_lint``: fail a CI pipeline while flags are expired, unowned or stale.

Exit status 0 when there is no finding, 1 when there are (listed on stdout, or as JSON with
``--json``). See :mod:`flagapp.governance.lint` for the rules.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from flagapp.governance.lint import RULES, lint


class Command(BaseCommand):
    help = "List expired, unowned and stale flags; exit non-zero when there is any."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the findings as JSON")
        parser.add_argument(
            "--skip",
            action="append",
            default=[],
            choices=RULES,
            metavar="RULE",
            help=f"skip a rule (repeatable): {', '.join(RULES)}",
        )
        parser.add_argument(
            "--stale-days", type=int, default=None, help="override FLAGAPP['STALE_DAYS']"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        rules = [r for r in RULES if r not in set(options["skip"])]
        findings = lint(rules=rules, stale_days=options["stale_days"])
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {"ok": not findings, "findings": [f.as_dict() for f in findings]}, indent=2
                )
            )
        elif findings:
            width = max(len(f.flag) for f in findings)
            for f in findings:
                self.stdout.write(f"{f.flag.ljust(width)}  {f.rule:<15}  {f.message}")
            self.stdout.write(f"{len(findings)} finding(s)")
        else:
            self.stdout.write("no findings")
        if findings:
            # CommandError exits with its returncode and prints the message on stderr.
            raise CommandError(f"flagapp_lint: {len(findings)} finding(s)", returncode=1)
