"""Batch jobs of the ledger: expiry, pending release, expiry warnings, reconciliation.

Set-based SQL in bounded batches, each its own durable transaction, safe to re-run after a crash and to run
twice at once: each batch takes its job's advisory lock first (`common.job_locks`), so a second, overlapping
run stops at once as "skipped" instead of redoing (or tripping over) the first run's batch; accounts are
locked in primary-key order too, against the API's writes. Invariants checked by `ledger_reconcile` and the
property test: balance == sum(entry points) == sum(lot remaining) >= 0, and no lot below zero.
"""

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import F, IntegerField, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import formats, timezone, translation
from django.utils.translation import gettext, ngettext

from common.events import publish
from common.job_locks import job_lock_take
from common.l10n import points as points_text
from common.side_effects import after_commit
from loyalty import sql as loyalty_sql
from loyalty.expiry import MAX_WARNING_DAYS
from loyalty.ledger.accounts import expiry_policy_for
from loyalty.ledger.posting import Kind, credit_entry, earned_payload
from loyalty.lock_objects import accounts_lock
from loyalty.models import (
    Account,
    ExpiryWarning,
    LedgerEntry,
    MemberTier,
    PendingPoints,
    PointLot,
    Program,
)
from members.models import Member, Tenant

logger = logging.getLogger(__name__)


@dataclass
class ExpiryRunResult:
    skipped: bool = False  # another run held the job's lock: this one did nothing
    batches: int = 0
    accounts: int = 0
    lots: int = 0
    points: int = 0
    entry_ids: list[int] = field(default_factory=list)


@dataclass
class _BatchAccount:
    pk: int
    tenant_id: int
    balance: int
    member_external_id: str
    program_code: str


def points_expire_due(
    *, now: dt.datetime | None = None, batch_lots: int = 20000, batch_accounts: int = 2000
) -> ExpiryRunResult:
    """Expire every lot past its time, in set-based batches (one durable transaction each).

    Each batch: pick up to `batch_accounts` accounts with due lots (from a sample of `batch_lots` due lots, read
    through the partial index on live lots' expiry), lock them in id order, then in bulk statements write one
    `expire` entry per account (for all its due lots), record the lot consumptions, zero the lots and
    lower the cached balances. A crash loses at most the uncommitted batch, and a re-run finds only lots
    still unexpired: nothing is expired twice.
    """
    now = now or timezone.now()
    result = ExpiryRunResult()
    while True:
        with transaction.atomic(durable=True):
            if not job_lock_take("points_expire_due"):
                result.skipped = result.batches == 0  # else the other run took over between two batches
                break
            sample = PointLot.objects.filter(remaining__gt=0, expires_at__lte=now).values_list("account_id", flat=True)
            account_ids = sorted(set(sample[:batch_lots]))[:batch_accounts]
            if not account_ids:
                break
            # Locked in id order; read as plain rows (no model instances: this is the batch's hot spot).
            rows = (
                Account.objects.filter(pk__in=account_ids)
                .order_by("pk")
                .select_for_update(of=("self",))
                .values_list("pk", "tenant_id", "balance", "member__external_id", "program__code")
            )
            accounts = {
                pk: _BatchAccount(pk, tenant_id, balance, ext, code) for pk, tenant_id, balance, ext, code in rows
            }
            tenants = Tenant.objects.in_bulk({a.tenant_id for a in accounts.values()})
            ids = list(accounts)
            due = (
                PointLot.objects.filter(account_id__in=ids, remaining__gt=0, expires_at__lte=now)
                .values("account_id")
                .annotate(pts=Sum("remaining"))
                .values_list("account_id", "pts")
            )
            expired = dict(due)
            # The accounts are locked, so their balances are current: each loses the sum of its due lots.
            # Only the accounts that still have due lots under the lock: one sampled before the lock may have
            # had its lots spent meanwhile (its sum would be NULL).
            changed = []
            for account_id, pts in expired.items():
                accounts[account_id].balance -= pts
                changed.append(accounts[account_id])
            ids = sorted(expired)
            if not ids:
                continue
            loyalty_sql.expire_balances(ids, now)
            entries = LedgerEntry.objects.bulk_create(
                [
                    LedgerEntry(
                        tenant_id=account.tenant_id,
                        account_id=account.pk,
                        kind=Kind.EXPIRE,
                        points=-int(expired[account.pk]),
                        balance_after=account.balance,
                        reason="expired",
                        created_at=now,
                    )
                    for account in changed
                ],
                batch_size=5000,
            )
            entry_ids = [e.pk for e in entries]
            result.lots += loyalty_sql.expire_lots(ids, entry_ids, now)
            for entry in entries:
                account = accounts[entry.account_id]
                publish(
                    tenants[account.tenant_id],
                    "points.expired",
                    {
                        "member": account.member_external_id,
                        "program": account.program_code,
                        "points": -entry.points,
                        "balance": entry.balance_after,
                        "entry_id": entry.pk,
                        "expired_at": entry.created_at.isoformat(),
                    },
                )
            result.batches += 1
            result.accounts += len(entries)
            result.points += sum(-e.points for e in entries)
            if len(result.entry_ids) < 10000:
                result.entry_ids.extend(entry_ids[: 10000 - len(result.entry_ids)])
    return result


@dataclass
class ReleaseResult:
    skipped: bool = False  # another run held the job's lock: this one did nothing
    released: int = 0
    points: int = 0


def pending_release_due(*, now: dt.datetime | None = None, batch_size: int = 500) -> ReleaseResult:
    """Make pending points whose hold is over spendable (an `earn` entry and a lot each), in batches."""
    now = now or timezone.now()
    result = ReleaseResult()
    batches = 0
    while True:
        with transaction.atomic(durable=True):
            if not job_lock_take("pending_release_due"):
                result.skipped = batches == 0
                break
            batches += 1
            due = PendingPoints.objects.filter(status=PendingPoints.Status.PENDING, release_at__lte=now)
            account_ids = sorted(set(due.values_list("account_id", flat=True)[:batch_size]))
            if not account_ids:
                break
            accounts = {a.pk: a for a in accounts_lock(account_ids)}
            # Re-read under the locks: a return may have cancelled some meanwhile.
            rows = list(due.filter(account_id__in=account_ids).order_by("account_id", "pk"))
            tiers = {
                (s.member_id, s.program_id): s.tier
                for s in MemberTier.objects.filter(
                    member_id__in=[a.member_id for a in accounts.values()]
                ).select_related("tier")
            }
            for pending in rows:
                account = accounts[pending.account_id]
                points = pending.open_points
                pending.status = PendingPoints.Status.RELEASED
                if points > 0:
                    Account.objects.filter(pk=account.pk).update(pending=F("pending") - points)
                    account.pending -= points
                    policy = expiry_policy_for(account, tier=tiers.get((account.member_id, account.program_id)))
                    pending.released_entry = credit_entry(
                        account,
                        points=points,
                        kind=Kind.EARN,
                        reason=pending.reason,
                        now=now,
                        policy=policy,
                        order_id=pending.order_id,
                        rule_code=pending.rule_code,
                    )
                    publish(account.tenant, "points.earned", earned_payload(account, pending.released_entry))
                    result.points += points
                pending.save(update_fields=["status", "released_entry"])
                result.released += 1
    return result


def _send_expiry_email(member_id: int, subject: str, body: str, language: str = "en") -> None:
    # Consent is read now, when sending (after commit), not when the warning was written.
    to = Member.objects.filter(pk=member_id, email_consent=True).exclude(email="").values_list("email", flat=True)
    to = to.first()
    if to is None:
        return
    try:
        EmailMessage(subject, body, None, [to], headers={"Content-Language": language}).send()
    except Exception:  # an unreachable mail server must not undo the warning; it is logged
        logger.exception("expiry warning email to %s failed", to)


def expiry_email_text(warning: ExpiryWarning, member: Member, program) -> tuple[str, str, str]:
    """(subject, body, language) of a warning, in the member's language (their tenant's locale).

    Points and the date are written that language's way ("1.234 Punkte ... am 1. Dezember 2026"); the date is
    the tenant's. What points are called is the program's own word, not translated.
    """
    language = warning.tenant.language
    with translation.override(language):
        values = {
            "points": points_text(warning.points),
            "points_name": program.points_name,
            "program": program.name,
            "date": formats.date_format(warning.expires_at.astimezone(warning.tenant.tz), "DATE_FORMAT"),
        }
        subject = (
            ngettext(
                "%(points)s %(points_name)s expires soon", "%(points)s %(points_name)s expire soon", warning.points
            )
            % values
        )
        body = (
            ngettext(
                "%(points)s %(points_name)s of %(program)s expires on %(date)s.",
                "%(points)s %(points_name)s of %(program)s expire on %(date)s.",
                warning.points,
            )
            % values
        )
        greeting = gettext("Hello %(name)s,") % {"name": member.name or member.external_id}
    return subject, f"{greeting}\n\n{body}\n", language


def expiry_warnings_send(*, now: dt.datetime | None = None) -> int:
    """Queue one reminder per account and expiry time for points expiring within each program's warning days.

    The unique (account, expires_at) row written with ON CONFLICT DO NOTHING makes it once per lot window,
    whatever the number of runs. Emits `points.expiring_soon` and sends an email after commit. A run that
    overlaps another (the job's advisory lock is taken) does nothing and returns 0.
    """
    now = now or timezone.now()
    sent = 0
    with transaction.atomic(durable=True):
        if not job_lock_take("expiry_warnings_send"):
            logger.info("expiry warnings: another run is in progress, skipped")
            return 0
        ids: list[int] = []
        for program_id, days in Program.objects.filter(active=True).values_list("pk", "expiry_warning_days"):
            horizon = now + dt.timedelta(days=min(days, MAX_WARNING_DAYS))
            ids.extend(loyalty_sql.expiry_warnings_insert(program_id, now, horizon))
        for warning in ExpiryWarning.objects.filter(pk__in=ids).select_related(
            "tenant", "account__member", "account__program"
        ):
            member, program = warning.account.member, warning.account.program
            publish(
                warning.tenant,
                "points.expiring_soon",
                {
                    "member": member.external_id,
                    "program": program.code,
                    "points": warning.points,
                    "expires_at": warning.expires_at.isoformat(),
                },
            )
            if member.email and member.email_consent:
                subject, body, language = expiry_email_text(warning, member, program)
                after_commit(_send_expiry_email, member.pk, subject, body, language)
            sent += 1
    return sent


def ledger_reconcile(*, tenant=None) -> list[dict]:
    """Accounts whose cached balance differs from the sum of their entries or of their lots (should be none)."""
    accounts = Account.objects.all() if tenant is None else Account.objects.for_tenant(tenant)
    entries_sum = (
        LedgerEntry.objects.filter(account=OuterRef("pk")).values("account").annotate(s=Sum("points")).values("s")
    )
    lots_sum = (
        PointLot.objects.filter(account=OuterRef("pk")).values("account").annotate(s=Sum("remaining")).values("s")
    )
    rows = (
        accounts.annotate(
            entries_total=Coalesce(Subquery(entries_sum, output_field=IntegerField()), 0),
            lots_total=Coalesce(Subquery(lots_sum, output_field=IntegerField()), 0),
        )
        .filter(~Q(balance=F("entries_total")) | ~Q(balance=F("lots_total")))
        .values("pk", "tenant_id", "member_id", "balance", "entries_total", "lots_total")
    )
    mismatches = [dict(row) for row in rows]
    for row in mismatches:
        logger.error("ledger mismatch: %s", row)
    return mismatches
