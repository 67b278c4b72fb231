"""Exports of a dataset with its children (catalog `children`): nested or flattened.

Nested (`options.nested`): each parent row carries one more member per child dataset, the JSON
array of its children in key order, rendered by PostgreSQL (query_builder), so the export still
streams through COPY. Only formats whose rows are JSON objects can hold it (json, ndjson).

Flattened (`options.flatten`): one row per child with the parent's columns repeated, in the
parent's order then the child's key; a parent without children gives one row with empty child
columns. Any format: the child columns are ordinary typed columns, named with the child's
`flatten_prefix`. A dataset with several children flattens none: the rows would multiply.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dataexport.catalog.model import ChildDataset, ColumnType, Dataset
from dataexport.errors import InvalidRequest
from dataexport.formats.writer import FormatWriter, OutputColumn


class ChildShape(StrEnum):
    NESTED = "nested"
    FLATTENED = "flattened"


@dataclass(frozen=True)
class Nesting:
    """How an export includes children: the shape, and the children it includes."""

    shape: ChildShape
    children: tuple[ChildDataset, ...]

    @property
    def option(self) -> str:
        """The request option that asked for this shape."""
        return "options.nested" if self.shape is ChildShape.NESTED else "options.flatten"

    @property
    def output_names(self) -> list[str]:
        return [column.name for column in self.output_columns()]

    def output_columns(self) -> list[OutputColumn]:
        """The columns that follow the parent's fields."""
        if self.shape is ChildShape.NESTED:
            return [
                OutputColumn(
                    name=child.name, label=child.title, type=ColumnType.JSON, json_text=True
                )
                for child in self.children
            ]
        (child,) = self.children
        return [
            OutputColumn(
                name=child.flattened_name(column.name), label=column.label, type=column.type
            )
            for column in child.columns
        ]


def resolve_nesting(
    dataset: Dataset,
    writer: type[FormatWriter],
    *,
    nested: bool,
    flatten: bool,
    aggregated: bool,
) -> Nesting | None:
    """The nesting a request's options ask for (None: parent rows only); InvalidRequest naming
    the option when the dataset, the format or the rest of the request rules it out."""
    if not (nested or flatten):
        return None
    option = "options.nested" if nested else "options.flatten"
    if nested and flatten:
        raise InvalidRequest("options.flatten", "Choose nested or flatten, not both.")
    if not dataset.children:
        raise InvalidRequest(option, f"Dataset {dataset.name!r} has no child datasets.")
    if aggregated:
        raise InvalidRequest(option, "Groups and summaries have no children; remove the option.")
    if nested:
        if not writer.nests_children:
            raise InvalidRequest(
                "options.nested",
                f"{writer.name} rows cannot hold nested children; use json or ndjson, "
                "or options.flatten.",
            )
        return Nesting(ChildShape.NESTED, tuple(dataset.children))
    if len(dataset.children) != 1:
        names = ", ".join(child.name for child in dataset.children)
        raise InvalidRequest(
            "options.flatten",
            f"Dataset {dataset.name!r} has several children ({names}); "
            "only a dataset with one can be flattened.",
        )
    return Nesting(ChildShape.FLATTENED, (dataset.children[0],))
