"""Ordered `select_for_update` reads: lock campaigns, then codes (then the points account, in the ledger).

Always evaluated at once, always in primary key order, so concurrent redemptions of the same rows queue
instead of deadlocking. The hot ones are plain SQL read into model instances (`Model.objects.raw`): the
same rows and locks as the ORM query, without compiling it on every checkout.
"""

from django.db import connection

from campaigns.models import Campaign, Code


def _locked_rows(model, tenant, ids) -> dict:
    ids = sorted(ids)
    placeholders = ", ".join(["%s"] * len(ids))
    sql = f"SELECT * FROM {model._meta.db_table} WHERE tenant_id = %s AND id IN ({placeholders}) ORDER BY id"
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return {row.pk: row for row in model.objects.raw(sql, [getattr(tenant, "pk", tenant), *ids])}


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
