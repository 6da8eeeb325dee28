"""``manage.py flagapp_api_token create --user NAME [--name LABEL]``, ``revoke``, ``list``.

Management-API tokens (``Authorization: Token fapi_...``). ``create`` prints the new token
once, alone on stdout, so a script can capture it
(``TOKEN=$(manage.py flagapp_api_token create --user deploy-bot)``); everything else goes to
stderr. Only a hash is stored: lose the token and create another.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Create, revoke or list management-API tokens (stored hashed, shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a token and print it once")
        create.add_argument("--user", required=True, help="username the token acts as")
        create.add_argument("--name", default="", help="a label (which script uses it)")
        revoke = sub.add_parser("revoke", help="revoke a token by its prefix or the token")
        revoke.add_argument("token", help="the prefix (see list) or the whole token")
        lst = sub.add_parser("list", help="list tokens (prefixes only, never secrets)")
        lst.add_argument("--user", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        from flagapp.api.tokens import create_api_token, revoke_api_token
        from flagapp.models import ApiToken

        action = options["action"]
        if action == "create":
            model = get_user_model()
            try:
                user = model.objects.get(**{model.USERNAME_FIELD: options["user"]})
            except model.DoesNotExist:
                raise CommandError(f"no user {options['user']!r}")
            if not user.is_active:
                raise CommandError(f"user {options['user']!r} is inactive")
            row, token = create_api_token(user, name=options["name"])
            self.stdout.write(token)
            self.stderr.write(
                f"created API token {row.prefix} for {user.get_username()}; "
                "the token above is shown once"
            )
        elif action == "revoke":
            try:
                row = revoke_api_token(options["token"])
            except ApiToken.DoesNotExist:
                raise CommandError("no such API token")
            self.stderr.write(f"revoked API token {row.prefix} of {row.user.get_username()}")
        else:
            qs = ApiToken.objects.select_related("user").order_by("user_id", "id")
            if options["user"]:
                model = get_user_model()
                qs = qs.filter(**{f"user__{model.USERNAME_FIELD}": options["user"]})
            for row in qs:
                state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
                used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never"
                self.stdout.write(
                    f"{row.prefix}  {row.user.get_username()}  {state}  last used {used}  "
                    f"{row.name}"
                )
