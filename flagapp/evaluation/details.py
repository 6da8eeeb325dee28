"""What one evaluation returns (:class:`EvaluationDetails`) and the kind a default implies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from openfeature_provider.engine import Reason

__all__ = ["KIND_OF_DEFAULT", "EvaluationDetails", "kind_of"]

#: The kind a call asks for, from the type of its default (exact types: bool is not int).
KIND_OF_DEFAULT: dict[type, str] = {
    bool: "boolean",
    str: "string",
    int: "integer",
    float: "float",
    dict: "object",
    list: "object",
}


def kind_of(default: Any) -> str | None:
    """The flag kind implied by a default value, or ``None`` (no type check) for others."""
    return KIND_OF_DEFAULT.get(type(default))


@dataclass(frozen=True, slots=True)
class EvaluationDetails:
    """The result of one evaluation, shaped like OpenFeature's evaluation details.

    ``value`` is always usable: on any error or when the flag says so it is the caller's
    default. ``reason`` and ``error_code`` use OpenFeature's spellings.
    """

    flag_key: str
    value: Any
    variant: str | None = None
    reason: str = Reason.DEFAULT
    error_code: str | None = None
    error_message: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        return self.error_code is not None
