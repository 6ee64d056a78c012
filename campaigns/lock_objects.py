"""Ordered `select_for_update` reads: lock campaigns, then codes (then the points account, in the ledger).

Always evaluated at once, always in primary key order, so concurrent redemptions of the same rows queue
instead of deadlocking. The hot reads are plain SQL turned into model instances here (`select_list`,
`instance`): the same rows, values and locks as the ORM query, without compiling a queryset on every
checkout (which costs more CPU than PostgreSQL spends answering these primary-key lookups).
"""

from functools import cache

from django.db import connection
from django.db.models.expressions import Col

from campaigns.models import Campaign, Code


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


def instance(model, alias: str, values):
    """An instance of `model` from the values of `select_list(model, alias)`, converted as the ORM would."""
    values = list(values)
    for index, converters, column in _converters(model, alias):
        for converter in converters:
            values[index] = converter(values[index], column, connection)
    return model.from_db(connection.alias, None, values)


def instances(model, sql: str, params) -> list:
    """Instances of `model` from `SELECT <select_list(model, "t")> <sql>` (`sql` names the table `t`)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {select_list(model, 't')} {sql}", params)
        return [instance(model, "t", row) for row in cursor.fetchall()]


def _locked_rows(model, tenant, ids) -> dict:
    ids = sorted(ids)
    placeholders = ", ".join(["%s"] * len(ids))
    sql = f"FROM {model._meta.db_table} t WHERE t.tenant_id = %s AND t.id IN ({placeholders}) ORDER BY t.id"
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return {row.pk: row for row in instances(model, sql, [getattr(tenant, "pk", tenant), *ids])}


def campaigns_for_update(*, tenant, ids) -> dict[int, Campaign]:
    if not ids:
        return {}
    return _locked_rows(Campaign, tenant, ids)


def codes_for_update(*, tenant, ids) -> dict[int, Code]:
    if not ids:
        return {}
    return _locked_rows(Code, tenant, ids)


def campaign_for_update(*, campaign: Campaign) -> Campaign:
    return Campaign.objects.filter(tenant_id=campaign.tenant_id, pk=campaign.pk).select_for_update().get()
