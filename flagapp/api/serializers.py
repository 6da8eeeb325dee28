"""Request and response shapes of the management API.

The serializers check *types* (so the OpenAPI schema is exact and a wrong type is a field
error before anything runs); every *domain* rule — key patterns, expiry, targeting, variant
values of the flag's kind — is the services' (and the engine's) job, whose field-keyed
errors come back as the same 400 shape. ``reason`` and ``version`` are accepted in bodies as
an alternative to the ``X-Change-Reason`` and ``If-Match`` headers (see
:mod:`flagapp.api.preconditions`).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from flagapp.documents import rules_as_dicts
from flagapp.models import FlagKind, FlagState, FlagType, Risk

__all__ = [
    "ChangeRequestInfoSerializer",
    "ConflictSerializer",
    "EnvironmentSerializer",
    "FlagSerializer",
    "FlagStateSerializer",
    "HistoryEntrySerializer",
    "RuleSerializer",
    "SdkKeyCreatedSerializer",
    "SdkKeySerializer",
    "SegmentSerializer",
    "VariantSerializer",
]

_REASON_HELP = "Why this change is made (or send the X-Change-Reason header). Required."
_VERSION_HELP = (
    "The version this write edits, as read (or send If-Match). A stale version is refused with 409."
)


def _reason() -> serializers.CharField:
    return serializers.CharField(
        write_only=True, required=False, allow_blank=True, help_text=_REASON_HELP
    )


def _version() -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False, min_value=0, max_value=2**62, help_text=_VERSION_HELP
    )


@extend_schema_field(OpenApiTypes.ANY)
class AnyJSONField(serializers.JSONField):
    """Any JSON value (a variant value, a fallthrough, a rule's serve)."""


class VariantSerializer(serializers.Serializer[Any]):
    key = serializers.CharField(max_length=100)
    value = AnyJSONField(help_text="A value of the flag's kind.")
    description = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default=""
    )


class StateSummarySerializer(serializers.Serializer[Any]):
    environment = serializers.CharField(source="environment.key")
    enabled = serializers.BooleanField()
    version = serializers.IntegerField()


class FlagSerializer(serializers.Serializer[Any]):
    """A flag with its variants and a summary of its state in every environment."""

    key = serializers.CharField(
        max_length=200, help_text="team.domain.purpose style; immutable, never reused."
    )
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=FlagKind.choices, required=False)
    flag_type = serializers.ChoiceField(choices=FlagType.choices, required=False)
    owner = serializers.SlugRelatedField(
        slug_field="name", queryset=Group.objects.all(), help_text="The owning group's name."
    )
    risk = serializers.ChoiceField(choices=Risk.choices, required=False)
    expires_on = serializers.DateField(required=False, allow_null=True)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=100
    )
    archived = serializers.BooleanField(
        required=False, help_text="Archived flags are not served (FLAG_NOT_FOUND)."
    )
    variants = VariantSerializer(
        many=True,
        required=False,
        help_text="Ordered. Boolean flags default to on=true/off=false when created.",
    )
    states = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    version = _version()
    reason = _reason()

    @extend_schema_field(StateSummarySerializer(many=True))
    def get_states(self, flag: Any) -> list[dict[str, Any]]:
        states = sorted(flag.states.all(), key=lambda s: (s.environment.order, s.environment.key))
        return [
            {"environment": s.environment.key, "enabled": s.enabled, "version": s.version}
            for s in states
        ]

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["variants"] = [
            {"key": v.key, "value": v.value, "description": v.description}
            for v in sorted(instance.variants.all(), key=lambda v: (v.order, v.key))
        ]
        data["version"] = instance.version
        return data


class RuleSerializer(serializers.Serializer[Any]):
    """One targeting rule, in the ruleset format's own shape (docs/ruleset-format.md)."""

    id = serializers.CharField(max_length=64, required=False, help_text="Kept across edits.")
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    when = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        max_length=200,
        help_text="Conditions, all of which must hold ([] matches everyone).",
    )
    serve = serializers.DictField(help_text='{"variant": k} or {"rollout": {...}}.')


class FlagStateSerializer(serializers.Serializer[Any]):
    """A flag's configuration in one environment."""

    flag = serializers.CharField(source="flag.key", read_only=True)
    environment = serializers.CharField(source="environment.key", read_only=True)
    enabled = serializers.BooleanField(
        required=False, help_text="false: every caller gets its own default (kill switch)."
    )
    fallthrough = AnyJSONField(
        required=False,
        allow_null=True,
        help_text='null, {"variant": k} or {"rollout": {"weights": [...]}}.',
    )
    prerequisites = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        max_length=100,
        help_text='[{"flag": key, "variants": [...]}]',
    )
    rules: serializers.ListSerializer[Any] = serializers.ListSerializer(
        child=RuleSerializer(), required=False, max_length=500
    )
    updated_at = serializers.DateTimeField(read_only=True)
    version = _version()
    reason = _reason()

    def to_representation(self, instance: FlagState) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["rules"] = rules_as_dicts(instance)
        data["version"] = instance.version
        return data


class SegmentSerializer(serializers.Serializer[Any]):
    key = serializers.CharField(max_length=100, help_text="Immutable.")
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    include = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Keys that always match."
    )
    exclude = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Keys that never match."
    )
    conditions = serializers.ListField(child=serializers.DictField(), required=False)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    version = _version()
    reason = _reason()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["version"] = instance.version
        return data


class EnvironmentSerializer(serializers.Serializer[Any]):
    key = serializers.CharField(max_length=64, help_text="Immutable.")
    name = serializers.CharField(max_length=200)
    protected = serializers.BooleanField(
        required=False,
        help_text=(
            "Changes need flagapp.change_protected_environment and an approved change request."
        ),
    )
    order = serializers.IntegerField(required=False, min_value=-(2**31), max_value=2**31 - 1)
    created_at = serializers.DateTimeField(read_only=True)
    version = _version()
    reason = _reason()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["version"] = instance.version
        return data


class HistoryEntrySerializer(serializers.Serializer[Any]):
    """One recorded change of one object (read-only)."""

    id = serializers.CharField(help_text="<model>:<history id>, stable.")
    model = serializers.CharField(help_text="environment, flag, variant, flagstate, ...")
    object_id = serializers.IntegerField()
    object = serializers.CharField(help_text="A readable name of the changed object.")
    flag = serializers.CharField(allow_null=True)
    environment = serializers.CharField(allow_null=True)
    action = serializers.ChoiceField(choices=["created", "changed", "deleted"])
    date = serializers.DateTimeField()
    user = serializers.CharField(allow_null=True)
    reason = serializers.CharField(allow_null=True)


class SdkKeySerializer(serializers.Serializer[Any]):
    """An SDK key as stored: who created it and why, who revoked it, when and why — never
    its token (only a hash is stored, and that is not shown either)."""

    id = serializers.IntegerField(read_only=True)
    public_id = serializers.CharField(read_only=True)
    environment = serializers.CharField(source="environment.key", read_only=True)
    name = serializers.CharField(read_only=True)
    scope = serializers.ChoiceField(
        choices=["server", "client"],
        read_only=True,
        help_text="server: every SDK endpoint; client: OFREP only (for browsers and apps).",
    )
    created_at = serializers.DateTimeField(read_only=True)
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True, default=None,
        help_text="The user who created it (null: a command or the system).",
    )  # fmt: skip
    created_reason = serializers.CharField(read_only=True, help_text="Why it was created.")
    revoked_at = serializers.DateTimeField(read_only=True, allow_null=True)
    revoked_by = serializers.CharField(
        source="revoked_by.username", read_only=True, allow_null=True, default=None,
        help_text="The user who revoked it (null: active, or revoked by a command).",
    )  # fmt: skip
    revoke_reason = serializers.CharField(
        read_only=True, help_text="Why it was revoked (empty while active)."
    )
    last_used_at = serializers.DateTimeField(read_only=True, allow_null=True)
    active = serializers.BooleanField(source="is_active", read_only=True)


class SdkKeyCreateSerializer(serializers.Serializer[Any]):
    environment = serializers.CharField(max_length=64, help_text="The environment's key.")
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    scope = serializers.ChoiceField(
        choices=["server", "client"],
        required=False,
        default="server",
        help_text="client: a key shipped to browsers and apps, for OFREP only.",
    )
    reason = _reason()


class SdkKeyCreatedSerializer(SdkKeySerializer):
    token = serializers.CharField(
        read_only=True, help_text="The secret token. Shown once: it is stored only hashed."
    )


class RevokeSerializer(serializers.Serializer[Any]):
    reason = _reason()


class ConflictSerializer(serializers.Serializer[Any]):
    detail = serializers.CharField()
    current_version = serializers.IntegerField()


class ChangeRequestInfoSerializer(serializers.Serializer[Any]):
    """202 Accepted: the change needs approval; a change request holds it."""

    detail = serializers.CharField()
    change = serializers.DictField(help_text="The proposed change (services' input shape).")
    change_request = serializers.DictField(required=False)
