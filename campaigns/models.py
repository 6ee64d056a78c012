"""Campaigns, their codes and publications, and the usage counters their limits rest on.

A campaign's incentive (`discount`), rule, limits and stacking fields are data; the pure strategies in
`campaigns.incentives` and `campaigns.stacking` interpret them. Counters and usage counters are only added to
through `campaigns.sql.counts_sql` / `usage_sql` (redemptions and rollbacks under the campaign row lock,
publications, code generation, failures, referral grants).
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from members.models import Member, Tenant, TenantOwned


class CampaignType(models.TextChoices):
    DISCOUNT = "discount", _("Discount (coupon codes)")
    GIFT_CARD = "gift_card", _("Gift card")
    PROMOTION = "promotion", _("Promotion (applies by itself)")
    REFERRAL = "referral", _("Referral")
    LOYALTY_REWARD = "loyalty_reward", _("Loyalty reward")


class Period(models.TextChoices):
    DAY = "day", _("Day")
    WEEK = "week", _("Week")
    MONTH = "month", _("Month")


class Campaign(TenantOwned):
    # Its counters are updated by every redemption: no single-column index on tenant, which the
    # (tenant, type, enabled) index leads (every query by tenant uses that one).
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    type = models.CharField(max_length=20, choices=CampaignType.choices, default=CampaignType.DISCOUNT)
    enabled = models.BooleanField(default=True, help_text=_("Kill switch: a disabled campaign's codes fail at once."))
    disabled_reason = models.CharField(max_length=300, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    active_hours = models.JSONField(
        default=list,
        blank=True,
        help_text=_('[{"weekdays": [0..6], "from": "09:00", "to": "17:00"}], tenant time zone'),
    )
    rule = models.TextField(blank=True, help_text=_("Validation rule (rule language); empty means always."))

    # The incentive: `discount` for coupon/promotion/loyalty_reward campaigns (see campaigns.incentives),
    # `gift_card_amount` for gift card campaigns; `config` holds type-specific settings (referral).
    discount = models.JSONField(default=dict, blank=True)
    gift_card_amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    config = models.JSONField(default=dict, blank=True)

    # Limits (null = unlimited).
    redemptions_total = models.PositiveIntegerField(null=True, blank=True)
    redemptions_per_member = models.PositiveIntegerField(null=True, blank=True)
    redemptions_per_member_period = models.PositiveIntegerField(null=True, blank=True)
    member_period = models.CharField(max_length=10, choices=Period.choices, blank=True)
    redemptions_per_day = models.PositiveIntegerField(null=True, blank=True)
    redemptions_per_week = models.PositiveIntegerField(null=True, blank=True)
    redemptions_per_month = models.PositiveIntegerField(null=True, blank=True)
    discount_total = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    order_value_total = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)

    # Counters (added to by one set-based UPDATE, `campaigns.sql.counts_sql`; never read-modify-write).
    redemptions_count = models.PositiveIntegerField(default=0)
    discount_used = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    order_value_used = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    redemptions_failed = models.PositiveIntegerField(default=0)
    published_count = models.PositiveIntegerField(default=0)
    codes_count = models.PositiveIntegerField(default=0)
    budget_exhausted_at = models.DateTimeField(null=True, blank=True)

    # Stacking.
    stacking_category = models.CharField(max_length=50, blank=True)
    exclusive = models.BooleanField(default=False)
    combinable_with = models.JSONField(
        null=True, blank=True, help_text=_("Categories it may share an order with; empty = any (unless exclusive).")
    )
    max_codes_per_order = models.PositiveSmallIntegerField(null=True, blank=True)
    priority = models.SmallIntegerField(default=0, help_text=_("Lower applies first within a stage."))

    # Codes.
    code_pattern = models.CharField(max_length=50, blank=True)
    code_usage_limit = models.PositiveIntegerField(null=True, blank=True, help_text=_("Per generated code."))
    code_expires_at = models.DateTimeField(null=True, blank=True)

    # Automatic circuit breaker.
    breaker_enabled = models.BooleanField(default=True)
    breaker_multiple = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal("5"))
    breaker_window_minutes = models.PositiveSmallIntegerField(default=5)
    breaker_min_redemptions = models.PositiveIntegerField(default=20)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(
        excluded_fields=[
            "redemptions_count",
            "discount_used",
            "order_value_used",
            "redemptions_failed",
            "published_count",
            "codes_count",
            "updated_at",
        ]
    )

    class Meta:
        permissions = [
            ("enable_campaign", "Can enable (launch) and disable campaigns"),
            # Granted per campaign (django-guardian) to support agents: the campaigns of their apology coupons.
            ("use_campaign", "Can give this campaign's codes to members (support)"),
            # Without these, a user reaches only the campaigns they own or were granted (campaigns.admin_rights).
            ("view_every_campaign", "Can see every campaign of its tenants, not only its own and those granted"),
            ("change_every_campaign", "Can change every campaign of its tenants, not only its own and those granted"),
            ("grant_campaign", "Can grant and revoke other users' rights on the campaigns it may change"),
        ]
        indexes = [models.Index(fields=["tenant", "type", "enabled"])]
        constraints = [
            models.CheckConstraint(condition=Q(discount_used__gte=0), name="campaign_discount_used_non_negative"),
            models.CheckConstraint(condition=Q(order_value_used__gte=0), name="campaign_order_value_used_non_negative"),
            # The backstop of the limits (house rule 4): even a code path that forgets the campaign lock cannot
            # count past them. Lowering a limit below what is used is refused by `campaign_update` first.
            models.CheckConstraint(
                condition=Q(redemptions_total__isnull=True) | Q(redemptions_count__lte=F("redemptions_total")),
                name="campaign_redemptions_within_total",
            ),
            models.CheckConstraint(
                condition=Q(discount_total__isnull=True) | Q(discount_used__lte=F("discount_total")),
                name="campaign_discount_within_budget",
            ),
            models.CheckConstraint(
                condition=Q(order_value_total__isnull=True) | Q(order_value_used__lte=F("order_value_total")),
                name="campaign_order_value_within_budget",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def category(self) -> str:
        return self.stacking_category or self.type


class Code(TenantOwned):
    # Millions of rows, so bulk generation must stay cheap per row: no single-column indexes that a composite
    # one covers (tenant: the unique (tenant, code); member: (member, campaign)), and no database foreign key
    # check for `tenant`, which is always a copy of `campaign.tenant` (the campaign FK stays enforced): each
    # foreign key costs a trigger per inserted row, which measured as half the time of a bulk insert.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="codes")
    code = models.CharField(max_length=60)
    is_shared = models.BooleanField(default=False)
    usage_limit = models.PositiveIntegerField(null=True, blank=True, help_text=_("Empty means unlimited."))
    redeemed_count = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Gift cards: the current balance, changed only by the redemption service (history: GiftCardTransaction).
    initial_balance = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    balance = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="codes", db_index=False
    )
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "code"], name="code_unique_per_tenant"),
            # The backstop of "one use left -> one success": never more redemptions than the code allows.
            models.CheckConstraint(
                condition=Q(usage_limit__isnull=True) | Q(redeemed_count__lte=F("usage_limit")),
                name="code_redeemed_within_limit",
            ),
            models.CheckConstraint(
                condition=Q(balance__gte=0) | Q(balance__isnull=True), name="code_balance_non_negative"
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "id"], condition=Q(member__isnull=True), name="code_free_by_campaign"),
            models.Index(fields=["member", "campaign"], name="code_member_campaign"),
        ]

    def __str__(self) -> str:
        return self.code


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    PUSH = "push", _("Push")
    POS = "pos", _("Point of sale")
    API = "api", _("API")
    SUPPORT = "support", _("Support agent")  # handed out in the admin (apology coupons); not a touchpoint's


class Publication(TenantOwned):
    """A code handed to a member through a channel."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="publications")
    code = models.ForeignKey(Code, on_delete=models.CASCADE, related_name="publications")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="publications")
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.API)
    published_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["code", "member"], name="publication_one_per_code_member")]
        indexes = [models.Index(fields=["member", "campaign"])]

    def __str__(self) -> str:
        return f"{self.code_id} -> {self.member_id}"


class CampaignUsage(models.Model):
    """A usage counter of a campaign under a key.

    Keys: `m:<member>` (per member), `m:<member>:<period start>` (per member per period),
    `d:<date>`, `w:<monday>`, `mo:<yyyy-mm>` (campaign per day/week/month in the tenant's time zone) and
    `min:<utc minute>` (per-minute activity, read by the circuit breaker, pruned after a day).
    Changed by one set-based upsert per redemption, under the campaign's row lock.
    """

    # No single-column index on the campaign: the unique (campaign, key) leads with it.
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="usage", db_index=False)
    key = models.CharField(max_length=80)
    count = models.IntegerField(default=0)
    discount = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "key"], name="campaign_usage_key_unique")]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.key}={self.count}"


class CampaignAlert(TenantOwned):
    """A note to the marketers (circuit breaker trips, budget exhausted), shown in the admin."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=40)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.campaign_id}"


class CodeGenerationJob(TenantOwned):
    """Bulk code generation runs as a task; this row tracks it (re-runnable: it tops up to `count`)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="generation_jobs")
    pattern = models.CharField(max_length=50)
    count = models.PositiveIntegerField()
    created = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=20, default="pending")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.campaign_id}: {self.created}/{self.count}"


# --- automatic distributions: a campaign's triggers and their firings (logic in `campaigns.triggers`) ----------


class TriggerKind(models.TextChoices):
    MEMBER_JOINED = "member_joined", _("Member joined")
    TIER_REACHED = "tier_reached", _("Tier reached")
    NTH_ORDER = "nth_order", _("First or Nth paid order")
    ORDER_AMOUNT = "order_amount", _("Paid order of at least an amount")
    CUSTOM_EVENT = "custom_event", _("Custom event")
    BIRTHDAY = "birthday", _("Birthday (daily, tenant time zone)")
    SEGMENT_ENTERED = "segment_entered", _("Entered a segment (daily)")


class TriggerRepeat(models.TextChoices):
    ONCE = "once", _("Once per member")
    EVERY_TIME = "every_time", _("Every time")
    EVERY_N_DAYS = "every_n_days", _("At most once per N days")


class CampaignTrigger(TenantOwned):
    """When something happens to a member, publish them a code of `campaign` (through the publication service)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="triggers")
    kind = models.CharField(max_length=20, choices=TriggerKind.choices)
    enabled = models.BooleanField(default=True)
    tier_code = models.CharField(max_length=50, blank=True, help_text=_("Tier reached: the tier's code."))
    order_number = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Nth paid order: 1 for the first order, 3 for the third...")
    )
    min_amount = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text=_("Order amount: at least this much.")
    )
    event_name = models.CharField(max_length=100, blank=True, help_text=_("Custom event: the event's name."))
    segment = models.ForeignKey(
        "members.Segment", null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text=_("Segment")
    )
    repeat = models.CharField(
        max_length=15,
        choices=TriggerRepeat.choices,
        default=TriggerRepeat.ONCE,
        help_text=_("Once per member, every time it happens (each birthday, each order), or at most every N days."),
    )
    repeat_days = models.PositiveIntegerField(null=True, blank=True, help_text=_("N, for 'at most once per N days'."))
    # Segment entry: the first daily run only records who is in already (they did not enter).
    segment_baseline_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Daily kinds: the tenant's local day last checked (the hourly sweep skips a trigger checked today).
    checked_on = models.DateField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        indexes = [models.Index(fields=["tenant", "kind", "enabled"], name="trigger_tenant_kind")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(repeat="every_n_days") | Q(repeat_days__gte=1), name="trigger_repeat_days_set"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} -> {self.campaign_id}"


class TriggerFiring(TenantOwned):
    """One occurrence of a trigger for a member: published, or skipped and why. Unique per occurrence key.

    The key is what makes "once" hold under retries and overlapping runs: `once` for a once-per-member trigger,
    otherwise the occurrence (the order id, the event id, the local year of a birthday, the day of an entry).
    """

    class State(models.TextChoices):
        PUBLISHED = "published", _("Published")
        SKIPPED = "skipped", _("Skipped")

    trigger = models.ForeignKey(CampaignTrigger, on_delete=models.CASCADE, related_name="firings")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="trigger_firings", db_index=False)
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    occurrence_key = models.CharField(max_length=120)
    state = models.CharField(max_length=10, choices=State.choices)
    reason = models.CharField(max_length=40, blank=True)
    publication = models.ForeignKey(Publication, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trigger", "member", "occurrence_key"], name="trigger_firing_once")
        ]
        # The unique (trigger, member, key) serves the "already published to this member" reads.
        indexes = [models.Index(fields=["campaign", "state"], name="trigger_firing_campaign")]

    def __str__(self) -> str:
        return f"{self.trigger_id}/{self.member_id}/{self.occurrence_key}: {self.state}"


class TriggerSegmentMember(models.Model):
    """Who was in a segment-entry trigger's segment at its last daily run: today's members minus these entered."""

    trigger = models.ForeignKey(CampaignTrigger, on_delete=models.CASCADE, related_name="+", db_index=False)
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    since = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["trigger", "member"], name="trigger_segment_member_unique")]

    def __str__(self) -> str:
        return f"{self.member_id} in {self.trigger_id}"


class ActivationRequest(TenantOwned):
    """A junior marketer's request that a marketer with the enable right launch a campaign (four eyes).

    Approval enables the campaign through `campaign_enable` in the same transaction as the conditional UPDATE
    that moves the request out of `pending` (two approvers at once: one enables); the database refuses a
    decision by the requester, as `rewards.ApprovalRequest` does.
    """

    class State(models.TextChoices):
        PENDING = "pending", _("Waiting for approval")
        APPROVED = "approved", _("Approved: campaign enabled")
        REJECTED = "rejected", _("Rejected")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="activation_requests")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    note = models.CharField(max_length=300, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
                name="activation_not_by_requester",
            ),
            models.UniqueConstraint(
                fields=["campaign"], condition=Q(state="pending"), name="activation_one_pending_per_campaign"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "state", "requested_at"], name="activation_pending")]

    def __str__(self) -> str:
        return f"{self.campaign} ({self.get_state_display()})"


# --- distribution: sends to a segment, reminder sequences (see `campaigns.distribution`, `campaigns.reminders`) ---


class SegmentSend(TenantOwned):
    """One "send a code of this campaign to every member of that segment now", run by a task in batches.

    Its members are listed once, when it starts, as `SegmentSendRecipient` rows (one per member, unique): the
    run works through the pending rows only, so running it again, or twice at once, sends nobody twice.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting to start")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        CANCELLED = "cancelled", _("Cancelled")
        STOPPED = "stopped", _("Stopped (the campaign refused further codes)")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="segment_sends")
    segment = models.ForeignKey("members.Segment", on_delete=models.PROTECT, related_name="+")
    message = models.TextField(blank=True, help_text=_("Shown above the code in the email (optional)."))
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    stop_reason = models.CharField(max_length=300, blank=True)
    recipients_listed = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        permissions = [
            ("start_segmentsend", "Can send a campaign's codes to a segment"),
            ("export_publications", "Can export a campaign's publications and codes (CSV, with members' emails)"),
        ]
        indexes = [models.Index(fields=["campaign", "-created_at"], name="segment_send_campaign")]

    def __str__(self) -> str:
        return f"{self.campaign_id} -> segment {self.segment_id} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in (self.Status.PENDING, self.Status.RUNNING)


class SegmentSendRecipient(models.Model):
    """A member of a segment send and what happened to them; the unique (send, member) is the "only once"."""

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        CLAIMED = "claimed", _("Being sent")
        SENT = "sent", _("Sent")
        SKIPPED_CONSENT = "skipped_consent", _("Skipped: no email consent")
        SKIPPED_HELD = "skipped_held", _("Skipped: already holds a code of the campaign")
        FAILED = "failed", _("Failed")

    send = models.ForeignKey(SegmentSend, on_delete=models.CASCADE, related_name="recipients", db_index=False)
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+", db_index=False)
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    claim = models.CharField(max_length=32, blank=True)
    publication = models.ForeignKey(
        Publication, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    error = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["send", "member"], name="segment_send_recipient_once")]
        indexes = [models.Index(fields=["send", "state", "id"], name="segment_send_recipient_state")]

    def __str__(self) -> str:
        return f"{self.send_id}:{self.member_id} {self.state}"


class ReminderStep(TenantOwned):
    """A follow-up of a campaign: N days after a code was published, email its member if it is still unused.

    Not retroactive: a step reminds only publications that become due after it was created, so adding a step
    to a running campaign does not email everyone who got a code months ago.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="reminder_steps")
    days_after = models.PositiveSmallIntegerField(help_text=_("Days after the code was published."))
    subject = models.CharField(max_length=200, blank=True, help_text=_("Empty: a standard subject."))
    message = models.TextField(help_text=_("The text of this reminder, shown above the code."))
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["campaign", "days_after"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "days_after"], name="reminder_step_one_per_day"),
            models.CheckConstraint(condition=Q(days_after__gte=1), name="reminder_step_days_positive"),
        ]

    def __str__(self) -> str:
        return _("Day %(days)s reminder") % {"days": self.days_after}


class ReminderDelivery(TenantOwned):
    """The state of one reminder step for one publication: written by the sweep once due, then claimed, sent or
    stopped. The unique (step, publication) makes every reminder at most once, whatever the number of sweeps."""

    class State(models.TextChoices):
        PENDING = "pending", _("Due")
        CLAIMED = "claimed", _("Being sent")
        SENT = "sent", _("Sent")
        STOPPED = "stopped", _("Stopped")
        FAILED = "failed", _("Failed")

    step = models.ForeignKey(ReminderStep, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    publication = models.ForeignKey(Publication, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+", db_index=False)
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+", db_index=False)
    code = models.ForeignKey(Code, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    due_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    stop_reason = models.CharField(max_length=40, blank=True)
    claim = models.CharField(max_length=32, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["step", "publication"], name="reminder_delivery_once")]
        indexes = [
            models.Index(fields=["state", "due_at"], name="reminder_delivery_due"),
            models.Index(fields=["member", "-sent_at"], name="reminder_delivery_member"),
            models.Index(fields=["campaign", "state"], name="reminder_delivery_campaign"),
        ]

    def __str__(self) -> str:
        return f"{self.step_id}:{self.publication_id} {self.state}"
