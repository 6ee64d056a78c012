"""Redemptions, rollbacks, gift card transactions, the reward catalog, purchases and referral grants.

Gift card balances live on the code row (`campaigns.Code.balance`, with a non-negative constraint), because
the redemption already locks that row; `GiftCardTransaction` is the balance's append-only history.
Ledger entries are referenced by id (`*_entry_id`): the ledger is its own history and these rows only point
at the entry a redemption or purchase posted.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from campaigns.models import Campaign, Code
from members.models import Member, Tenant, TenantOwned

__all__ = [
    "Redemption",
    "RedemptionCode",
    "RedemptionRollback",
    "GiftCardTransaction",
    "Reward",
    "RewardPurchase",
    "ReferralGrant",
]


class Redemption(TenantOwned):
    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", _("Succeeded")
        ROLLED_BACK = "rolled_back", _("Rolled back")

    # Written on every redemption, so no index that another one covers: (tenant, order_id) serves the tenant's
    # lookups and (member, created_at) the member's. Both foreign keys stay enforced: this row is the root the
    # lines, the trace and the event copy their tenant and member from.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.PROTECT, related_name="redemptions", db_index=False
    )
    order_id = models.CharField(max_length=100)
    order = models.JSONField(default=dict, help_text=_("The order as sent (amount, items, location)."))
    order_amount = models.DecimalField(max_digits=14, decimal_places=2)
    discount = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    gift_cards = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    points_used = models.PositiveIntegerField(default=0)
    points_value = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    points_entry_id = models.BigIntegerField(null=True, blank=True, help_text=_("The ledger entry of the spend."))
    total = models.DecimalField(max_digits=14, decimal_places=2)
    channel = models.CharField(max_length=50, blank=True)
    integration_id = models.BigIntegerField(null=True, blank=True)
    integration_name = models.CharField(max_length=200, blank=True)
    # Empty on every API redemption: the partial index below (not a full one, which would hold an entry per
    # row) serves the one lookup by it, the PROTECT check when a user is deleted.
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        help_text=_("The support agent who applied it after the fact."),
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.SUCCEEDED)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        permissions = [
            ("rollback_redemption", "Can roll back a redemption"),
            ("apply_redemption", "Can apply a redemption to a member after the fact"),
        ]
        indexes = [
            models.Index(fields=["tenant", "order_id"]),
            models.Index(fields=["member", "created_at"]),
            models.Index(fields=["staff_user"], condition=Q(staff_user__isnull=False), name="redemption_staff_user"),
        ]

    def __str__(self) -> str:
        return f"redemption {self.pk} of order {self.order_id}"


class RedemptionCode(TenantOwned):
    """One code (or automatic promotion) applied by a redemption, with its discount."""

    class Kind(models.TextChoices):
        CODE = "code", _("Code")
        PROMOTION = "promotion", _("Promotion")
        GIFT_CARD = "gift_card", _("Gift card")

    # Append-only and written per applied code, so each database foreign key check (a trigger and a
    # FOR KEY SHARE lock on the parent row) and each index counts. `tenant` and `member` are always copies of
    # the redemption's (the same INSERT writes both, `rewards.services.redemption.redeem`), whose foreign keys
    # are enforced, and neither a tenant nor a member is ever deleted (erasure anonymises the member; an ORM
    # delete is still refused by on_delete=PROTECT, which Django applies itself): no database check for them.
    # `redemption`, `campaign` and `code` are the line's own parents and stay enforced.
    # Indexes: none on tenant (no query reads lines by tenant alone; the member's history goes through
    # (member, created_at)), and none single-column on member or campaign, which the composite indexes lead.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    redemption = models.ForeignKey(Redemption, on_delete=models.CASCADE, related_name="lines")
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="redemption_lines", db_index=False)
    code = models.ForeignKey(Code, null=True, blank=True, on_delete=models.PROTECT, related_name="redemption_lines")
    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CODE)
    discount = models.DecimalField(max_digits=14, decimal_places=2)
    order_amount = models.DecimalField(max_digits=14, decimal_places=2)
    usage_keys = models.JSONField(default=list, blank=True, help_text=_("Counters this line took (for rollback)."))
    rolled_back = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["member", "created_at"], name="redemption_line_member"),
            models.Index(fields=["campaign", "created_at"], name="redemption_line_campaign"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.code_id or self.campaign_id}: {self.discount}"


class RedemptionRollback(TenantOwned):
    """Exactly one per rolled-back redemption (the one-to-one is the backstop against a double rollback)."""

    redemption = models.OneToOneField(Redemption, on_delete=models.PROTECT, related_name="rollback")
    reason = models.CharField(max_length=300, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    points_entry_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"rollback of {self.redemption_id}"


class GiftCardTransaction(TenantOwned):
    """Append-only history of a gift card's balance: the issue, each debit, each credit back."""

    class Kind(models.TextChoices):
        ISSUE = "issue", _("Issue")
        DEBIT = "debit", _("Debit")
        CREDIT = "credit", _("Credit")
        ROLLBACK = "rollback", _("Rollback")

    # No single-column index on the code: (code, created_at) leads with it.
    code = models.ForeignKey(Code, on_delete=models.PROTECT, related_name="gift_card_transactions", db_index=False)
    redemption = models.ForeignKey(Redemption, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    amount = models.DecimalField(max_digits=12, decimal_places=2, help_text=_("Signed: a debit is negative."))
    balance_after = models.DecimalField(max_digits=12, decimal_places=2)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="gift_card_tx_balance_non_negative"),
            models.CheckConstraint(condition=~Q(amount=0), name="gift_card_tx_amount_not_zero"),
        ]
        indexes = [models.Index(fields=["code", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} on {self.code_id}"


class Reward(TenantOwned):
    """A catalog reward bought with points."""

    class Type(models.TextChoices):
        COUPON = "coupon", _("Coupon (a code of a loyalty reward campaign)")
        GIFT_CARD_CREDIT = "gift_card_credit", _("Gift card credit")
        PRODUCT = "product", _("Product")
        CASHBACK = "cashback", _("Cashback")

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    type = models.CharField(max_length=20, choices=Type.choices)
    points_cost = models.PositiveIntegerField()
    campaign = models.ForeignKey(
        Campaign,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="rewards",
        help_text=_(
            "Coupon: the loyalty reward campaign whose codes are issued; gift card credit: the gift card campaign."
        ),
    )
    value = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text=_("Gift card credit or cashback amount.")
    )
    sku = models.CharField(max_length=100, blank=True)
    stock = models.PositiveIntegerField(null=True, blank=True, help_text=_("Empty means unlimited."))
    tier_codes = models.JSONField(default=list, blank=True, help_text=_("Only members of these tiers (empty: all)."))
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    history = HistoricalRecords()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(points_cost__gt=0), name="reward_points_cost_positive")]

    def __str__(self) -> str:
        return self.name


class RewardPurchase(TenantOwned):
    """A reward bought with points: the spend entry and what was issued (a code, a credit, a fulfilment)."""

    class Fulfilment(models.TextChoices):
        ISSUED = "issued", _("Issued")
        PENDING = "pending", _("Pending fulfilment")
        SHIPPED = "shipped", _("Shipped")
        CANCELLED = "cancelled", _("Cancelled")

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="reward_purchases")
    reward = models.ForeignKey(Reward, on_delete=models.PROTECT, related_name="purchases")
    points = models.PositiveIntegerField()
    points_entry_id = models.BigIntegerField(null=True, blank=True)
    code = models.ForeignKey(Code, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    status = models.CharField(max_length=10, choices=Fulfilment.choices, default=Fulfilment.ISSUED)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.reward_id} for {self.member_id}"


class ReferralGrant(TenantOwned):
    """The referrer's reward for one referred member's first qualifying order: once per referred member."""

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="referral_grants")
    referrer = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="referral_grants")
    referred = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="+")
    order_id = models.CharField(max_length=100)
    points = models.PositiveIntegerField(default=0)
    points_entry_id = models.BigIntegerField(null=True, blank=True)
    code = models.ForeignKey(Code, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "referred"], name="referral_grant_once_per_referred"),
        ]

    def __str__(self) -> str:
        return f"{self.referrer_id} for referring {self.referred_id}"
