"""Discovery routes: /v1/datasets (the catalog as the caller may use it) and /v1/formats."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from dataexport.aggregation import TimeBucket
from dataexport.api.exports_routes import export_services, tenant_user
from dataexport.api.openapi_document import answers
from dataexport.api.response_models import DatasetList, DatasetView, FormatList, model_response
from dataexport.catalog.model import (
    PROTECTED_BY,
    ChildDataset,
    Column,
    Dataset,
    PrivacyTransform,
    Sensitivity,
)
from dataexport.export_request import ExportOptionsInput
from dataexport.formats import FORMATS
from dataexport.formats.compression import Compression
from dataexport.formats.summary_writers import SUMMARY_FORMATS
from dataexport.formats.writer import FormatWriter
from dataexport.summary import resolve_summary

router = Router()  # type: ignore[no-untyped-call]


def _field_view(column: Column, operators: list[str]) -> dict[str, Any]:
    return {
        "name": column.name,
        "label": column.label,
        "type": column.type.value,
        "description": column.description,
        "sensitive": column.sensitive.value if column.sensitive else None,
        "filter_operators": operators,
    }


def _child_view(child: ChildDataset) -> dict[str, Any]:
    """A child dataset: the member holding it when nested, its columns and flattened names."""
    return {
        "name": child.name,
        "title": child.title,
        "key": child.key,
        "fields": [
            {**_field_view(column, []), "flattened_name": child.flattened_name(column.name)}
            for column in child.columns
        ],
    }


def dataset_view(dataset: Dataset, role: str | None = None) -> dict[str, Any]:
    """A dataset as a caller with `role` may use it (the privacy transforms forced on it)."""
    filters = {spec.column: [op.value for op in spec.operators] for spec in dataset.filters}
    return {
        "name": dataset.name,
        "title": dataset.title,
        "description": dataset.description,
        "time_field": dataset.time_column,
        "default_fields": dataset.default_field_names(),
        "fields": [_field_view(column, filters.get(column.name, [])) for column in dataset.columns],
        "max_span_days": dataset.max_span_days,
        "aggregations": _aggregations_view(dataset),
        "privacy": _privacy_view(dataset, role),
        "children": [_child_view(child) for child in dataset.children],
        "summaries": _summaries_view(dataset),
    }


def _summaries_view(dataset: Dataset) -> list[dict[str, Any]]:
    """The KPI summaries a request may name (`summary`), each metric as its output names it."""
    return [
        {
            "name": summary.name,
            "title": summary.title,
            "description": summary.description,
            "formats": list(SUMMARY_FORMATS),
            "metrics": [
                {"name": metric.path, "label": metric.label, "type": metric.type.value}
                for metric in summary.metrics
            ],
        }
        for summary in (resolve_summary(dataset, name) for name in dataset.summaries)
    ]


def _privacy_view(dataset: Dataset, role: str | None) -> dict[str, Any]:
    """The privacy transforms a request may ask for (`privacy`), the columns each acts on, and
    those the caller's role always gets."""
    acts_on: dict[str, list[str]] = {transform.value: [] for transform in PrivacyTransform}
    # A child's columns are named `child.column`: the transforms reach them in both shapes.
    named = [(column.name, column) for column in dataset.columns] + [
        (f"{child.name}.{column.name}", column)
        for child in dataset.children
        for column in child.columns
    ]
    for name, column in named:
        if column.sensitive is None:
            continue
        acts_on[PrivacyTransform.DROP_SENSITIVE.value].append(name)
        rewrite = PROTECTED_BY.get(column.sensitive)
        if rewrite is not None:
            acts_on[rewrite.value].append(name)
    forced = next((items for name, items in dataset.privacy.items() if name == role), [])
    return {
        "transforms": acts_on,
        "forced": sorted(transform.value for transform in forced),
        "secret_fields": [
            column.name for column in dataset.columns if column.sensitive is Sensitivity.SECRET
        ],
    }


def _aggregations_view(dataset: Dataset) -> dict[str, Any] | None:
    """What an aggregated export of this dataset may group by and compute (None: not offered)."""
    spec = dataset.aggregations
    if spec is None:
        return None
    return {
        "time_buckets": [bucket.value for bucket in TimeBucket] if dataset.time_column else [],
        "group_by": list(spec.dimensions),
        "measures": [{"function": "count"}]
        + [
            {"function": function.value, "field": name}
            for name, functions in spec.measures.items()
            for function in functions
        ],
    }


@router.get(
    "/v1/datasets",
    tags=["Catalog"],
    summary="The datasets this caller may export",
    responses=answers({200: ("The catalog as this role sees it", DatasetList)}),
)
def list_datasets() -> Response[str]:
    role = tenant_user().role.value
    catalog = export_services().catalog
    items = [dataset_view(d, role) for d in catalog.visible_to(role)]
    return model_response(200, DatasetList, {"items": items})


@router.get(
    "/v1/datasets/<name>",
    tags=["Catalog"],
    summary="One dataset: fields, filters, aggregations, privacy",
    responses=answers(
        {200: ("The dataset", DatasetView)},
        400,
        (404, "DATASET_NOT_FOUND: no such dataset for this role."),
    ),
)
def get_dataset(name: Annotated[str, Path(max_length=64)]) -> Response[str]:
    role = tenant_user().role.value
    dataset = export_services().catalog.usable_by(name, role)
    return model_response(200, DatasetView, dataset_view(dataset, role))


def format_view(writer: type[FormatWriter]) -> dict[str, Any]:
    """A format as clients need it to build a request: its type, extension and options."""
    options = ExportOptionsInput.model_json_schema()["properties"]
    return {
        "name": writer.name,
        "media_type": writer.media_type,
        "extension": writer.extension,
        "options": {name: options[name] for name in writer.request_options()},
        "compression": [
            {
                "name": codec.value,
                "suffix": codec.suffix,
                "media_type": codec.media_type(writer.media_type),
            }
            for codec in Compression
            if codec is Compression.NONE or not writer.compresses_itself
        ],
        # Container formats (xlsx, parquet) make one file: no max_file_size_mb.
        "splittable": not writer.assembles_pieces,
    }


@router.get(
    "/v1/formats",
    tags=["Catalog"],
    summary="Output formats, their options and compression",
    responses=answers({200: ("Every format", FormatList)}),
)
def list_formats() -> Response[str]:
    tenant_user()  # any signed-in caller
    items = [format_view(writer) for writer in FORMATS.values()]
    return model_response(200, FormatList, {"items": items})
