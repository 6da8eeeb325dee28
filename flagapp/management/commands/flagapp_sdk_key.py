"""``manage.py flagapp_sdk_key create --environment KEY [--name NAME] [--scope server|client]
[--reason WHY]``, ``revoke KEY [--reason WHY]`` and ``list``: thin over
:mod:`flagapp.services.sdk_keys` (the admin's SDK keys page uses the same service).

``--scope client`` makes a client-side key (for browsers and apps, where the token is public):
it may call OFREP only; the ruleset, stream and events endpoints refuse it with 403.

``create`` prints the new token once, alone on stdout, so a script can capture it
(``KEY=$(manage.py flagapp_sdk_key create --environment production)``); everything else
goes to stderr. The token is never stored or shown again: lose it and create another.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Create, revoke or list SDK keys (read-only keys for the SDK and OFREP APIs)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a key and print its token once")
        create.add_argument("--environment", required=True, help="environment key")
        create.add_argument("--name", default="", help="a label (which service uses it)")
        create.add_argument(
            "--scope",
            choices=("server", "client"),
            default="server",
            help="server (default): every SDK endpoint; client: OFREP only, for browsers/apps",
        )
        create.add_argument(
            "--reason", default="created with manage.py flagapp_sdk_key", help="why (recorded)"
        )
        revoke = sub.add_parser("revoke", help="revoke a key by its public id or token")
        revoke.add_argument("key", help="the public id (see list) or the whole token")
        revoke.add_argument(
            "--reason", default="revoked with manage.py flagapp_sdk_key", help="why (recorded)"
        )
        lst = sub.add_parser("list", help="list keys (public ids only, never secrets)")
        lst.add_argument("--environment", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        from flagapp.exceptions import FlagValidationError
        from flagapp.models import SdkKey
        from flagapp.sdk.keys import public_id_of
        from flagapp.services.sdk_keys import create_sdk_key, revoke_sdk_key

        action = options["action"]
        try:
            if action == "create":
                key, token = create_sdk_key(
                    options["environment"],
                    name=options["name"],
                    scope=options["scope"],
                    actor=None,
                    reason=options["reason"],
                )
                self.stdout.write(token)
                self.stderr.write(
                    f"created {key.scope} SDK key {key.public_id} for {key.environment.key}; "
                    "the token above is shown once"
                )
                return
            if action == "revoke":
                ident = public_id_of(options["key"]) or options["key"]
                key = revoke_sdk_key(ident, actor=None, reason=options["reason"])
                self.stderr.write(f"revoked SDK key {key.public_id} of {key.environment.key}")
                return
        except FlagValidationError as exc:
            raise CommandError(
                "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            ) from None
        qs = SdkKey.objects.select_related("environment").order_by("environment__key", "id")
        if options["environment"]:
            qs = qs.filter(environment__key=options["environment"])
        for key in qs:
            state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
            used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
            self.stdout.write(
                f"{key.public_id}  {key.environment.key}  {key.scope}  {state}  "
                f"last used {used}  {key.name}"
            )
