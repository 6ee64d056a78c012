"""Programs, tiers, tier status and earning rules."""

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from loyalty.rules import RuleError, check_rule
from members.models import Member, TenantOwned

__all__ = ["Program", "Tier", "MemberTier", "TierChange", "EarningRule", "EarningCapUsage"]


class Program(TenantOwned):
    """A loyalty program of one tenant; declared as one document (`PUT /api/v1/programs/{code}`)."""

    code = models.SlugField(max_length=50)
    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3)
    points_name = models.CharField(max_length=50, default="points")
    expiry_policy = models.JSONField(default=dict, blank=True, help_text=_('e.g. {"policy": "days", "days": 365}'))
    # The rate at which points pay: `points_value_points` points = `points_value_amount` in the currency.
    points_value_points = models.PositiveIntegerField(default=100, validators=[MinValueValidator(1)])
    points_value_amount = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("1.00"))
    qualification_window_months = models.PositiveIntegerField(
        default=12, help_text=_("Tier thresholds count points earned in this many rolling months.")
    )
    expiry_warning_days = models.PositiveIntegerField(
        default=14, help_text=_("Members are reminded this many days before their points expire.")
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="program_code_unique_per_tenant")]
        ordering = ["tenant", "code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Tier(TenantOwned):
    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="tiers")
    code = models.SlugField(max_length=50)
    name = models.CharField(max_length=100)
    rank = models.PositiveIntegerField(default=0, help_text=_("Higher is better; derived from the threshold order."))
    threshold = models.PositiveIntegerField(default=0, help_text=_("Points earned in the qualification window."))
    multiplier = models.DecimalField(max_digits=6, decimal_places=3, default=Decimal("1.000"))
    expiry_policy = models.JSONField(
        null=True, blank=True, help_text=_("Overrides the program's expiry policy for points earned in this tier.")
    )
    benefits = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="tier_code_unique_per_program"),
            models.CheckConstraint(condition=models.Q(multiplier__gte=0), name="tier_multiplier_not_negative"),
        ]
        ordering = ["program", "threshold", "rank"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class MemberTier(TenantOwned):
    """A member's current tier in a program (one row per member and program); changes go to TierChange."""

    # No single-column index on the member: the unique (member, program) leads with it.
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="tier_statuses", db_index=False)
    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="member_tiers")
    tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    qualifying_points = models.IntegerField(default=0)
    changed_at = models.DateTimeField(default=timezone.now)
    evaluated_at = models.DateTimeField(default=timezone.now)
    protected_until = models.DateTimeField(
        null=True, blank=True, help_text=_("Set by support with a manual tier: no downgrade before this time.")
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "program"], name="member_tier_unique")]
        permissions = [("assign_tier", "Can set a member's tier by hand")]

    def __str__(self) -> str:
        return f"{self.member_id} in {self.program_id}: {self.tier_id}"


class TierChange(TenantOwned):
    """The history of tier moves (append-only)."""

    # No single-column index on the member: (member, created_at) leads with it.
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="tier_changes", db_index=False)
    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    from_tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    to_tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    qualifying_points = models.IntegerField(default=0)
    reason = models.CharField(max_length=100)
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["member", "created_at"])]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.from_tier_id} -> {self.to_tier_id}"


class EarningRule(TenantOwned):
    """How points are earned on a paid order or a custom event.

    Points are `points` (fixed) plus `points_per_unit` per `unit_amount` of money spent (on the items of
    `categories` when set, else on the whole order), times the tier multiplier (when `apply_tier_multiplier`)
    and the best matching happy hour, rounded once at the end with `rounding` (default: down, so a member
    never gets a point for money not spent). Caps hold per member per period in the tenant's time zone.
    """

    class Trigger(models.TextChoices):
        ORDER_PAID = "order_paid", _("Order paid")
        EVENT = "event", _("Custom event")

    class Rounding(models.TextChoices):
        DOWN = "down", _("Down")
        HALF_UP = "half_up", _("Half up")
        UP = "up", _("Up")

    class CapPeriod(models.TextChoices):
        DAY = "day", _("Day")
        WEEK = "week", _("Week")
        MONTH = "month", _("Month")
        YEAR = "year", _("Year")
        LIFETIME = "lifetime", _("Lifetime")

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="earning_rules")
    code = models.SlugField(max_length=50)
    name = models.CharField(max_length=200, blank=True)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.ORDER_PAID)
    event_name = models.CharField(max_length=100, blank=True)
    points = models.PositiveIntegerField(default=0, help_text=_("Fixed points per match."))
    points_per_unit = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal("0"))
    unit_amount = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("1.00"))
    rounding = models.CharField(max_length=10, choices=Rounding.choices, default=Rounding.DOWN)
    categories = models.JSONField(default=list, blank=True, help_text=_("Only items of these categories count."))
    rule = models.TextField(blank=True, help_text=_("A condition in the rule language; empty means always."))
    apply_tier_multiplier = models.BooleanField(default=True)
    tier_multipliers = models.JSONField(
        default=dict, blank=True, help_text=_('Per-tier override of the multiplier, e.g. {"gold": "3"}.')
    )
    happy_hours = models.JSONField(
        default=list,
        blank=True,
        help_text=_('[{"weekdays": [5, 6], "from": "17:00", "to": "20:00", "multiplier": "2"}]'),
    )
    cap_points = models.PositiveIntegerField(null=True, blank=True)
    cap_period = models.CharField(max_length=10, choices=CapPeriod.choices, blank=True)
    pending_days = models.PositiveIntegerField(default=0)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    priority = models.IntegerField(default=0)
    active = models.BooleanField(default=True)

    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="earning_rule_code_unique_per_program"),
            models.CheckConstraint(condition=models.Q(unit_amount__gt=0), name="earning_rule_unit_amount_positive"),
        ]
        ordering = ["program", "priority", "code"]

    def __str__(self) -> str:
        return self.name or self.code

    def clean(self):

        try:
            check_rule(self.rule)
        except RuleError as exc:
            raise ValidationError({"rule": exc.message}) from exc
        if self.trigger == self.Trigger.EVENT and not self.event_name:
            raise ValidationError({"event_name": _("An event rule needs the event's name.")})
        if (self.cap_points is None) != (not self.cap_period):
            raise ValidationError({"cap_period": _("A cap needs both points and a period.")})


class EarningCapUsage(TenantOwned):
    """Points a member got from one rule in one cap period; updated under the account lock with F()."""

    # No single-column index on the rule: the unique (rule, member, period_start) leads with it.
    rule = models.ForeignKey(EarningRule, on_delete=models.CASCADE, related_name="cap_usages", db_index=False)
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    period_start = models.DateField()
    points = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rule", "member", "period_start"], name="earning_cap_usage_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id}/{self.member_id}/{self.period_start}: {self.points}"
