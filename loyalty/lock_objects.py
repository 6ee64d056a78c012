"""The ordered select_for_update querysets of the ledger (house rule 2).

Global lock order: campaign, then code, then account (by primary key). Only the account row is locked
(`of=("self",)`): lots, pending points and debts of an account change only while its row is locked, so the
account lock covers them.
"""

from django.db import connection

from common.plain_sql import instance, select_list, width
from loyalty.models import Account, Program
from members.models import Tenant


def _locked_accounts():
    return Account.objects.select_related("tenant", "program", "member").select_for_update(of=("self",))


def account_lock(account_id: int) -> Account:
    return _locked_accounts().get(pk=account_id)


def default_account_lock(member) -> Account | None:
    """The member's account in the tenant's default program (its active program with the lowest id), locked,
    with tenant, program and member, in ONE query; None when the member has no account there yet."""
    # Plain SQL (`common.plain_sql`): every order takes this lock, and compiling the queryset cost more than
    # PostgreSQL spends answering it.
    sql = (
        f"SELECT {select_list(Account, 'a')}, {select_list(Tenant, 'tn')}, {select_list(Program, 'p')}"
        f" FROM {Account._meta.db_table} a JOIN {Tenant._meta.db_table} tn ON tn.id = a.tenant_id"
        f" JOIN {Program._meta.db_table} p ON p.id = a.program_id"
        f" WHERE a.member_id = %s AND a.program_id = (SELECT id FROM {Program._meta.db_table}"
        " WHERE tenant_id = %s AND active = %s ORDER BY id LIMIT 1) ORDER BY a.id LIMIT 1"
    )
    if connection.features.has_select_for_update_of:
        sql += " FOR UPDATE OF a"
    with connection.cursor() as cursor:
        cursor.execute(sql, [member.pk, member.tenant_id, True])
        row = cursor.fetchone()
    if row is None:
        return None
    a, t = width(Account), width(Tenant)
    account = instance(Account, "a", row[:a])
    _TENANT.set_cached_value(account, instance(Tenant, "tn", row[a : a + t]))
    _PROGRAM.set_cached_value(account, instance(Program, "p", row[a + t :]))
    _MEMBER.set_cached_value(account, member)  # the caller's instance: no need to read it again
    return account


_TENANT, _PROGRAM, _MEMBER = (Account._meta.get_field(name) for name in ("tenant", "program", "member"))


def accounts_lock(account_ids) -> list[Account]:
    """Several accounts, locked in primary-key order (transfers, batch jobs)."""
    return list(_locked_accounts().filter(pk__in=list(account_ids)).order_by("pk"))
