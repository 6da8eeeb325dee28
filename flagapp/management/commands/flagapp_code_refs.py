"""``manage.py flagapp_code_refs PATH...``: compare flag keys in source code with the flags.

Reports flags that no scanned file references (dead configuration) and keys the code reads
that the server does not know (unmanaged flags: they always serve the code's default).
Exit status 1 when either list is non-empty. Patterns come from
``FLAGAPP["CODE_REF_PATTERNS"]`` (regular expressions with a ``key`` group) or
``--pattern``; see :mod:`flagapp.governance.coderefs`.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from flagapp.conf import settings
from flagapp.governance import coderefs


class Command(BaseCommand):
    help = "Scan source for flag keys; report unreferenced flags and unknown keys."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument(
            "--pattern",
            action="append",
            default=[],
            help="a regular expression with a (?P<key>...) group; replaces the configured ones",
        )
        parser.add_argument(
            "--ignore", action="append", default=[], help="a flag key exempt from both checks"
        )
        parser.add_argument(
            "--include-archived",
            action="store_true",
            help="count archived flags as known (by default a reference to one is unknown)",
        )
        parser.add_argument(
            "--waffle",
            action="store_true",
            help="list the django-waffle call sites left instead (docs/migrating-from-waffle.md)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from flagapp.models import Flag

        if options["waffle"]:
            self._waffle(options)
            return
        patterns = options["pattern"] or settings.CODE_REF_PATTERNS or None
        try:
            refs = coderefs.scan_paths(
                options["paths"], patterns=patterns, extensions=settings.CODE_REF_EXTENSIONS
            )
        except (ValueError, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from exc
        flags = Flag.objects.all()
        if not options["include_archived"]:
            flags = flags.filter(archived=False)
        known = flags.values_list("key", flat=True)
        ignore = [*settings.CODE_REF_IGNORE, *options["ignore"]]
        report = coderefs.compare(refs, known, ignore=ignore)
        if options["json"]:
            self.stdout.write(json.dumps({"ok": report.ok, **report.as_dict()}, indent=2))
        else:
            self.stdout.write(f"{len(refs)} reference(s) found")
            if report.unreferenced:
                self.stdout.write(f"\nflags with no reference ({len(report.unreferenced)}):")
                for key in report.unreferenced:
                    self.stdout.write(f"  {key}")
            if report.unknown:
                self.stdout.write(f"\nreferences to unknown flags ({len(report.unknown)}):")
                for key, found in report.unknown.items():
                    where = ", ".join(f"{r.path}:{r.line}" for r in found[:5])
                    more = f" (+{len(found) - 5} more)" if len(found) > 5 else ""
                    self.stdout.write(f"  {key}  {where}{more}")
        if not report.ok:
            raise CommandError(
                f"flagapp_code_refs: {len(report.unreferenced)} unreferenced, "
                f"{len(report.unknown)} unknown",
                returncode=1,
            )

    def _waffle(self, options: dict[str, Any]) -> None:
        """Remaining waffle call sites; exit status 1 while there are any."""
        from flagapp.contrib.waffle.coderefs import report
        from flagapp.models import Flag

        try:
            text, left = report(
                options["paths"],
                Flag.objects.values_list("key", flat=True),
                as_json=options["json"],
            )
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(text)
        if left:
            raise CommandError(
                f"flagapp_code_refs: {left} django-waffle call site(s) left", returncode=1
            )
