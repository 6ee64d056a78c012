"""Ordered `select_for_update` querysets: lock campaigns, then codes (then the points account, in the ledger).

Always evaluated at once (`list()`), always in primary key order, so concurrent redemptions of the same
rows queue instead of deadlocking.
"""

from campaigns.models import Campaign, Code


def campaigns_for_update(*, tenant, ids) -> dict[int, Campaign]:
    if not ids:
        return {}
    rows = list(Campaign.objects.for_tenant(tenant).filter(pk__in=ids).order_by("pk").select_for_update())
    return {c.pk: c for c in rows}


def codes_for_update(*, tenant, ids) -> dict[int, Code]:
    if not ids:
        return {}
    rows = list(Code.objects.for_tenant(tenant).filter(pk__in=ids).order_by("pk").select_for_update())
    return {c.pk: c for c in rows}


def campaign_for_update(*, campaign: Campaign) -> Campaign:
    return Campaign.objects.filter(tenant_id=campaign.tenant_id, pk=campaign.pk).select_for_update().get()
