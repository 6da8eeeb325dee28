"""A separate process for tests/flagapp/test_reconcile.py (not a test module).

``python -m tests.flagapp.reconcile_child setup``        schema (SQLite file only), a flag on in
                                                         production, an SDK key (prints it)
``python -m tests.flagapp.reconcile_child kill-and-die`` turns the flag off through the
                                                         services, and dies with os._exit(3)
                                                         right after COMMIT, before publishing

The second is the process death of issue 10 finding 1: the change is committed (with its
outbox row), no snapshot carries it, and only the reconciler can heal it.
"""

from __future__ import annotations

import json
import os
import sys


def main(command: str) -> None:
    import django

    django.setup()
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from flagapp import publishing, services
    from flagapp.models import Environment, Flag
    from flagapp.services import sdk_keys

    if command == "setup":
        if os.environ.get("RECONCILE_CHILD_MIGRATE") == "1":
            call_command("migrate", verbosity=0)
        env = services.create_environment(
            key="production", name="Production", actor=None, reason="setup"
        )
        owner = Group.objects.get_or_create(name="payments")[0]
        flag = services.create_flag(
            key="checkout.new-flow",
            name="New flow",
            owner=owner,
            flag_type="ops",
            actor=None,
            reason="setup",
        )
        services.set_flag_enabled(flag, env, True, actor=None, reason="launch")
        _key, token = sdk_keys.create_sdk_key(
            env, name="reconcile test", actor=None, reason="tests"
        )
        latest = publishing.latest("production")
        assert latest is not None and latest.data["flags"]["checkout.new-flow"]["enabled"]
        print(json.dumps({"token": token}))
    elif command == "kill-and-die":

        def die(ids: list[int], using: str) -> None:
            sys.stdout.flush()
            os._exit(3)  # the process is gone between COMMIT and publish

        publishing._after_commit = die  # type: ignore[assignment]
        flag = Flag.objects.get(key="checkout.new-flow")
        env = Environment.objects.get(key="production")
        services.set_flag_enabled(flag, env, False, actor=None, reason="incident: kill")
        raise SystemExit("the on_commit publish did not run")
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1])
