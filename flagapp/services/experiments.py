"""Experiments: the one write path for the admin and the REST API.

Why: an experiment saved by the admin used to skip the checks the API made (an experiment
on a release flag, a control variant the flag does not have, a confidence of 1), so the
admin could store what the API refused and the analysis then failed. Both now validate with
:func:`validate_experiment` and write with :func:`create_experiment` /
:func:`update_experiment`.

Experiments change no evaluated configuration: nothing is published and no reason is
required (the model keeps no history); the actor needs the model permission.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction

from flagapp.exceptions import FlagValidationError
from flagapp.models import Experiment

from ._base import bump, check_permission, check_version, history_user

if TYPE_CHECKING:
    from flagapp.policy import Actor

__all__ = ["EXPERIMENT_FIELDS", "create_experiment", "update_experiment", "validate_experiment"]

#: The fields a caller may set (``created_by`` is the actor, ``created_at`` is automatic).
EXPERIMENT_FIELDS = (
    "flag",
    "environment",
    "name",
    "hypothesis",
    "control_variant",
    "conversion_event",
    "started_at",
    "ended_at",
    "confidence",
    "srm_threshold",
    "expected_weights",
    "baseline_rate",
    "minimum_detectable_effect",
)


def _weights_ok(weights: Any) -> bool:
    return isinstance(weights, dict) and all(
        isinstance(k, str)
        and isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
        and v >= 0
        for k, v in weights.items()
    )


def validate_experiment(values: Mapping[str, Any]) -> None:
    """Raise :class:`FlagValidationError` (one message per field) when ``values`` — the
    complete experiment, stored values merged with the change — cannot be analysed."""
    errors: dict[str, list[str]] = {}
    flag = values.get("flag")
    if flag is not None and flag.flag_type != "experiment":
        errors["flag"] = ["only experiment flags have experiments"]
    control = values.get("control_variant")
    if flag is not None and control and not flag.variants.filter(key=control).exists():
        errors["control_variant"] = [f"not a variant of {flag}"]
    confidence = values.get("confidence", 0.95)
    if confidence is not None and not 0.5 <= confidence < 1:
        errors["confidence"] = ["must be in [0.5, 1)"]
    for name in ("srm_threshold", "baseline_rate"):
        value = values.get(name)
        if value is not None and not 0 < value < 1:
            errors[name] = ["must be between 0 and 1"]
    weights = values.get("expected_weights")
    if weights is not None and not _weights_ok(weights):
        errors["expected_weights"] = ['an object {"variant": weight} of non-negative numbers']
    if errors:
        raise FlagValidationError(errors)


def _full_clean(experiment: Experiment) -> None:
    try:
        experiment.full_clean(exclude=["created_by"])
    except FlagValidationError:
        raise
    except ValidationError as exc:
        raise FlagValidationError(exc.message_dict) from exc


def _unknown(fields: Mapping[str, Any]) -> None:
    unknown = sorted(set(fields) - set(EXPERIMENT_FIELDS))
    if unknown:
        raise FlagValidationError({"__all__": [f"unknown field(s): {', '.join(unknown)}"]})


def create_experiment(*, actor: Actor, **fields: Any) -> Experiment:
    """Validate and store a new experiment (``fields``: :data:`EXPERIMENT_FIELDS`)."""
    check_permission(actor, "flagapp.add_experiment")
    _unknown(fields)
    experiment = Experiment(**fields)
    validate_experiment(fields)
    _full_clean(experiment)
    if actor is not None and getattr(actor, "is_authenticated", False):
        experiment.created_by = history_user(actor)
    with transaction.atomic():
        experiment.save()
    return experiment


def update_experiment(
    experiment: Experiment,
    *,
    actor: Actor,
    expected_version: int | None = None,
    **changes: Any,
) -> Experiment:
    """Validate and store a change of ``experiment`` (the stored values plus ``changes``).

    ``expected_version`` is the version the editor read: a stale one is refused with
    ``VersionConflict`` unless the change asks for what is stored (the retry of a write
    whose answer was lost), the rule of every versioned resource; None skips the check."""
    check_permission(actor, "flagapp.change_experiment")
    _unknown(changes)
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        current = {
            name: getattr(locked, name)
            for name in EXPERIMENT_FIELDS
            if name not in ("flag", "environment")
        }
        current["flag"] = locked.flag if locked.flag_id else None
        current["environment"] = locked.environment if locked.environment_id else None
        validate_experiment(current | changes)
        unchanged = all(current[name] == value for name, value in changes.items())
        if check_version(locked, expected_version, unchanged=unchanged):
            return locked
        for name, value in changes.items():
            setattr(locked, name, value)
        _full_clean(locked)
        bump(locked)
        locked.save()
    return locked
