"""The ordered select_for_update querysets of the ledger (house rule 2).

Global lock order: campaign, then code, then account (by primary key). Only the account row is locked
(`of=("self",)`): lots, pending points and debts of an account change only while its row is locked, so the
account lock covers them.
"""

from rewards.models import Account


def account_lock(account_id: int) -> Account:
    return (
        Account.objects.select_related("tenant", "program", "member").select_for_update(of=("self",)).get(pk=account_id)
    )


def accounts_lock(account_ids) -> list[Account]:
    """Several accounts, locked in primary-key order (transfers, batch jobs)."""
    return list(
        Account.objects.filter(pk__in=list(account_ids))
        .select_related("tenant", "program", "member")
        .order_by("pk")
        .select_for_update(of=("self",))
    )
