"""flagapp.storage: stored snapshots use lz4 column compression on PostgreSQL (the default,
pglz, was most of a 10,000-flag change's cost there: docs/scale.md)."""

from __future__ import annotations

import pytest
from django.db import connection

from flagapp import storage
from flagapp.models import Snapshot


@pytest.mark.postgres
@pytest.mark.django_db
def test_compress_snapshots__after_migrate__document_column_uses_lz4_on_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (FLAGAPP_TEST_DB=postgres)")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attcompression FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attname = 'document'",
            [Snapshot._meta.db_table],
        )
        (method,) = cursor.fetchone()
    assert method == "l"  # set by the post_migrate receiver when the test database was built
    assert storage.compress_snapshots(using="default") is True  # idempotent


@pytest.mark.django_db
def test_compress_snapshots__not_postgresql__does_nothing() -> None:
    if connection.vendor == "postgresql":
        pytest.skip("the other databases' case")
    assert storage.compress_snapshots(using="default") is False
