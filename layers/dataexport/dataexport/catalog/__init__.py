"""The dataset catalog: what can be exported, with which columns, filters and roles."""

from dataexport.catalog.loader import Catalog, load_catalog
from dataexport.catalog.model import Column, ColumnType, Dataset, FilterOperator

__all__ = ["Catalog", "Column", "ColumnType", "Dataset", "FilterOperator", "load_catalog"]
