"""What the two import commands share: who is acting, under which change request, and how a
refusal and a result are reported.

``flagapp_import`` (flags-as-code / flagd files) and ``flagapp_import_waffle`` (django-waffle's
tables) both end in ``flagapp.services.code.import_config``; they differ only in where the
document comes from. Keeping the actor/change-request/refusal handling here means both
commands name the offending option the same way and report every refused field, one per line,
with the promise that nothing was written (the import is one transaction).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser, OutputWrapper

from flagapp.exceptions import FlagValidationError

if TYPE_CHECKING:
    from flagapp.models import ChangeRequest
    from flagapp.services.code import ImportResult

__all__ = [
    "add_governance_arguments",
    "refused",
    "resolve_governance",
    "write_result",
]


def add_governance_arguments(
    parser: CommandParser, *, user_help: str, change_request_help: str, dry_run_help: str
) -> None:
    """``--reason`` (required), ``--user``, ``--change-request`` and ``--dry-run``."""
    parser.add_argument(
        "--reason", "-r", required=True, help="Why: recorded in the history of every change."
    )
    parser.add_argument("--user", metavar="USERNAME", help=user_help)
    parser.add_argument("--change-request", type=int, metavar="ID", help=change_request_help)
    parser.add_argument("--dry-run", action="store_true", help=dry_run_help)


def resolve_governance(options: dict[str, Any]) -> tuple[Any, ChangeRequest | None]:
    """The acting user and the change request the options name (both optional).

    Refused with the option's name when either does not exist: an import recorded under
    the wrong user or without its approval is worse than no import."""
    from flagapp.models import ChangeRequest

    actor = None
    if options.get("user"):
        user_model = get_user_model()
        try:
            actor = user_model._default_manager.get_by_natural_key(options["user"])
        except user_model.DoesNotExist:
            raise CommandError(f"--user: no user {options['user']!r}") from None
    change_request = None
    if options.get("change_request") is not None:
        change_request = ChangeRequest.objects.filter(pk=options["change_request"]).first()
        if change_request is None:
            raise CommandError(f"--change-request: no change request #{options['change_request']}")
    return actor, change_request


def refused(exc: FlagValidationError) -> CommandError:
    """The command error for a refused import: every field with its message, one per line."""
    lines = [f"{where}: {msg}" for where, msgs in exc.message_dict.items() for msg in msgs]
    return CommandError("import refused, nothing was written:\n  " + "\n  ".join(lines))


def write_result(out: OutputWrapper, result: ImportResult) -> None:
    """``created``/``changed`` lines, then the summary."""
    for label in result.created:
        out.write(f"created  {label}")
    for label in result.changed:
        out.write(f"changed  {label}")
    out.write(result.summary())
