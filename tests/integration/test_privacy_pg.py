"""Privacy transforms in PostgreSQL against their Python twins: the same text, always.

PostgreSQL datasets rewrite sensitive columns in the export query (privacy_sql), the audit trail
in Python (privacy). For every awkward input (IPv4, IPv6, IPv4-mapped, prefixes, zone ids,
leading zeros, NULL, empty, unicode and odd emails) both must give the same text, through the
cursor and through COPY, and the key must only ever reach the server as a bound value.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from dataclasses import replace
from itertools import zip_longest
from typing import Any

import pyarrow.parquet as pq
import pytest

from dataexport.adapters.postgres import DatabaseSecret, PostgresReader
from dataexport.catalog.loader import Catalog
from dataexport.errors import QueryFailed
from dataexport.export_request import ExportRequest, ResolvedExport, resolve_export
from dataexport.formats.writer import FormatWriter, PartPosition
from dataexport.privacy import HashingKey
from dataexport.query_builder import RowScope
from dataexport.row_sources import PostgresRows, counted
from tests.integration.conftest import ConnectionFactory
from tests.unit.format_samples import BytesSink
from tests.unit.privacy_samples import (
    EMAIL_INPUTS,
    IDENTIFIER_INPUTS,
    IP_INPUTS,
    people_dataset,
)

TENANT = "org_privacy"
PEOPLE = people_dataset()
CATALOG = Catalog(by_name={PEOPLE.name: PEOPLE})
KEY = HashingKey.from_secret_string("integration-key-0123456789abcdef")
OTHER_KEY = HashingKey.from_secret_string("another-key")
# A key longer than SHA-256's block is first hashed (RFC 2104): both paths must agree on that.
LONG_KEY = HashingKey(bytes(range(256)))
ROWS = max(len(IP_INPUTS), len(EMAIL_INPUTS), len(IDENTIFIER_INPUTS))
SCOPE = RowScope(TENANT)


@pytest.fixture(scope="module")
def reader(
    pg_socket_dir: str, pg_scratch_database: str, pg_superuser_conn_factory: ConnectionFactory
) -> Iterator[PostgresReader]:
    admin = pg_superuser_conn_factory(pg_scratch_database)
    admin.run("CREATE SCHEMA privacy")
    admin.run(
        "CREATE TABLE privacy.people (id bigint PRIMARY KEY, org_id text NOT NULL, "
        "owner_id text NOT NULL, user_name text, account bigint, email varchar(400), ip text, "
        "api_key text, note text)"
    )
    for index, (ip, email, name) in enumerate(
        zip_longest(IP_INPUTS, EMAIL_INPUTS, IDENTIFIER_INPUTS)
    ):
        admin.run(
            "INSERT INTO privacy.people VALUES (CAST(:id AS bigint), :org, 'owner', :name, "
            ":account, :email, :ip, 'key-' || CAST(:id AS text), 'note')",
            id=index,
            org=TENANT,
            name=name,
            account=None if index % 4 == 0 else index * 1_000_003,
            email=email,
            ip=ip,
        )
    admin.close()
    secret = DatabaseSecret(pg_socket_dir, 5432, "postgres", "", pg_scratch_database)
    yield PostgresReader(secret, statement_timeout_seconds=60)


def export_of(fields: list[str], privacy: list[str], format_name: str = "csv") -> ResolvedExport:
    request = ExportRequest.model_validate(
        {"dataset": PEOPLE.name, "format": format_name, "fields": fields, "privacy": privacy}
    )
    return resolve_export(request, CATALOG)


def python_twin(raw: list[list[Any]], export: ResolvedExport, key: HashingKey) -> list[list[Any]]:
    """The raw rows rewritten in Python, as the audit trail's are."""
    return [
        row
        for batch in export.privacy.apply(export.fields, [[list(r) for r in raw]], lambda: key)
        for row in batch
    ]


ALL_FIELDS = ["id", "user_name", "account", "email", "ip", "note"]
EVERY_REWRITE = ["anonymize_ip", "hash_identifiers", "mask_email"]


@pytest.mark.parametrize("key", [KEY, LONG_KEY], ids=["short key", "long key"])
def test_sql_and_python_rewrite_every_awkward_value_alike(
    reader: PostgresReader, key: HashingKey
) -> None:
    # Given the raw rows, and the same export under every rewriting transform
    raw = PostgresRows(reader).first_rows(export_of(ALL_FIELDS, []), SCOPE, 1000)
    export = export_of(ALL_FIELDS, EVERY_REWRITE)

    # When PostgreSQL rewrites them in the query, and Python rewrites the raw rows
    by_sql = PostgresRows(reader, lambda: key).first_rows(export, SCOPE, 1000)

    # Then every value is the same text (and NULL stays NULL)
    assert len(by_sql) == ROWS
    assert by_sql == python_twin(raw, export, key)
    by_column = dict(zip(ALL_FIELDS, zip(*by_sql, strict=True), strict=True))
    assert by_column["ip"][IP_INPUTS.index("::ffff:192.0.2.33")] == "::ffff:192.0.2.0"
    assert by_column["ip"][IP_INPUTS.index("2001:db8:1:2::5")] == "2001:db8:1::"
    assert by_column["email"][EMAIL_INPUTS.index("élodie.müller@bücher.de")] == "é***@bücher.de"
    assert by_column["user_name"][IDENTIFIER_INPUTS.index("alice")] == key.digest("alice")
    assert by_column["account"][1] == key.digest(str(1_000_003))
    assert by_column["user_name"][IDENTIFIER_INPUTS.index(None)] is None


@pytest.mark.parametrize("format_name", ["csv", "json", "ndjson", "xlsx", "parquet"])
def test_copy_renders_rewritten_columns_as_the_python_writer_does(
    reader: PostgresReader, format_name: str
) -> None:
    # Given an export under every rewriting transform
    export = export_of(ALL_FIELDS, EVERY_REWRITE, format_name)

    # When it is rendered by COPY (values rewritten and rendered in SQL) and by the writer
    by_copy = _rendered(export, reader, by_copy=True)
    by_writer = _rendered(export, reader, by_copy=False)

    # Then the bytes are the same
    assert by_copy == by_writer


def test_rewritten_columns_are_strings_in_typed_formats(reader: PostgresReader) -> None:
    export = export_of(["id", "account", "ip"], ["hash_identifiers", "anonymize_ip"], "parquet")
    rows = PostgresRows(reader, lambda: KEY).first_rows(export, SCOPE, 1000)
    table = pq.read_table(
        io.BytesIO(export.writer.whole_file(export.columns, export.options, rows))
    )
    types = {field.name: str(field.type) for field in table.schema}
    assert types["account"] == "string"
    assert types["ip"] == "string"
    assert types["id"] == "int64"


def test_hashes_are_stable_and_differ_across_keys(reader: PostgresReader) -> None:
    export = export_of(["user_name"], ["hash_identifiers"])
    first = PostgresRows(reader, lambda: KEY).first_rows(export, SCOPE, 1000)
    again = PostgresRows(reader, lambda: KEY).first_rows(export, SCOPE, 1000)
    other = PostgresRows(reader, lambda: OTHER_KEY).first_rows(export, SCOPE, 1000)
    assert first == again
    hashed = [row[0] for row in first if row[0] is not None]
    assert hashed and all(len(digest) == 64 for digest in hashed)
    assert not {row[0] for row in first} - {None} & {row[0] for row in other}


def test_the_key_is_never_in_the_sql_text(reader: PostgresReader) -> None:
    export = export_of(ALL_FIELDS, EVERY_REWRITE)
    inner, outer = KEY.pads()
    query = replace(export.select(SCOPE), settings=None)
    for text in (query.sql, repr(query), repr(export)):
        assert inner.hex() not in text and outer.hex() not in text
        assert "integration-key" not in text
    # And without the settings the query fails rather than hashing with an empty key
    with pytest.raises(QueryFailed):
        reader.fetch(query)


def _rendered(export: ResolvedExport, reader: PostgresReader, *, by_copy: bool) -> bytes:
    sink = BytesSink()
    writer: FormatWriter = export.writer(export.columns, export.options, sink, PartPosition())
    writer.open()
    rows = PostgresRows(reader, lambda: KEY)
    if by_copy:
        assert rows.copy_plan(export, SCOPE, writer) is not None, "expected a COPY plan"
        rows.write(export, SCOPE, writer, lambda done: None)
    else:
        writer.write_rows(counted(rows.stream(export, SCOPE), lambda done: None))
    writer.close()
    if export.writer.name == "xlsx":  # sheet XML, deflated: compare the XML
        return zlib.decompressobj(-15).decompress(sink.data)
    return sink.data


def test_an_aggregated_export_groups_by_the_rewritten_dimension(reader: PostgresReader) -> None:
    # Given a dataset that may be grouped by user name, under hash_identifiers
    dataset = people_dataset(aggregations={"dimensions": ["user_name"], "measures": {}})
    request = ExportRequest.model_validate(
        {
            "dataset": "people",
            "aggregate": {"group_by": ["user_name"], "measures": [{"function": "count"}]},
            "privacy": ["hash_identifiers"],
        }
    )
    export = resolve_export(request, Catalog(by_name={"people": dataset}))

    # When the groups are read
    groups = PostgresRows(reader, lambda: KEY).first_rows(export, SCOPE, 1000)

    # Then each group's name is the HMAC of the raw name, with its rows counted
    expected: dict[str | None, int] = {}
    for name in IDENTIFIER_INPUTS + [None] * (ROWS - len(IDENTIFIER_INPUTS)):
        digest = None if name is None else KEY.digest(name)
        expected[digest] = expected.get(digest, 0) + 1
    assert {name: count for name, count in groups} == expected
