"""Points accounts: one per member and program, created on first use, found and locked for posting."""

from django.db import IntegrityError, transaction

from common.errors import ApplicationError
from loyalty import sql
from loyalty.expiry import stored_policy
from loyalty.lock_objects import account_lock, default_account_lock
from loyalty.models import Account, MemberTier, Program
from members.models import Member


def default_program(tenant) -> Program | None:
    """The tenant's program used when none is named: its active program with the lowest id (the one subquery
    `loyalty.sql.default_program_id` that the earning lock and the member's summary read too)."""
    return sql.default_program(getattr(tenant, "pk", tenant))


def account_for(*, member: Member, program: Program | None = None) -> Account:
    """The member's account in `program` (default: the tenant's program), created on first use.

    Not durable on purpose: it is a get-or-create resting on the unique (member, program) constraint, safe
    inside a caller's transaction and on its own.
    """
    if program is None:
        program = default_program(member.tenant_id)
        if program is None:
            raise ApplicationError("program_not_found", "This tenant has no active loyalty program.", status=404)
    if program.tenant_id != member.tenant_id:
        raise ApplicationError("program_not_found", "The program belongs to another tenant.", status=404)
    account = Account.objects.filter(member=member, program=program).first()
    if account:
        return account
    try:
        with transaction.atomic():
            return Account.objects.create(tenant_id=member.tenant_id, member=member, program=program)
    except IntegrityError:
        return Account.objects.get(member=member, program=program)


def account_locked_for(*, member: Member, program: Program) -> Account:
    """The member's account in `program`, created if needed, locked (one query when it exists)."""
    account = (
        Account.objects.select_related("tenant", "program", "member")
        .select_for_update(of=("self",))
        .filter(member=member, program=program)
        .first()
    )
    if account is None:
        account = _account_create_locked(member=member, program=program)
    return account


def _account_create_locked(*, member: Member, program: Program) -> Account:
    """Create the account (a savepoint: a concurrent creator wins the unique constraint) and lock it."""
    if program.tenant_id != member.tenant_id:
        raise ApplicationError("program_not_found", "The program belongs to another tenant.", status=404)
    try:
        with transaction.atomic():
            created = Account.objects.create(tenant_id=member.tenant_id, member=member, program=program)
    except IntegrityError:
        created = Account.objects.get(member=member, program=program)
    return account_lock(created.pk)


def default_account_locked(*, member: Member) -> Account | None:
    """The member's account in the tenant's default program, locked (one query when it exists), created on
    first use; None when the tenant has no active program."""
    account = default_account_lock(member)
    if account is not None:
        return account
    program = default_program(member.tenant_id)
    return _account_create_locked(member=member, program=program) if program is not None else None


def expiry_policy_for(account: Account, tier=None) -> dict:
    """The policy for points earned now: the member's tier override, else the program's."""
    if tier is None:
        status = MemberTier.objects.filter(member_id=account.member_id, program_id=account.program_id).select_related(
            "tier"
        )
        status = status.first()
        tier = status.tier if status else None
    if tier is not None and tier.expiry_policy:
        return stored_policy(tier.expiry_policy)
    return stored_policy(account.program.expiry_policy)
