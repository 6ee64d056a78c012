"""Plain SQL for the few statements every checkout runs, with the ORM's own conversions.

Compiling a queryset costs more CPU than PostgreSQL spends answering a primary-key lookup or a one-row
INSERT, and the hot paths (validate, redeem, earn) run a handful of them per request. These helpers
read rows into model instances (`select_list`, `instance`, `instances`) and write instances
(`insert_values`) with the values converted exactly as the ORM converts them, so the rows are the same
as `objects.filter(...)` / `objects.create(...)` would read or write.

These are the generic helpers. The statements themselves live in one module per app (`campaigns/sql.py`,
`loyalty/sql.py`, `integrations/sql.py`), next to the rule each one filters on, written once.
"""

from collections.abc import Callable
from contextlib import contextmanager
from functools import cache

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models.expressions import Col
from django.db.models.fields import AutoFieldMixin


@cache
def select_list(model, alias: str) -> str:
    """`alias."col1", alias."col2", ...`: every concrete field of `model`, in field order."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(f.column)}" for f in model._meta.concrete_fields)


def width(model) -> int:
    """How many values of a row `select_list(model, ...)` selects."""
    return len(model._meta.concrete_fields)


@cache
def _converters(model, alias: str) -> list[tuple[int, list, Col]]:
    out = []
    for index, field in enumerate(model._meta.concrete_fields):
        column = Col(alias, field)
        converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if converters:
            out.append((index, converters, column))
    return out


def _connection():
    """The connection itself: every attribute read through the `connection` proxy looks it up again."""
    return connections[DEFAULT_DB_ALIAS]


def instance(model, alias: str, values, db=None):
    """An instance of `model` from the values of `select_list(model, alias)`, converted as the ORM would."""
    db = db or _connection()
    values = list(values)
    for index, converters, column in _converters(model, alias):
        for converter in converters:
            values[index] = converter(values[index], column, db)
    return model.from_db(db.alias, None, values)


def instances(model, sql: str, params) -> list:
    """Instances of `model` from `SELECT <select_list(model, "t")> <sql>` (`sql` names the table `t`)."""
    db = _connection()
    with db.cursor() as cursor:
        cursor.execute(f"SELECT {select_list(model, 't')} {sql}", params)
        return [instance(model, "t", row, db) for row in cursor.fetchall()]


@cache
def _insert_fields(model, computed: tuple[str, ...]) -> tuple[list, str]:
    # The database draws an automatic primary key; any other (a UUID) is written, as `save()` does.
    fields = [
        f
        for f in model._meta.concrete_fields
        if not (f.primary_key and isinstance(f, AutoFieldMixin)) and f.attname not in computed
    ]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in [*fields, *(model._meta.get_field(a) for a in computed)])
    return fields, f"{quote(model._meta.db_table)} ({columns})"


def insert_values(model, objs, computed: dict[str, str] | None = None) -> tuple[str, list]:
    """`INSERT INTO table (cols) VALUES (...), ...` of `objs` (no RETURNING) and its parameters.

    Values are prepared by each field's `get_db_prep_save`, as `Model.save()` does (`pre_save` included,
    so defaults and auto_now behave the same). `computed` maps attnames to SQL expressions written in
    place of a value, e.g. `{"redemption_id": "(SELECT id FROM r)"}` to point at a row inserted by an
    earlier CTE of the same statement.
    """
    computed = computed or {}
    fields, target = _insert_fields(model, tuple(computed))
    row = "(" + ", ".join(["%s"] * len(fields) + list(computed.values())) + ")"
    db = _connection()
    params: list = []
    for obj in objs:
        params += [f.get_db_prep_save(f.pre_save(obj, True), db) for f in fields]
    return f"INSERT INTO {target} VALUES " + ", ".join([row] * len(objs)), params


def insert_with_children(parent, children: list, link: str) -> None:
    """Save a new `parent` and its new `children` (their foreign key `link` points at it), setting primary
    keys and the link as `save()` and `bulk_create()` do: one statement on PostgreSQL, the ORM elsewhere."""
    db = _connection()
    child_model = type(children[0]) if children else None
    if db.vendor != "postgresql":
        parent.save(force_insert=True)
        for child in children:
            setattr(child, link, parent)
        if children:
            child_model.objects.bulk_create(children)
        return
    head, params = insert_values(type(parent), [parent])
    pk = db.ops.quote_name(type(parent)._meta.pk.column)
    sql = f"WITH p AS ({head} RETURNING {pk} AS id)"
    if children:
        column = child_model._meta.get_field(link).attname
        body, child_params = insert_values(child_model, children, computed={column: "(SELECT id FROM p)"})
        params += child_params
        # A multi-row INSERT draws its ids from the sequence in VALUES order: sorted ids are the children's own.
        child_pk = db.ops.quote_name(child_model._meta.pk.column)
        sql += f", c AS ({body} RETURNING {child_pk} AS id) SELECT (SELECT id FROM p) AS id, "
        sql += "ARRAY(SELECT id FROM c ORDER BY id) AS children"
    else:
        sql += " SELECT id, ARRAY[]::bigint[] AS children FROM p"
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        parent.pk, child_ids = cursor.fetchone()
    for obj, obj_pk in [(parent, parent.pk), *zip(children, child_ids, strict=True)]:
        obj.pk = obj_pk
        obj._state.adding, obj._state.db = False, db.alias
    for child in children:
        setattr(child, link, parent)


def update_values(obj, fields: list[str]) -> tuple[str, list]:
    """`UPDATE table SET f1 = %s, ... WHERE pk = %s` writing `fields` (attnames) of `obj`, and its parameters.

    Values are prepared by each field's `get_db_prep_save`, as `save(update_fields=...)` does, so the same
    text runs on every vendor (a JSON value arrives as the vendor's JSON type).
    """
    db = _connection()
    quote = db.ops.quote_name
    meta = type(obj)._meta
    columns = [meta.get_field(name) for name in fields]
    sets = ", ".join(f"{quote(f.column)} = %s" for f in columns)
    params = [f.get_db_prep_save(f.pre_save(obj, False), db) for f in columns] + [obj.pk]
    return f"UPDATE {quote(meta.db_table)} SET {sets} WHERE {quote(meta.pk.column)} = %s", params


def execute_together(statements: list[tuple[str, list]]) -> None:
    """Run writing statements (no result wanted) as ONE statement on PostgreSQL, one by one elsewhere.

    PostgreSQL runs `WITH s0 AS (<first>), s1 AS (<second>) <last>`: data-modifying CTEs all run, on one
    snapshot, so the statements must not depend on each other's effects nor change the same row twice
    (give each its own table). SQLite has no data-modifying CTEs: the same texts run in order.
    Inside `batched()` (PostgreSQL) they join the batch instead, and run with its other statements.
    """
    statements = [(sql, list(params), None) for sql, params in statements if sql]
    db = _connection()
    batch = _batch(db)
    if batch is not None:
        batch.statements += statements
    elif db.vendor == "postgresql":
        together = _Batch()
        together.statements = statements
        together.run(db)
    else:
        with db.cursor() as cursor:
            for sql, params, _ in statements:
                cursor.execute(sql, params)


# --- a transaction's last writes, sent as one statement ----------------------------------------------------

Returned = Callable[[list], None]


class _Batch:
    def __init__(self):
        self.statements: list[tuple[str, list, Returned | None]] = []

    def run(self, db) -> None:
        """One statement: `WITH s0 AS (...), ... SELECT ARRAY(SELECT r FROM s<i>), ...` for the statements that
        want their RETURNING values (each returns one column named `r`), then each one's `returned(values)`."""
        statements, self.statements = self.statements, []
        if not statements:
            return
        wanted = [(n, returned) for n, (_, _, returned) in enumerate(statements) if returned is not None]
        if len(statements) == 1 and not wanted:
            sql, params, _ = statements[0]
            with db.cursor() as cursor:
                cursor.execute(sql, params)
            return
        ctes = ", ".join(f"s{n} AS ({sql})" for n, (sql, _, _) in enumerate(statements))
        select = ", ".join(f"ARRAY(SELECT r FROM s{n})" for n, _ in wanted) or "1"
        params = [p for _, ps, _ in statements for p in ps]
        with db.cursor() as cursor:
            cursor.execute(f"WITH {ctes} SELECT {select}", params)
            row = cursor.fetchone()
        for (_, returned), values in zip(wanted, row, strict=False):
            returned(list(values))


def _batch(db) -> _Batch | None:
    return getattr(db, "_statement_batch", None)


@contextmanager
def batched():
    """Collect the writes of `write_later` (and `execute_together`) and send them as ONE statement on leaving
    (PostgreSQL; elsewhere each runs at once).

    For the end of a hot transaction: the counters, the trace, the event and its deliveries, the stored answer
    are independent rows whose writes need not wait for each other, and each round trip to the server costs
    it more than the write. Only writes nobody reads before the batch ends may join it: code that must see
    them first calls `flush()`. On an exception nothing queued is sent (the transaction is rolling back).
    """
    db = _connection()
    if db.vendor != "postgresql" or _batch(db) is not None:
        yield
        return
    db._statement_batch = batch = _Batch()
    try:
        yield
        batch.run(db)
    finally:
        db._statement_batch = None


def batching() -> bool:
    """A batch is open: `write_later` statements wait for its end."""
    return _batch(_connection()) is not None


def flush() -> None:
    """Send what the open batch holds now (before a statement that depends on it)."""
    db = _connection()
    batch = _batch(db)
    if batch is not None:
        batch.run(db)


def write_later(sql: str, params: list, *, returned: Returned | None = None) -> None:
    """Run a writing statement now, or with the open batch (`batched()`). `returned(values)`, when given,
    receives the values of the statement's `RETURNING ... AS r` (one column), whenever the statement ran."""
    db = _connection()
    batch = _batch(db)
    if batch is not None:
        batch.statements.append((sql, list(params), returned))
        return
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        if returned is not None:
            returned([row[0] for row in cursor.fetchall()])
