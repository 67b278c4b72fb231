"""pynamodb models are declared once and bound to each deployment's table at run time.

Table names come from the function's configuration, which is read on first use, never at import
time; so each model is declared with a placeholder name and bound here, once per table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import TypeVar, cast

from pynamodb.models import Model

from dataexport.adapters.aws_clients import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS

ModelT = TypeVar("ModelT", bound=Model)


def bound_model(model: type[ModelT], table_name: str, region: str) -> type[ModelT]:
    """`model` reading and writing the table `table_name` in `region` (one class per table)."""
    return cast(type[ModelT], _bound(model, table_name, region))


@cache
def _bound(model: type[Model], table_name: str, region: str) -> type[Model]:
    meta = type(
        "Meta",
        (),
        {
            "table_name": table_name,
            "region": region,
            # As the other clients (aws_clients.py): fail fast without a route to DynamoDB.
            "connect_timeout_seconds": CONNECT_TIMEOUT_SECONDS,
            "read_timeout_seconds": READ_TIMEOUT_SECONDS,
        },
    )
    return type(f"{model.__name__}_{table_name}", (model,), {"Meta": meta})


def sortable_utc(value: datetime) -> str:
    """An instant as fixed-width UTC ISO text: strings that compare in time order, as
    DynamoDB range keys and conditions compare them."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_sortable_utc(value: str | None) -> datetime | None:
    """The instant `sortable_utc` wrote (None stays None)."""
    return None if value is None else datetime.fromisoformat(value)
