"""Ordered `select_for_update` reads: lock campaigns, then codes (then the points account, in the ledger).

Always evaluated at once, always in primary key order, so concurrent redemptions of the same rows queue
instead of deadlocking. The hot reads are the plain-SQL statements of `campaigns.sql` with `lock=True`:
the same rows, values and locks as the ORM query, without compiling a queryset on every checkout, and the
same statements (unlocked) that validation reads.
"""

from campaigns import sql
from campaigns.models import Campaign, Code


def campaigns_for_update(*, tenant, ids) -> dict[int, Campaign]:
    return sql.rows_by_id(Campaign, getattr(tenant, "pk", tenant), ids, lock=True)


def codes_for_update(*, tenant, ids) -> dict[int, Code]:
    return sql.rows_by_id(Code, getattr(tenant, "pk", tenant), ids, lock=True)


def campaigns_and_codes_for_update(*, tenant, texts) -> tuple[dict[int, Campaign], list[Code]]:
    """The codes named `texts` and their campaigns, locked in one statement (each campaign before its codes)."""
    return sql.campaigns_and_codes_for_update(getattr(tenant, "pk", tenant), texts)


def campaigns_of_codes_for_update(*, tenant, texts, ids) -> dict[int, Campaign]:
    """The campaigns of the codes named `texts`, and those with `ids`, locked, by id."""
    return sql.campaigns_of_codes_for_update(getattr(tenant, "pk", tenant), texts, ids)


def codes_named_for_update(*, tenant, texts, campaign_ids=None) -> list[Code]:
    """The tenant's codes named `texts` (optionally only of `campaign_ids`), locked, in primary key order."""
    return sql.codes_by_text(getattr(tenant, "pk", tenant), texts, campaign_ids=campaign_ids, lock=True)


def campaign_for_update(*, campaign: Campaign) -> Campaign:
    return Campaign.objects.filter(tenant_id=campaign.tenant_id, pk=campaign.pk).select_for_update().get()
