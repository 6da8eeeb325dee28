"""``manage.py flagapp_import FILE --reason TEXT [...]``: apply a flags-as-code document.

Everything is validated before anything is committed (one transaction); applying the same
file twice changes nothing the second time. ``--from-environment staging
--to-environment production`` promotes the file's staging states to production. Use ``-``
for standard input (``flagapp_export -e staging | flagapp_import - ...``).

``--format flagd FILE --environment ENV`` reads flagd flag definitions instead
(docs/interop.md, "flagd import"): ``openfeature_provider.interop.flagd_import`` turns them into
flags, segments and ENV's states, applied by the same ``import_config`` (the services), so
validation, governance, history and publishing are those of any import. What flagapp cannot
evaluate identically is refused with the flag and the JSON path, and nothing is written.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from flagapp.exceptions import FlagValidationError
from flagapp.management.importing import (
    add_governance_arguments,
    refused,
    resolve_governance,
    write_result,
)
from flagapp.services.code import import_config
from openfeature_provider.interop.flagd import BUCKETING_MODES


class Command(BaseCommand):
    help = "Import (or promote) flags, variants, segments, states and rules from JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The JSON document ('-' for standard input).")
        add_governance_arguments(
            parser,
            user_help="Record the changes as made by this user (permissions apply).",
            change_request_help="An approved change request covering protected changes.",
            dry_run_help="Validate and report, then roll everything back.",
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
            "--format",
            choices=("flagapp", "flagd"),
            default="flagapp",
            help="flagapp (default): flags-as-code JSON; flagd: flagd flag definitions, applied "
            "to one environment (--environment, or the file's metadata.flagSetId).",
        )
        parser.add_argument(
            "--flagd-bucketing",
            choices=BUCKETING_MODES,
            default="cbor",
            help="Which flagd generation the file was written for: cbor (default, flagd-core "
            "2.x) or legacy (flagd-core 1.x). Decides how fractional splits are read.",
        )
        parser.add_argument(
            "--owner",
            metavar="GROUP",
            help="flagd: owner group of new flags whose metadata names none.",
        )
        parser.add_argument(
            "--flag-type",
            default="ops",
            help="flagd: type of new flags whose metadata names none (default: ops; release "
            "flags need an expiry, which flagd files do not carry).",
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
        actor, change_request = resolve_governance(options)
        if options["format"] == "flagd":
            doc, options["environments"] = self._from_flagd(doc, options)
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
            raise refused(exc) from None
        write_result(self.stdout, result)

    @staticmethod
    def _from_flagd(defs: Any, options: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The flags-as-code document of flagd ``defs`` for one environment."""
        from flagapp.services.flagd import flagd_to_config
        from openfeature_provider.interop.flagd_import import FlagdImportError

        if options["from_environment"] or options["to_environment"]:
            raise CommandError("--format flagd applies to one environment: use --environment")
        environments = options["environments"] or []
        if not environments and isinstance(defs, dict):
            set_id = (defs.get("metadata") or {}).get("flagSetId")
            environments = [set_id] if isinstance(set_id, str) else []
        if len(environments) != 1:
            raise CommandError(
                "--format flagd imports into one environment: give --environment ENV"
            )
        try:
            doc = flagd_to_config(
                defs,
                environment=environments[0],
                bucketing=options["flagd_bucketing"],
                owner=options["owner"],
                flag_type=options["flag_type"],
            )
        except FlagdImportError as exc:
            raise CommandError(f"import refused, nothing was written: {exc}") from None
        except FlagValidationError as exc:
            raise refused(exc) from None
        return doc, environments
