"""Loading the dataset catalog from YAML files: the packaged ones plus a deployer's own.

Every `*.yaml` file under the packaged `dataexport/catalog/datasets/` declares one dataset. A
deployer adds or replaces datasets with a directory of their own (`DATASETS_DIR`): a dataset
there with the same name as a packaged one replaces it. Any invalid file stops the load with a
CatalogError naming the file and the field, so a bad catalog fails at start, never mid-export.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dataexport.catalog.model import Dataset
from dataexport.errors import CatalogError, DatasetHidden, DatasetNotFound
from dataexport.field_path import field_path
from dataexport.summary import summary_problems

DATASET_FILE_SUFFIX = ".yaml"
MAX_DATASET_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Catalog:
    """The datasets a deployment offers, by name."""

    by_name: Mapping[str, Dataset]

    def get(self, name: str) -> Dataset:
        """The dataset called `name`; DatasetNotFound if there is none."""
        try:
            return self.by_name[name]
        except KeyError:
            raise DatasetNotFound(name) from None

    def usable_by(self, name: str, role: str, field: str | None = None) -> Dataset:
        """The dataset called `name` if a caller with `role` may use it; otherwise
        DatasetNotFound, as for a dataset that does not exist, so a hidden one is never
        revealed. Every route resolves a caller's dataset here; `field` names where the
        request referred to it."""
        dataset = self.by_name.get(name)
        if dataset is None:
            raise DatasetNotFound(name, field)
        if not dataset.allows_role(role):
            raise DatasetHidden(name, field)
        return dataset

    def datasets(self) -> list[Dataset]:
        """Every dataset, sorted by name."""
        return [self.by_name[name] for name in sorted(self.by_name)]

    def visible_to(self, role: str) -> list[Dataset]:
        """The datasets a caller with `role` may see and export, sorted by name."""
        return [dataset for dataset in self.datasets() if dataset.allows_role(role)]

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def __len__(self) -> int:
        return len(self.by_name)


def _describe(error: ValidationError) -> tuple[str, list[dict[str, str]]]:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append({"field": field_path(item["loc"]), "message": message})
    text = "; ".join(
        f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems
    )
    return text, problems


def parse_dataset(text: str, origin: str) -> Dataset:
    """Validate one dataset declaration; `origin` names the file in error messages."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise CatalogError(
            f"{origin}: not valid YAML{where}", {"file": origin, "field": None}
        ) from None
    if not isinstance(data, dict):
        raise CatalogError(
            f"{origin}: a dataset file must hold a mapping of fields", {"file": origin}
        )
    try:
        dataset = Dataset.model_validate(data)
    except ValidationError as exc:
        text, problems = _describe(exc)
        raise CatalogError(f"{origin}: {text}", {"file": origin, "errors": problems}) from None
    found = summary_problems(dataset)
    if found:
        errors = [
            {"field": field, "message": message}
            for field, _, message in (problem.partition(": ") for problem in found)
        ]
        raise CatalogError(f"{origin}: {'; '.join(found)}", {"file": origin, "errors": errors})
    return dataset


def _read(file: Traversable, origin: str) -> str:
    raw = file.read_bytes()
    if len(raw) > MAX_DATASET_FILE_BYTES:
        raise CatalogError(f"{origin}: the file is larger than {MAX_DATASET_FILE_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CatalogError(f"{origin}: the file is not UTF-8 text", {"file": origin}) from None


def _load_directory(files: Iterable[Traversable], label: str) -> dict[str, Dataset]:
    datasets: dict[str, Dataset] = {}
    origins: dict[str, str] = {}
    for file in sorted(files, key=lambda item: item.name):
        if not (file.is_file() and file.name.endswith(DATASET_FILE_SUFFIX)):
            continue
        origin = f"{label}/{file.name}"
        dataset = parse_dataset(_read(file, origin), origin)
        if dataset.name in datasets:
            raise CatalogError(
                f"{origin}: dataset {dataset.name!r} is already declared in "
                f"{origins[dataset.name]}",
                {"file": origin, "field": "name"},
            )
        datasets[dataset.name] = dataset
        origins[dataset.name] = origin
    return datasets


def load_catalog(extra_dir: Path | None = None) -> Catalog:
    """Load the packaged datasets, then `extra_dir`'s (a same-named dataset replaces ours).

    Raises CatalogError for an invalid file or a missing `extra_dir`.
    """
    packaged = resources.files("dataexport.catalog").joinpath("datasets")
    datasets = _load_directory(packaged.iterdir(), "dataexport/catalog/datasets")
    if extra_dir is not None:
        if not extra_dir.is_dir():
            raise CatalogError(
                f"The datasets directory {extra_dir} does not exist.", {"file": str(extra_dir)}
            )
        datasets.update(_load_directory(extra_dir.iterdir(), str(extra_dir)))
    return Catalog(by_name=dict(datasets))
