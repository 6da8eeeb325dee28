"""The flag configuration: environments, flags, variants, per-environment state, targeting
rules, segments, and tombstones of deleted flag keys.

Why these shapes: the JSON fields (``fallthrough``, ``prerequisites``, ``conditions``,
``serve``, segment ``conditions``) hold exactly the ruleset-format-v1 fragments (see
docs/ruleset-format.md), so compiling a snapshot is a copy, and validation is the engine's
own parser — there is no second interpretation of targeting in the Django app.

Every model keeps its history with django-simple-history, with an explicit (unbounded)
change-reason field; the services set the reason and the user on every write.

Flags, flag states, segments and environments carry a ``version`` (1 when created, +1 on
every write that changes something): the one optimistic-concurrency token, compared by the
services (``expected_version``) for the admin, the API (``If-Match``/``ETag``) and governance.

Writes go through :mod:`flagapp.services`; the models only hold invariants that must hold
however a row is written (key immutability).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from django.conf import settings as django_settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from simple_history.models import HistoricalRecords

__all__ = [
    "Environment",
    "Flag",
    "FlagKeyTombstone",
    "FlagKind",
    "FlagState",
    "FlagType",
    "Risk",
    "Segment",
    "TargetingRule",
    "Variant",
    "validate_flag_key",
]


def _history() -> HistoricalRecords:
    # A TextField, not simple-history's default CharField(100): reasons are sentences.
    return HistoricalRecords(history_change_reason_field=models.TextField(null=True))


def validate_flag_key(value: str) -> None:
    """Check a flag key against ``FLAGAPP["FLAG_KEY_PATTERN"]`` (read at call time)."""
    from flagapp.conf import settings

    pattern = settings.FLAG_KEY_PATTERN
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise ValidationError(
            "%(value)r does not match the flag key pattern %(pattern)s "
            "(team.domain.purpose style, e.g. checkout.new-flow).",
            code="invalid_key",
            params={"value": value, "pattern": pattern},
        )


class FlagKind(models.TextChoices):
    BOOLEAN = "boolean", "boolean"
    STRING = "string", "string"
    INTEGER = "integer", "integer"
    FLOAT = "float", "float"
    OBJECT = "object", "object"


class FlagType(models.TextChoices):
    RELEASE = "release", "release"
    EXPERIMENT = "experiment", "experiment"
    OPS = "ops", "ops"
    PERMISSION = "permission", "permission"


class Risk(models.TextChoices):
    LOW = "low", "low"
    MEDIUM = "medium", "medium"
    HIGH = "high", "high"


class Environment(models.Model):
    """Where flags are evaluated (development, staging, production...). Each has its own
    state per flag and its own snapshot. Protected environments change only through an
    approved change request."""

    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    protected = models.BooleanField(
        default=False, help_text="Changes here need an approved change request."
    )
    order = models.IntegerField(default=0, help_text="Display order (lowest first).")
    #: The optimistic-concurrency token (see :func:`flagapp.services._base.check_version`).
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    history = _history()

    class Meta:
        ordering: ClassVar = ["order", "key"]
        # Who may change protected environments at all (their flag states and rules, the
        # environment itself); approval of each change is a separate, second requirement.
        permissions: ClassVar = [
            ("change_protected_environment", "Can change protected environments"),
        ]

    def __str__(self) -> str:
        return self.key


class Flag(models.Model):
    """A feature flag. The key is immutable and never reused (deleting leaves a
    :class:`FlagKeyTombstone`). The kind is fixed at creation: callers ask for a type."""

    key = models.CharField(max_length=200, unique=True, validators=[validate_flag_key])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=FlagKind.choices, default=FlagKind.BOOLEAN)
    flag_type = models.CharField(
        "type", max_length=16, choices=FlagType.choices, default=FlagType.RELEASE
    )
    owner = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="flagapp_flags")
    risk = models.CharField(max_length=8, choices=Risk.choices, default=Risk.LOW)
    expires_on = models.DateField(
        null=True, blank=True, help_text="Required for release flags: when it should be gone."
    )
    tags = models.JSONField(default=list, blank=True)
    archived = models.BooleanField(
        default=False, help_text="Archived flags are left out of snapshots (FLAG_NOT_FOUND)."
    )
    #: Moves on every write of the flag's fields, variants or archived state (its states
    #: have their own); the optimistic-concurrency token of the admin, the API and governance.
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = _history()

    class Meta:
        ordering: ClassVar = ["key"]
        indexes: ClassVar = [models.Index(fields=["archived", "flag_type"])]

    def __str__(self) -> str:
        return self.key

    #: (key, kind) as loaded from the database; see save().
    _loaded_identity: tuple[str | None, str | None] | None = None

    @classmethod
    def from_db(cls, *args: Any, **kwargs: Any) -> Flag:
        instance = super().from_db(*args, **kwargs)
        # Remember the stored key and kind so save() can refuse to change them.
        instance._loaded_identity = (instance.__dict__.get("key"), instance.__dict__.get("kind"))
        return instance

    def save(self, *args: Any, **kwargs: Any) -> None:
        loaded = getattr(self, "_loaded_identity", None)
        if loaded is not None and self.pk is not None:
            old_key, old_kind = loaded
            if old_key is not None and old_key != self.key:
                raise ValidationError({"key": "A flag key cannot be changed."})
            if old_kind is not None and old_kind != self.kind:
                raise ValidationError({"kind": "A flag's kind cannot be changed."})
        super().save(*args, **kwargs)
        self._loaded_identity = (self.key, self.kind)

    @property
    def is_expired(self) -> bool:
        from django.utils import timezone

        return self.expires_on is not None and self.expires_on < timezone.localdate()


class Variant(models.Model):
    """One value a flag can serve. ``value`` must be of the flag's kind (checked by the
    engine's parser when the services validate a change)."""

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="variants")
    key = models.CharField(max_length=100)
    value = models.JSONField()
    order = models.IntegerField(default=0)
    description = models.CharField(max_length=500, blank=True)

    history = _history()

    class Meta:
        ordering: ClassVar = ["flag", "order", "key"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["flag", "key"], name="flagapp_variant_unique_key")
        ]

    def __str__(self) -> str:
        # Shown in the admin (inline rows, history): the flag's key, never its id.
        return f"{self.flag.key}: {self.key}" if self.flag_id else self.key


class FlagState(models.Model):
    """A flag's configuration in one environment.

    ``enabled`` false means every caller gets its own default (the kill switch).
    ``fallthrough`` is null, ``{"variant": k}`` or ``{"rollout": {...}}``; ``prerequisites``
    is ``[{"flag": key, "variants": [...]}]``. ``version`` increases on every change and is
    the optimistic-concurrency token: a write naming a stale version is refused.
    """

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="states")
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="flag_states"
    )
    enabled = models.BooleanField(default=False)
    fallthrough = models.JSONField(null=True, blank=True)
    prerequisites = models.JSONField(default=list, blank=True)
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    history = _history()

    class Meta:
        ordering: ClassVar = ["flag", "environment__order", "environment__key"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["flag", "environment"], name="flagapp_flagstate_unique_env"
            )
        ]

    def __str__(self) -> str:
        # Shown in the admin (inline headings, history): keys, never ids.
        if not (self.flag_id and self.environment_id):
            return "flag state"
        return f"{self.flag.key} in {self.environment.key}"


class TargetingRule(models.Model):
    """One ordered rule of a flag in one environment: all ``conditions`` (format-v1
    conditions) must hold; then ``serve`` (``{"variant": k}`` or ``{"rollout": {...}}``)."""

    state = models.ForeignKey(FlagState, on_delete=models.CASCADE, related_name="rules")
    order = models.PositiveIntegerField(default=0)
    rule_id = models.CharField(max_length=64)
    description = models.CharField(max_length=500, blank=True)
    conditions = models.JSONField(default=list, blank=True)
    serve = models.JSONField()

    history = _history()

    class Meta:
        ordering: ClassVar = ["state", "order", "id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["state", "rule_id"], name="flagapp_rule_unique_id")
        ]

    def __str__(self) -> str:
        return f"{self.rule_id}"


class Segment(models.Model):
    """A reusable audience: excluded keys never match, included keys always match, else
    ``conditions`` (an empty list matches only the include list). Segments are global:
    every environment's snapshot carries them."""

    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    include = models.JSONField(default=list, blank=True)
    exclude = models.JSONField(default=list, blank=True)
    conditions = models.JSONField(default=list, blank=True)
    #: The optimistic-concurrency token (see :func:`flagapp.services._base.check_version`).
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = _history()

    class Meta:
        ordering: ClassVar = ["key"]

    def __str__(self) -> str:
        return self.key


class FlagKeyTombstone(models.Model):
    """The key of a deleted flag: keys are never reused, so an old deployment asking for it
    can never get a new flag's meaning."""

    key = models.CharField(max_length=200, unique=True)
    deleted_at = models.DateTimeField(auto_now_add=True)
    deleted_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reason = models.TextField()

    history = _history()

    class Meta:
        ordering: ClassVar = ["key"]

    def __str__(self) -> str:
        return self.key
