"""Points ledger models: accounts, append-only entries, lots.

- `Account`: one per member and program, with a cached `balance` (spendable points), `pending` (held points),
  `lifetime_earned` and `debt`. The cached figures change only in `loyalty.ledger.posting`, under the account's
  row lock, with F() expressions; `ledger_reconcile` checks balance == sum of entries.
- `LedgerEntry`: append-only (never updated or deleted; the queryset refuses it, and on PostgreSQL a trigger
  refuses it for any SQL, see migration loyalty 0006 which also guards the consumptions and what a lot is).
  Signed points, balance after.
- `PointLot`: what an earn (or positive adjust, or incoming transfer) added, with its expiry and what is left of it.
  Spending consumes the oldest lots first (FIFO by earning time); `LotConsumption` records which entry took how
  much from which lot, so a spend can be reversed into exactly the lots it came from.
- `PendingPoints`: points held for N days (the return window); not spendable, released by a task, cancelled
  (not reversed) when the order is returned while they are pending.
- `ExpiryWarning`: one row per account and expiry time, so a reminder goes out once per lot window.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.models import Member, Tenant, TenantOwned, TenantQuerySet

__all__ = ["Account", "LedgerEntry", "PointLot", "LotConsumption", "PendingPoints", "ExpiryWarning"]


class Account(TenantOwned):
    # No single-column index on the member: the unique (member, program) leads with it.
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="point_accounts", db_index=False)
    program = models.ForeignKey("loyalty.Program", on_delete=models.PROTECT, related_name="accounts")
    balance = models.IntegerField(default=0)
    pending = models.IntegerField(default=0)
    lifetime_earned = models.IntegerField(default=0)
    debt = models.IntegerField(default=0, help_text=_("Points owed after a return of points already spent."))
    last_activity_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "rewards_account"  # the table kept its name when the model moved here
        constraints = [
            models.UniqueConstraint(fields=["member", "program"], name="account_unique_per_member_program"),
            models.CheckConstraint(condition=models.Q(balance__gte=0), name="account_balance_not_negative"),
            models.CheckConstraint(condition=models.Q(pending__gte=0), name="account_pending_not_negative"),
            models.CheckConstraint(condition=models.Q(debt__gte=0), name="account_debt_not_negative"),
        ]
        permissions = [("adjust_points", "Can adjust points")]

    def __str__(self) -> str:
        return f"account {self.pk} of member {self.member_id}"


class AppendOnlyQuerySet(TenantQuerySet):
    def update(self, **kwargs):
        raise TypeError("Ledger entries are append-only: post a correcting entry instead.")

    def delete(self):
        raise TypeError("Ledger entries are append-only: post a correcting entry instead.")


class LedgerEntry(TenantOwned):
    class Kind(models.TextChoices):
        EARN = "earn", _("Earn")
        REDEEM = "redeem", _("Redeem")
        EXPIRE = "expire", _("Expire")
        ADJUST = "adjust", _("Adjust")
        REVERSE = "reverse", _("Reverse")
        TRANSFER = "transfer", _("Transfer")

    # Append-only, written by every earning and spending. The tenant is always the account's (every writer
    # copies `account.tenant_id`) and the account foreign key is enforced; a tenant is never deleted
    # (on_delete=PROTECT still refuses an ORM delete): no database check for it, which only share-locked the
    # tenant row once more per entry. No single-column index on tenant or account: ledger_entry_order and the
    # account indexes below lead with them.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries", db_index=False)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    points = models.IntegerField()
    balance_after = models.IntegerField()
    reason = models.CharField(max_length=300)
    order_id = models.CharField(max_length=100, blank=True)
    # The campaign is referenced by id, not by a foreign key: the ledger sits below `campaigns` (one-way order).
    campaign_id = models.BigIntegerField(null=True, blank=True)
    rule_code = models.CharField(max_length=50, blank=True)
    # Empty but for staff adjustments: a partial index (below) serves the one lookup by it (the PROTECT check
    # when a user is deleted) without an entry for every earning.
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # No full index: the partial unique ledger_entry_reversed_once (reverses, where set) serves every lookup
    # by it (`reverses=entry`, the reversals of an entry); a full one held an entry for every earning.
    reverses = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversals", db_index=False
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        db_table = "rewards_ledgerentry"  # the table kept its name when the model moved here
        verbose_name_plural = "ledger entries"
        constraints = [
            models.CheckConstraint(condition=~models.Q(points=0), name="ledger_entry_points_not_zero"),
            models.CheckConstraint(condition=models.Q(balance_after__gte=0), name="ledger_entry_balance_not_negative"),
            models.UniqueConstraint(
                fields=["account", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="ledger_entry_idempotency_key_unique",
            ),
            # A spend is reversed at most once.
            models.UniqueConstraint(
                fields=["reverses"], condition=models.Q(reverses__isnull=False), name="ledger_entry_reversed_once"
            ),
        ]
        indexes = [
            models.Index(fields=["account", "-created_at", "-id"], name="ledger_entry_account_recent"),
            models.Index(fields=["account", "kind", "created_at"], name="ledger_entry_account_kind"),
            models.Index(fields=["tenant", "order_id"], name="ledger_entry_order"),
            models.Index(
                fields=["staff_user"], condition=models.Q(staff_user__isnull=False), name="ledger_entry_staff"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.points:+d} (account {self.account_id})"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise TypeError("Ledger entries are append-only: post a correcting entry instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Ledger entries are append-only: post a correcting entry instead.")


class PointLot(TenantOwned):
    # Lots are rewritten in bulk by the expiry job; every index costs there, so only the ones queries use exist:
    # no single-column index on tenant (lots are always reached through their account) or on entry.
    # No database foreign key check for the tenant: it is always the account's (the earning copies
    # `account.tenant_id` in the same statement), the account foreign key is enforced, and a tenant is never
    # deleted (on_delete=PROTECT still refuses an ORM delete).
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="lots")
    # The entry that credited it; an incoming transfer creates one lot per expiry of the points it moved.
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, related_name="lots", db_index=False)
    points = models.IntegerField()
    remaining = models.IntegerField()
    earned_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    # Under an `inactivity` policy every earning or spending pushes the expiry of all live lots forward.
    inactivity = models.BooleanField(default=False)
    order_id = models.CharField(max_length=100, blank=True)

    class Meta:
        db_table = "rewards_pointlot"  # the table kept its name when the model moved here
        constraints = [
            models.CheckConstraint(condition=models.Q(points__gt=0), name="lot_points_positive"),
            models.CheckConstraint(condition=models.Q(remaining__gte=0), name="lot_remaining_not_negative"),
            models.CheckConstraint(condition=models.Q(remaining__lte=models.F("points")), name="lot_remaining_le"),
        ]
        indexes = [
            models.Index(fields=["expires_at"], condition=models.Q(remaining__gt=0), name="lot_live_expiry"),
            models.Index(fields=["account", "earned_at", "id"], condition=models.Q(remaining__gt=0), name="lot_fifo"),
        ]

    def __str__(self) -> str:
        return f"lot {self.pk}: {self.remaining}/{self.points}"


class LotConsumption(models.Model):
    """`points` taken from `lot` by `entry` (negative when a reversal puts points back)."""

    lot = models.ForeignKey(PointLot, on_delete=models.PROTECT, related_name="consumptions")
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, related_name="consumptions")
    points = models.IntegerField()

    class Meta:
        db_table = "rewards_lotconsumption"  # the table kept its name when the model moved here
        constraints = [models.CheckConstraint(condition=~models.Q(points=0), name="lot_consumption_not_zero")]

    def __str__(self) -> str:
        return f"{self.points} of lot {self.lot_id} by entry {self.entry_id}"


class PendingPoints(TenantOwned):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RELEASED = "released", _("Released")
        CANCELLED = "cancelled", _("Cancelled")

    # The tenant is always the account's (`loyalty.ledger.posting` copies `account.tenant_id`), whose foreign
    # key is enforced, and a tenant is never deleted (on_delete=PROTECT still refuses an ORM delete): no
    # database check. No single-column index on it: pending_order (tenant, order_id) leads with it.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="pending_points")
    points = models.IntegerField()
    cancelled_points = models.IntegerField(default=0)
    reason = models.CharField(max_length=300)
    order_id = models.CharField(max_length=100, blank=True)
    rule_code = models.CharField(max_length=50, blank=True)
    earned_at = models.DateTimeField(default=timezone.now)
    release_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    released_entry = models.OneToOneField(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="released_from"
    )

    class Meta:
        db_table = "rewards_pendingpoints"  # the table kept its name when the model moved here
        verbose_name_plural = "pending points"
        constraints = [
            models.CheckConstraint(condition=models.Q(points__gt=0), name="pending_points_positive"),
            models.CheckConstraint(
                condition=models.Q(cancelled_points__gte=0, cancelled_points__lte=models.F("points")),
                name="pending_cancelled_within",
            ),
        ]
        indexes = [
            models.Index(fields=["release_at"], condition=models.Q(status="pending"), name="pending_due"),
            models.Index(fields=["tenant", "order_id"], name="pending_order"),
        ]

    def __str__(self) -> str:
        return f"{self.points} pending until {self.release_at:%Y-%m-%d} ({self.status})"

    @property
    def open_points(self) -> int:
        return self.points - self.cancelled_points


class ExpiryWarning(TenantOwned):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="expiry_warnings")
    expires_at = models.DateTimeField()
    points = models.IntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "rewards_expirywarning"  # the table kept its name when the model moved here
        constraints = [
            models.UniqueConstraint(fields=["account", "expires_at"], name="expiry_warning_once_per_window"),
        ]

    def __str__(self) -> str:
        return f"{self.points} expiring {self.expires_at:%Y-%m-%d} (account {self.account_id})"
