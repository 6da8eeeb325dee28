"""A separate process for tests/flagapp/notifications/test_outbox_notifications.py.

``python -m tests.flagapp.notifications.outbox_child setup URL``   schema (SQLite file only),
                                                                production, a flag, a webhook
                                                                endpoint posting to URL
``python -m tests.flagapp.notifications.outbox_child change-and-die`` turns the flag on
                                                                through the services and dies
                                                                with os._exit(3) right after
                                                                COMMIT, before any on_commit
                                                                callback (publish, dispatch)
``python -m tests.flagapp.notifications.outbox_child report``  prints the stored events and
                                                                deliveries as JSON

The second is the process death the notification outbox is for: the change and its
notification intent (event + pending delivery) committed together, nothing sent yet.
"""

from __future__ import annotations

import json
import os
import sys


def main(command: str, *args: str) -> None:
    import django

    django.setup()
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from flagapp import services
    from flagapp.models import Environment, Flag, NotificationDelivery, WebhookEndpoint

    if command == "setup":
        if os.environ.get("RECONCILE_CHILD_MIGRATE") == "1":
            call_command("migrate", verbosity=0)
        services.create_environment(key="production", name="Production", actor=None, reason="x")
        owner = Group.objects.get_or_create(name="payments")[0]
        services.create_flag(
            key="checkout.new-flow",
            name="New",
            owner=owner,
            flag_type="ops",
            actor=None,
            reason="x",
        )
        WebhookEndpoint.objects.create(name="hook", url=args[0], event_types=["flag.changed"])
    elif command == "change-and-die":
        from django.db import connection

        def die() -> None:
            sys.stdout.flush()
            os._exit(3)  # gone right after COMMIT: no on_commit callback ran

        connection.run_and_clear_commit_hooks = die  # type: ignore[method-assign]
        flag = Flag.objects.get(key="checkout.new-flow")
        env = Environment.objects.get(key="production")
        services.set_flag_enabled(flag, env, True, actor=None, reason="launch, then die")
        raise SystemExit("the after-commit delivery did not run")
    elif command == "report":
        rows = NotificationDelivery.objects.select_related("event").order_by("pk")
        print(
            json.dumps(
                [
                    {
                        "event_id": str(d.event.event_id),
                        "type": d.event.event_type,
                        "operation": d.event.payload["data"].get("operation"),
                        "status": d.status,
                        "attempts": d.attempts,
                    }
                    for d in rows
                ]
            )
        )
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1], *sys.argv[2:])
