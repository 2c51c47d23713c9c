"""Hand-written SQL for the few statements on the rater loop's hot path, models kept.

Measured on the answer → next request (PostgreSQL, prepared statements): the
ORM spent about 6 ms of Python building the statements and the models of one
request, against about 3 ms in the database. The hot statements are written
once here as SQL text and their rows still become ordinary model instances:
:class:`Row` applies the same database converters as the ORM, so values have
the same Python types on PostgreSQL and SQLite, and writes go through each
field's ``get_db_prep_save``. Everything else keeps using the ORM.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Field, Model


def qn(name: str) -> str:
    return connection.ops.quote_name(name)


def table(model: type[Model]) -> str:
    return qn(model._meta.db_table)


class Columns:
    """Some (default: all) concrete fields of a model, as read through table alias ``alias``."""

    def __init__(self, model: type[Model], alias: str, names: Iterable[str] | None = None):
        concrete = model._meta.concrete_fields
        wanted = set(names) if names is not None else None
        self.model = model
        self.alias = alias
        self.fields: tuple[Field, ...] = tuple(
            f for f in concrete if wanted is None or f.name in wanted or f.attname in wanted
        )
        self.attnames = tuple(f.attname for f in self.fields)
        self.sql = ", ".join(f"{alias}.{qn(f.column)}" for f in self.fields)
        self._converters: dict[str, list] = {}

    def __len__(self) -> int:
        return len(self.fields)

    def converters(self) -> list:
        """Per column, the converters the ORM would apply (backend's, then the field's)."""
        vendor = connection.vendor
        if vendor not in self._converters:
            per_column = []
            for f in self.fields:
                col = f.get_col(self.alias)
                per_column.append(
                    (connection.ops.get_db_converters(col) + col.get_db_converters(connection), col)
                )
            self._converters[vendor] = per_column
        return self._converters[vendor]

    def build(self, values: Sequence[Any]) -> Model | None:
        """The model instance of these columns' values; ``None`` for an outer join's miss."""
        if values[0] is None:  # the primary key (or first column) of a LEFT JOIN miss
            return None
        conn = connections[DEFAULT_DB_ALIAS]
        converted = []
        for value, (funcs, col) in zip(values, self.converters(), strict=True):
            for func in funcs:
                value = func(value, col, conn)
            converted.append(value)
        return self.model.from_db(DEFAULT_DB_ALIAS, self.attnames, converted)


def read(row: Sequence[Any], *blocks: Columns) -> list[Model | None]:
    """Split one result row into one instance per block of columns, in order."""
    out, start = [], 0
    for block in blocks:
        out.append(block.build(row[start : start + len(block)]))
        start += len(block)
    return out


@contextmanager
def _cursor() -> Iterator[Any]:
    """A cursor for one statement.

    On PostgreSQL the driver's own cursor, one per connection, reused, with
    Django's error translation (``IntegrityError`` & co.) but without its
    cursor wrapper: that wrapper and a new cursor per statement cost 40 % on
    top of psycopg itself (measured: 73 against 53 µs of CPU per SELECT).
    Elsewhere Django's cursor, which also adapts the ``%s`` parameter style.
    """
    conn = connections[DEFAULT_DB_ALIAS]  # one lookup, not one per attribute
    if conn.vendor != "postgresql":
        with conn.cursor() as cursor:
            yield cursor
        return
    if conn.connection is None:
        conn.ensure_connection()
    raw = conn.connection
    cursor = getattr(raw, "_xai_cursor", None)
    if cursor is None or cursor.closed:
        cursor = raw._xai_cursor = raw.cursor()
    with conn.wrap_database_errors:
        yield cursor


def plan_with_indexes_only(wanted: bool) -> None:
    """Make this connection plan with indexes whenever one applies (or plan as usual).

    The rater loop's statements are prepared once per connection and
    PostgreSQL keeps the plan it made around their sixth run. If the tables
    were nearly empty at their last ANALYZE (a new study on a new database),
    that plan is a sequential scan, kept while the tables grow a
    hundredfold until the next autoanalyze (measured: 130 buffers instead of
    8 per lookup after 5,000 answers). Every statement of the rater pages is
    a lookup by a key or an ordered index walk, so they run with sequential
    scans off; every other page plans as usual. A session setting, switched
    only when the connection's mode changes (see ``PlanModeMiddleware``).
    """
    conn = connections[DEFAULT_DB_ALIAS]
    if conn.vendor != "postgresql":
        return
    if conn.connection is None:
        conn.ensure_connection()
    raw = conn.connection
    if not conn.in_atomic_block and getattr(raw, "_xai_index_plans", False) == wanted:
        return
    execute("SET enable_seqscan = off" if wanted else "RESET enable_seqscan", [])
    # Inside a transaction the SET is undone by a rollback (a test's, an atomic
    # request's): remember nothing then, so the next call sets it again.
    raw._xai_index_plans = None if conn.in_atomic_block else wanted


def fetch_one(sql: str, params: Sequence[Any] | dict[str, Any]) -> tuple | None:
    with _cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def execute(sql: str, params: Sequence[Any] | dict[str, Any]) -> int:
    """Run one statement; the number of rows it touched."""
    with _cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


_INSERTS: dict[tuple[str, type[Model]], tuple[str, list[Field]]] = {}


def _insert_sql(model: type[Model], vendor: str) -> tuple[str, list[Field]]:
    key = (vendor, model)
    if key not in _INSERTS:
        fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        if any(getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) for f in fields):
            raise TypeError(f"{model.__name__}: auto_now fields need Model.save(), not insert()")
        _INSERTS[key] = (
            f"INSERT INTO {table(model)} ({', '.join(qn(f.column) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {qn(model._meta.pk.column)}",
            fields,
        )
    return _INSERTS[key]


def row(model: type[Model], values: dict[str, Any]) -> list[Any]:
    """The Python values of a new row, non-pk columns in table order; defaults fill gaps."""
    fields = _insert_sql(model, connections[DEFAULT_DB_ALIAS].vendor)[1]
    return [values[f.attname] if f.attname in values else f.get_default() for f in fields]


def built(model: type[Model], pk: Any, python: list[Any]) -> Model:
    """The instance of a row just written (``row``'s values and its pk), built the way
    the ORM builds fetched rows (``from_db``): without the keyword handling of
    ``Model.__init__``, a fifth of the request's Python time when two rows were
    made that way."""
    return model.from_db(DEFAULT_DB_ALIAS, None, [pk, *python])


def insert(model: type[Model], **values: Any) -> Model:
    """INSERT one row (``values`` by attname) and return the model instance with its pk.

    Fields not given take their default, as ``Model(**values)`` would.
    """
    conn = connections[DEFAULT_DB_ALIAS]
    sql, fields = _insert_sql(model, conn.vendor)
    python = row(model, values)
    params = [f.get_db_prep_save(v, conn) for f, v in zip(fields, python, strict=True)]
    return built(model, fetch_one(sql, params)[0], python)


def prep(model: type[Model], name: str, value: Any) -> Any:
    """A Python value as the database column ``model.name`` stores it."""
    return model._meta.get_field(name).get_db_prep_save(value, connection)
