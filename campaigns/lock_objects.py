"""Ordered `select_for_update` reads: lock campaigns, then codes (then the points account, in the ledger).

Always evaluated at once, always in primary key order, so concurrent redemptions of the same rows queue
instead of deadlocking. The hot reads are plain SQL turned into model instances (`common.plain_sql`):
the same rows, values and locks as the ORM query, without compiling a queryset on every checkout.
"""

from django.db import connection

from campaigns.models import Campaign, Code
from common.plain_sql import instances


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
