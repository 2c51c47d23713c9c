"""The one error type the engine raises for bad input."""

from __future__ import annotations


class AnalysisInputError(ValueError):
    """Input that would give wrong tables; names where it sits.

    ``row`` is the 1-based data row (the header is not counted), so the file line
    is ``row + 1`` when no field holds a line break. Either may be None for
    file-level problems (a missing column, an empty file).
    """

    def __init__(
        self, message: str, *, row: int | None = None, column: str | None = None, source: str = ""
    ) -> None:
        self.row = row
        self.column = column
        self.source = source
        self.detail = message
        where = []
        if source:
            where.append(source)
        if row is not None:
            where.append(f"row {row} (line {row + 1})")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
