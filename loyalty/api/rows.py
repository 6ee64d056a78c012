"""Model instances from one hand-written SELECT (joins included), for the few queries every API call runs.

The ORM compiles each queryset anew on every request, which costs more CPU than PostgreSQL spends
answering these primary-key and unique-index lookups. Here the SQL text is built once per model set and
the values go through the same database converters the ORM applies (JSON, decimals, ...).
"""

from functools import cache

from django.db import connection
from django.db.models.expressions import Col


@cache
def select_list(model, alias: str) -> str:
    """`alias."col1", alias."col2", ...` for every concrete field of `model`, in field order."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(f.column)}" for f in model._meta.concrete_fields)


@cache
def _converters(model, alias: str) -> list[tuple[int, list, Col]]:
    out = []
    for index, field in enumerate(model._meta.concrete_fields):
        column = Col(alias, field)
        converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if converters:
            out.append((index, converters, column))
    return out


def instance(model, alias: str, values) -> object:
    """An instance of `model` from the values of `select_list(model, alias)`, as the ORM would build it."""
    values = list(values)
    for index, converters, column in _converters(model, alias):
        for converter in converters:
            values[index] = converter(values[index], column, connection)
    return model.from_db(connection.alias, None, values)


def width(model) -> int:
    return len(model._meta.concrete_fields)
