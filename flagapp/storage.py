"""Database tuning that migrations cannot express portably: the compression of stored
snapshots on PostgreSQL.

Why: every published version stores the whole document (``Snapshot.document``, ~3 MB of
JSON at 10,000 flags) and PostgreSQL compresses a large text value before storing it
(TOAST). Its default method, pglz, took ~25 ms per 3 MB insert here — the largest part of
what a one-flag change still cost at 10,000 flags on PostgreSQL (docs/scale.md) — where lz4
(PostgreSQL 14+, built in by Debian and the official images) took ~8 ms and stored a smaller
value. Applied after every ``migrate`` (a ``post_migrate`` receiver connected in
``FlagappConfig.ready()``) rather than in the migration, so it survives the regeneration of
``0001_initial`` and costs nothing on SQLite, MySQL or a server without lz4 (then the
default stays, and a warning is logged).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError, connections, transaction

__all__ = ["SNAPSHOT_COMPRESSION", "compress_snapshots"]

logger = logging.getLogger("flagapp")

#: The PostgreSQL column compression method of ``flagapp_snapshot.document``.
SNAPSHOT_COMPRESSION = "lz4"


def compress_snapshots(sender: Any = None, using: str = "default", **kwargs: Any) -> bool:
    """``post_migrate`` receiver: set ``flagapp_snapshot.document``'s compression to lz4 on
    PostgreSQL 14+ (idempotent; existing rows keep theirs until rewritten). Returns whether
    the column now uses it."""
    connection = connections[using]
    if connection.vendor != "postgresql" or connection.pg_version < 140000:  # type: ignore[attr-defined]
        return False
    from flagapp.models import Snapshot

    table = connection.ops.quote_name(Snapshot._meta.db_table)
    try:
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute(
                f"ALTER TABLE {table} ALTER COLUMN document SET COMPRESSION {SNAPSHOT_COMPRESSION}"
            )
    except DatabaseError as exc:  # a server built without lz4
        logger.warning("flagapp: snapshots keep PostgreSQL's default compression: %s", exc)
        return False
    return True
