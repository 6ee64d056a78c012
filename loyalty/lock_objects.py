"""The ordered select_for_update querysets of the ledger (house rule 2).

Global lock order: campaign, then code, then account (by primary key). Only the account row is locked
(`of=("self",)`): lots, pending points and debts of an account change only while its row is locked, so the
account lock covers them.
"""

from loyalty import sql
from loyalty.models import Account


def _locked_accounts():
    return Account.objects.select_related("tenant", "program", "member").select_for_update(of=("self",))


def account_lock(account_id: int) -> Account:
    return _locked_accounts().get(pk=account_id)


def default_account_lock(member) -> Account | None:
    """The member's account in the tenant's default program (`loyalty.sql.default_program_id`), locked, with
    tenant, program and member, in ONE query (plain SQL: every order takes this lock); None when the member
    has no account there yet."""
    return sql.default_account_for_update(member)


def accounts_lock(account_ids) -> list[Account]:
    """Several accounts, locked in primary-key order (transfers, batch jobs)."""
    return list(_locked_accounts().filter(pk__in=list(account_ids)).order_by("pk"))
