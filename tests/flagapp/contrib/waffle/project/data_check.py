"""The whole migration on one database file, in two processes (test_project.py):

``python data_check.py before OUT.json`` (settings_waffle): migrate, create users, groups
and waffle objects, record waffle's answers, run ``flagapp_import_waffle``.
``python data_check.py after OUT.json`` (settings_compat): the same checks through
``import waffle`` — now flagapp.contrib.waffle reading the imported, published flags.
"""

import json
import sys

import django

django.setup()

import waffle  # noqa: E402
from django.contrib.auth.models import AnonymousUser, Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import RequestFactory  # noqa: E402

FLAGS = ["everyone", "staff_only", "beta_group", "chosen_users", "german", "killed"]


def setup() -> None:
    from waffle.models import Flag, Sample, Switch

    call_command("migrate", verbosity=0)
    Group.objects.create(name="platform")
    beta = Group.objects.create(name="Beta Testers")
    User.objects.create(username="ann", is_staff=True)
    bob = User.objects.create(username="bob")
    bob.groups.add(beta)
    User.objects.create(username="cid", is_superuser=True)
    Flag.objects.create(name="everyone", everyone=True)
    Flag.objects.create(name="staff_only", staff=True, superusers=False)
    Flag.objects.create(name="beta_group", superusers=False).groups.add(beta)
    Flag.objects.create(name="chosen_users", superusers=False).users.add(bob)
    Flag.objects.create(name="german", languages="de", superusers=False)
    Flag.objects.create(name="killed", everyone=False)
    Switch.objects.create(name="maintenance", active=True)
    Switch.objects.create(name="dark", active=False)
    Sample.objects.create(name="always", percent="100.0")


def answers() -> dict[str, object]:
    factory = RequestFactory()
    out: dict[str, object] = {}
    people = [*User.objects.order_by("username"), AnonymousUser()]
    for user in people:
        for language in ("de", "en"):
            request = factory.get("/")
            request.user = user
            request.LANGUAGE_CODE = language
            label = f"{user.get_username() or 'anonymous'}/{language}"
            out[label] = {name: waffle.flag_is_active(request, name) for name in FLAGS}
    out["switches"] = {n: waffle.switch_is_active(n) for n in ("maintenance", "dark", "nope")}
    out["samples"] = {n: waffle.sample_is_active(n) for n in ("always", "nope")}
    out["module"] = waffle.flag_is_active.__module__
    return out


if __name__ == "__main__":
    phase, path = sys.argv[1], sys.argv[2]
    if phase == "before":
        setup()
        result = answers()
        call_command("flagapp_import_waffle", "--owner", "platform", "--reason", "move to flagapp")
    else:
        result = answers()
    with open(path, "w") as fh:
        json.dump(result, fh, indent=1, sort_keys=True)
