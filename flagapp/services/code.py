"""Flags as code: applying a flags-as-code document (docs/flags-as-code.md) through the
services; ``flagapp_import`` and ``flagapp_import_waffle`` call :func:`import_config`.

Why through the services: an import is just many ordinary changes, so it gets the same
validation (the engine's parser), governance, history with a reason and publishing. It
runs in one transaction: the document's shape is checked first (every problem reported at
once, ``code_format.shape_errors``), then the changes are applied and each touched
environment is compiled and parsed before commit; any refusal rolls everything back.
Applying the same document twice changes nothing the second time (the services skip
identical changes).

The format, the writer (``export_config``, ``flagapp_export``) and the shape check are
:mod:`flagapp.services.code_format`, re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import Group
from django.db import transaction

from flagapp.documents import compile_environment, parse
from flagapp.exceptions import (
    ApprovalRequired,
    ChangeNotPermitted,
    ConfigImportError,
    FlagValidationError,
    VersionConflict,
)
from flagapp.models import Environment, Flag, FlagState, Segment
from flagapp.policy import Approval
from flagapp.services._base import UNSET, clean_reason
from flagapp.services.environments import create_environment
from flagapp.services.flags import create_flag, update_flag
from flagapp.services.lifecycle import archive_flag, unarchive_flag
from flagapp.services.segments import create_segment, update_segment
from flagapp.services.states import update_flag_state
from flagapp.services.variants import set_variants

from .code_format import FORMAT, STATE_KEYS, export_config, shape_errors

if TYPE_CHECKING:
    from flagapp.policy import Actor

__all__ = ["FORMAT", "ImportResult", "export_config", "import_config"]


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would be" if self.dry_run else "were"
        return (
            f"{len(self.created)} created, {len(self.changed)} changed, "
            f"{len(self.unchanged)} unchanged ({verb} applied)"
        )


class _DryRunRollback(Exception):
    pass


def _fail(path: str, exc: Exception) -> ConfigImportError:
    if isinstance(exc, FlagValidationError):
        msgs = [
            f"{f}: {m}" if f != "__all__" else m for f, ms in exc.message_dict.items() for m in ms
        ]
    else:
        msgs = [str(exc) or type(exc).__name__]
    return ConfigImportError({path: msgs})


def import_config(
    doc: Mapping[str, Any],
    *,
    actor: Actor,
    reason: str,
    environments: Sequence[str] | None = None,
    from_environment: str | None = None,
    to_environment: str | None = None,
    create_environments: bool = False,
    change_request: Approval | None = None,
    dry_run: bool = False,
) -> ImportResult:
    """Apply ``doc``. ``environments`` limits which environments' states are applied;
    ``from_environment``/``to_environment`` applies the document's states of one
    environment to another (promotion, e.g. staging -> production: only states are
    written then, flags and segments must exist or be in the document)."""
    reason = clean_reason(reason)
    errors = shape_errors(doc)
    if (from_environment is None) != (to_environment is None):
        errors.append("give both the source and the target environment, or neither")
    if errors:
        raise ConfigImportError({"document": errors})
    refusals = (FlagValidationError, VersionConflict, ApprovalRequired, ChangeNotPermitted)
    result = ImportResult(dry_run=dry_run)
    try:
        with transaction.atomic():
            touched = _apply(
                doc,
                actor,
                reason,
                environments,
                from_environment,
                to_environment,
                create_environments,
                change_request,
                result,
                refusals,
            )
            for env in Environment.objects.filter(key__in=touched):
                try:
                    parse(compile_environment(env))
                except Exception as exc:
                    raise _fail(f"environment {env.key}", exc) from None
            if dry_run:
                raise _DryRunRollback
    except _DryRunRollback:
        pass
    return result


def _apply(
    doc: Mapping[str, Any],
    actor: Actor,
    reason: str,
    environments: Sequence[str] | None,
    from_env: str | None,
    to_env: str | None,
    create_envs: bool,
    cr: Approval | None,
    result: ImportResult,
    refusals: tuple[type[Exception], ...],
) -> set[str]:
    touched: set[str] = set()
    env_docs = {e["key"]: e for e in doc.get("environments", [])}
    wanted_envs = set(environments) if environments is not None else None

    # environments named by the document's states must exist (or be created)
    needed: set[str] = set()
    for flag in doc.get("flags", {}).values():
        needed.update(flag.get("environments", {}).keys())
    if from_env is not None:
        needed = {to_env} if to_env else set()
    elif wanted_envs is not None:
        needed &= wanted_envs
    existing = {e.key: e for e in Environment.objects.all()}
    for key in sorted(needed - set(existing)):
        if not create_envs:
            raise ConfigImportError(
                {
                    f"environment {key}": [
                        "no such environment (pass --create-environments to create it)"
                    ]
                }
            )
        spec = env_docs.get(key, {})
        try:
            existing[key] = create_environment(
                key=key,
                name=spec.get("name", key),
                protected=spec.get("protected", False),
                order=spec.get("order", 0),
                actor=actor,
                reason=reason,
            )
        except refusals as exc:
            raise _fail(f"environment {key}", exc) from None
        result.created.append(f"environment {key}")

    promoting = from_env is not None
    if not promoting:
        _apply_segments(doc.get("segments", {}), actor, reason, cr, result, refusals)
        touched.update(existing)  # segments and flag fields are in every snapshot

    flags_doc: Mapping[str, Any] = doc.get("flags", {})
    flags: dict[str, Flag] = {}
    # Variants a flag loses are kept until its states stop using them: the final list is
    # set after the states (flag key -> that list).
    final_variants: dict[str, Any] = {}
    for key in sorted(flags_doc):
        spec = flags_doc[key]
        flag = Flag.objects.filter(key=key).select_related("owner").first()
        if promoting:
            if flag is None:
                raise ConfigImportError({f"flag {key}": ["does not exist here; import it first"]})
            flags[key] = flag
            continue
        try:
            flags[key] = _apply_flag_fields(
                key, spec, flag, actor, reason, cr, result, final_variants
            )
        except refusals as exc:
            raise _fail(f"flag {key}", exc) from None

    # states, after every flag exists (prerequisites may name later flags)
    for key in sorted(flags_doc):
        spec = flags_doc[key]
        flag = flags[key]
        state_docs: Mapping[str, Any] = spec.get("environments", {})
        if promoting:
            source = str(from_env)
            pairs = [(str(to_env), state_docs[source])] if source in state_docs else []
        else:
            pairs = [
                (k, v) for k, v in state_docs.items() if wanted_envs is None or k in wanted_envs
            ]
        target_archived = bool(spec.get("archived", False)) and not promoting
        if flag.archived and pairs:
            if target_archived or promoting:
                continue  # states of archived flags are left as they are
            try:
                unarchive_flag(flag, actor=actor, reason=reason, change_request=cr)
            except refusals as exc:
                raise _fail(f"flag {key}", exc) from None
        for env_key, state in sorted(pairs, key=lambda pair: pair[0]):
            env = existing[env_key]
            before = FlagState.objects.filter(flag=flag, environment=env).first()
            kwargs = {name: state[name] for name in STATE_KEYS if name in state}
            try:
                after = update_flag_state(
                    flag, env, actor=actor, reason=reason, change_request=cr, **kwargs
                )
            except refusals as exc:
                raise _fail(f"flag {key} in {env_key}", exc) from None
            label = f"state {key}@{env_key}"
            if before is None:
                result.created.append(label)
            elif after.version != before.version:
                result.changed.append(label)
            else:
                result.unchanged.append(label)
            touched.add(env_key)
        if not promoting:
            pending = final_variants.get(key)
            if pending is not None:
                try:
                    set_variants(flag, pending, actor=actor, reason=reason, change_request=cr)
                except refusals as exc:
                    raise _fail(f"flag {key}", exc) from None
            if target_archived and not flag.archived:
                try:
                    archive_flag(flag, actor=actor, reason=reason, change_request=cr)
                except refusals as exc:
                    raise _fail(f"flag {key}", exc) from None
    return touched


def _apply_segments(
    segments: Mapping[str, Any],
    actor: Actor,
    reason: str,
    cr: Approval | None,
    result: ImportResult,
    refusals: tuple[type[Exception], ...],
) -> None:
    # New segments first without conditions (they may refer to each other), then all.
    existing = {s.key: s for s in Segment.objects.all()}
    for key in sorted(segments):
        if key in existing:
            continue
        spec = segments[key]
        try:
            existing[key] = create_segment(
                key=key,
                name=spec.get("name", key),
                description=spec.get("description", ""),
                include=spec.get("include", []),
                exclude=spec.get("exclude", []),
                actor=actor,
                reason=reason,
            )
        except refusals as exc:
            raise _fail(f"segment {key}", exc) from None
        result.created.append(f"segment {key}")
    for key in sorted(segments):
        spec = segments[key]
        seg = existing[key]
        before = (seg.name, seg.description, seg.include, seg.exclude, seg.conditions)
        try:
            seg = update_segment(
                seg,
                name=spec.get("name", seg.name),
                description=spec.get("description", seg.description),
                include=spec.get("include", seg.include),
                exclude=spec.get("exclude", seg.exclude),
                conditions=spec.get("conditions", []),
                actor=actor,
                reason=reason,
                change_request=cr,
            )
        except refusals as exc:
            raise _fail(f"segment {key}", exc) from None
        after = (seg.name, seg.description, seg.include, seg.exclude, seg.conditions)
        if f"segment {key}" not in result.created:
            (result.changed if after != before else result.unchanged).append(f"segment {key}")


def _owner(name: object) -> Group:
    group = Group.objects.filter(name=name).first() if isinstance(name, str) else None
    if group is None:
        raise FlagValidationError({"owner": [f"no group named {name!r}"]})
    return group


def _apply_flag_fields(
    key: str,
    spec: Mapping[str, Any],
    flag: Flag | None,
    actor: Actor,
    reason: str,
    cr: Approval | None,
    result: ImportResult,
    final_variants: dict[str, Any],
) -> Flag:
    owner = _owner(spec.get("owner"))
    variants = spec.get("variants")
    if flag is None:
        flag = create_flag(
            key=key,
            name=spec["name"],
            owner=owner,
            kind=spec["kind"],
            flag_type=spec.get("type", "release"),
            description=spec.get("description", ""),
            risk=spec.get("risk", "low"),
            expires_on=spec.get("expires_on"),
            tags=spec.get("tags", []),
            variants=variants,
            actor=actor,
            reason=reason,
        )
        result.created.append(f"flag {key}")
        return flag
    if spec["kind"] != flag.kind:
        raise FlagValidationError({"kind": [f"is {flag.kind!r} here; a kind never changes"]})
    before = _flag_fields(flag)
    expires = spec.get("expires_on", UNSET)
    flag = update_flag(
        flag,
        name=spec["name"],
        description=spec.get("description", flag.description),
        flag_type=spec.get("type", flag.flag_type),
        owner=owner,
        risk=spec.get("risk", flag.risk),
        expires_on=expires,
        tags=spec.get("tags", flag.tags),
        actor=actor,
        reason=reason,
        change_request=cr,
    )
    if variants is not None:
        current = [(v.key, v.value, v.description) for v in flag.variants.order_by("order")]
        wanted_keys = {v["key"] for v in variants} if isinstance(variants, list) else set(variants)
        removed = [
            {"key": k, "value": val, "description": d}
            for k, val, d in current
            if k not in wanted_keys
        ]
        if removed:
            # Keep removed variants until the states stop using them; set the final list
            # after the states.
            set_variants(
                flag,
                list(variants) + removed
                if isinstance(variants, list)
                else {**variants, **{r["key"]: r["value"] for r in removed}},
                actor=actor,
                reason=reason,
                change_request=cr,
            )
            final_variants[key] = variants
        else:
            set_variants(flag, variants, actor=actor, reason=reason, change_request=cr)
    flag.refresh_from_db()
    after = _flag_fields(flag)
    (result.changed if after != before else result.unchanged).append(f"flag {key}")
    return flag


def _flag_fields(flag: Flag) -> tuple[Any, ...]:
    return (
        flag.name,
        flag.description,
        flag.flag_type,
        flag.owner_id,
        flag.risk,
        flag.expires_on,
        list(flag.tags or []),
        [(v.key, v.value, v.description) for v in flag.variants.order_by("order", "key")],
    )
