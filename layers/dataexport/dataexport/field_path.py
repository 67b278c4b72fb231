"""How an answer names a field: object keys joined by `.`, list indexes in brackets.

`("filters", 0, "op")` is `filters[0].op`; `("aggregate", "measures", 0, "function")` is
`aggregate.measures[0].function`. Every place that names a field in an error uses this.
"""

from __future__ import annotations

from collections.abc import Iterable


def field_path(location: Iterable[int | str]) -> str:
    """The name of the field at `location` ("" for the document itself)."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
