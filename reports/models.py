"""The reports' own tables: the daily rollups, one row per tenant, day (in the tenant's time zone) and dimension,
and the right to see the audit page.

Written only by `reports.rollups` (set-based INSERT ... SELECT ... ON CONFLICT DO UPDATE). Each source table has
a `RollupWatermark`: the rollups hold exactly the source rows with an id up to it, so a report adds the raw rows
above it (the tail) and every figure stays equal to the raw sum. The rollups keep only dimensions a row carries
for good (an order's location, a redemption's integration): the member's tier or segment change after the fact,
so those filters are served from raw rows, or from the per-member rollups and facts, whose member id they narrow
(see `reports.selectors`).
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from members.models import Tenant


class RollupWatermark(models.Model):
    """The highest source row id folded into the rollups, per source table (all tenants at once)."""

    source = models.CharField(max_length=40, unique=True)
    last_id = models.BigIntegerField(default=0)
    folded_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.source} up to {self.last_id}"


class DailyOrders(models.Model):
    """Orders by the day of their `occurred_at` (late orders land in their own day), returns by the day recorded."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    location = models.CharField(max_length=100, blank=True)
    orders = models.IntegerField(default=0)
    value = models.DecimalField(max_digits=16, decimal_places=2, default=Decimal("0.00"))
    returned = models.DecimalField(max_digits=16, decimal_places=2, default=Decimal("0.00"))
    # From `OrderDiscount`: the discount of the day's orders, and how many of them (and their value) had one.
    discount = models.DecimalField(max_digits=16, decimal_places=2, default=Decimal("0.00"), db_default=Decimal("0.00"))
    discounted_orders = models.IntegerField(default=0, db_default=0)
    discounted_value = models.DecimalField(
        max_digits=16, decimal_places=2, default=Decimal("0.00"), db_default=Decimal("0.00")
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "day", "location"], name="daily_orders_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.location}: {self.orders} orders"


class OrderDiscount(models.Model):
    """Each folded order's discount (its successful redemptions, matched by order id), as last folded.

    A redemption or rollback may come before or after its order, so the fold recomputes the orders that new
    orders, redemptions and rollbacks touch, takes their old figures out of `DailyOrders` and puts the new ones
    in; a report adds, for the orders touched since (above the `discount:*` watermarks), the raw discount less
    the one kept here."""

    order_pk = models.BigIntegerField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    location = models.CharField(max_length=100, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    discount = models.DecimalField(max_digits=16, decimal_places=2, default=Decimal("0.00"))

    def __str__(self) -> str:
        return f"order {self.order_pk}: {self.discount}"


class DailyPoints(models.Model):
    """Signed points of the ledger entries by the day they were created and their kind."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    kind = models.CharField(max_length=10)
    points = models.BigIntegerField(default=0)
    abs_points = models.BigIntegerField(default=0)
    entries = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "day", "kind"], name="daily_points_unique")]

    def __str__(self) -> str:
        return f"{self.day} {self.kind}: {self.points}"


class DailyRedemptions(models.Model):
    """Successful redemptions by the day they were made: +1 when made, -1 when rolled back (on the same day)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    integration_name = models.CharField(max_length=200, blank=True)
    redemptions = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "day", "integration_name"], name="daily_redemptions_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.integration_name}: {self.redemptions}"


class AuditEntry(models.Model):
    """No table: carries the right to see the audit page (`reports.view_audit`), given to Admins and Analysts."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_audit", "Can see the audit page (who did what, sign-ins)")]

    def __str__(self) -> str:
        return "audit"


class ReportSubscription(models.Model):
    """A staff user's scheduled digest of the dashboard for one tenant and set of filters (`filters` holds the
    dashboard's query parameters: campaign, tier, segment, location, integration). Also carries the right to see
    the dashboard (`reports.see_dashboard`: Admins, Analysts and Marketers)."""

    class Frequency(models.TextChoices):
        WEEKLY = "weekly", _("weekly")
        MONTHLY = "monthly", _("monthly")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="report_subscriptions")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    frequency = models.CharField(max_length=10, choices=Frequency.choices)
    filters = models.JSONField(default=dict, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        permissions = [("see_dashboard", "Can see the reports dashboard and subscribe to its digests")]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "tenant", "frequency", "filters"], name="report_subscription_unique"
            ),
        ]
        indexes = [models.Index(fields=["active", "frequency"], name="report_subscription_due")]

    def __str__(self) -> str:
        return f"{self.user} {self.frequency} {self.tenant_id}"


class DigestSent(models.Model):
    """One digest period of a subscription, claimed before the email goes out: the unique (subscription,
    period_start) makes each period go out once, however many digest runs overlap. `sent_at` is empty while
    the email is on its way; a claim left empty by a crashed run is taken over after `STALE_CLAIM`."""

    subscription = models.ForeignKey(ReportSubscription, on_delete=models.CASCADE, related_name="digests")
    period_start = models.DateField()
    period_end = models.DateField()
    claimed_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscription", "period_start"], name="digest_sent_once_per_period"),
        ]

    def __str__(self) -> str:
        return f"{self.subscription_id} {self.period_start}..{self.period_end}"


class DailyLedger(models.Model):
    """Signed points of the ledger entries by day, program, campaign named (0: none) and kind: the liability at the
    end of any day is the sum of every row up to it, by program for its value, and a `campaign` filter on the
    points figures is served from here."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    program_id = models.BigIntegerField()
    campaign_id = models.BigIntegerField(default=0)
    kind = models.CharField(max_length=10)
    points = models.BigIntegerField(default=0)
    abs_points = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "program_id", "campaign_id", "kind"], name="daily_ledger_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.program_id} {self.kind}: {self.points}"


class DailyRefusals(models.Model):
    """Refused redemption attempts (evaluation traces) by day, integration, campaign and reason.

    `campaign_id` 0 holds every attempt once per reason it gave (the `reasons` of the trace); a campaign's rows
    hold the attempts in which one of its codes was refused, once per reason its lines gave (read from the
    trace's `document` lines). Kept here, the counts outlive the traces' pruning (TRACE_RETENTION_DAYS)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    integration_name = models.CharField(max_length=200, blank=True)
    campaign_id = models.BigIntegerField(default=0)
    reason = models.CharField(max_length=100)
    attempts = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "integration_name", "campaign_id", "reason"], name="daily_refusals_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.reason}: {self.attempts}"


class DailyMemberOrders(models.Model):
    """Per member and day: their orders (by `occurred_at`) and the orders' value, and their engaging acts (code
    redemption lines, redemptions paid with points, catalog rewards; a rollback takes its redemption's acts out
    of the day it was made). The members figures that count distinct members over a range (with orders, repeat
    buyers, engaged members and their revenue) read these rows: about one per order, not one per member-day of
    ledger activity. Kept per member because a member's tier and segments are read now, so the `tier` and
    `segment` filters narrow these rows too."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    member_id = models.BigIntegerField()
    orders = models.IntegerField(default=0)
    value = models.DecimalField(max_digits=16, decimal_places=2, default=Decimal("0.00"))
    engaged = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "day", "member_id"], name="daily_member_orders_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.member_id}: {self.orders} orders"


class DailyMemberActivity(models.Model):
    """The member-days with an order (by `occurred_at`) or a ledger entry: `active_30d` and `active_90d` count the
    distinct members of a window of days. Its unique index (tenant, day, member) answers that alone (an
    index-only scan); `acts` only grows, so a row never goes back to meaning "inactive"."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    member_id = models.BigIntegerField()
    acts = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "day", "member_id"], name="daily_member_activity_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.member_id}: {self.acts}"


class PublicationFact(models.Model):
    """Each folded publication of a code to a member, with the day its code was first redeemed (a line not rolled
    back), or none: "published" and "redeemed by the end of the range" (and their engaged shares) count these rows
    instead of probing every publication's code for a redemption. A line or a rollback of the code recomputes
    `redeemed_day` (`reports.publications`); a report treats the codes touched above those watermarks from raw."""

    publication_pk = models.BigIntegerField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    campaign_id = models.BigIntegerField()
    member_id = models.BigIntegerField()
    code_id = models.BigIntegerField(db_index=True)
    redeemed_day = models.DateField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "day"], name="publication_fact_day")]

    def __str__(self) -> str:
        return f"publication {self.publication_pk}: {self.redeemed_day or '-'}"
