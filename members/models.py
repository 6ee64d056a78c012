import zoneinfo
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from members.languages import locale_language


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(_("%(value)s is not a known time zone."), params={"value": value})


class Tenant(models.Model):
    """A brand or a country: every domain row belongs to exactly one.

    It lives in `members`, the lowest domain app, because every other app references it; placing it in
    `loyalty` (as the first map of the apps had it) would make members depend on loyalty and close a cycle.
    """

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    currency = models.CharField(
        max_length=3, validators=[RegexValidator(r"^[A-Z]{3}$", _("An ISO 4217 code such as EUR."))]
    )
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    locale = models.CharField(max_length=16, default="en")
    frozen = models.BooleanField(
        default=False, help_text=_("Kill switch: refuses every redemption and earning of this tenant at once.")
    )
    frozen_reason = models.CharField(max_length=300, blank=True)
    # What a junior marketer (who may not launch campaigns) may give at most: a percentage, and an amount in
    # the tenant's currency for fixed-amount discounts and gift cards (empty: juniors set no such amount).
    junior_max_discount_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("20"),
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text=_("The largest percentage discount a junior marketer may save."),
    )
    junior_max_discount_amount = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("The largest fixed discount or gift card amount (tenant currency) a junior marketer may save."),
    )
    # The member cockpit's branding (empty: the cockpit's own look); what points are called is the program's.
    logo_url = models.URLField(blank=True, help_text=_("The logo shown at the top of the member cockpit."))
    brand_colour = models.CharField(
        max_length=7,
        blank=True,
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", _("A colour such as #0b5cad."))],
        help_text=_("The cockpit's header colour; the text on it is black or white, whichever reads better."),
    )
    # GDPR erasure: whether the external id of an erased member may name a new member. False keeps the erased
    # member's id (a CRM re-sending it is refused with 409 `member_erased`); True frees it (`member_erase`).
    erased_external_id_reusable = models.BooleanField(
        default=False,
        db_default=False,
        help_text=_("Let a new member take the external id of an erased member (otherwise it stays reserved)."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["slug"]
        permissions = [("access_tenant", "Can work with this tenant's data")]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    @property
    def language(self) -> str:
        """The language its members' pages and emails speak by default (see members.languages)."""
        return locale_language(self.locale)


class TenantQuerySet(models.QuerySet):
    def for_tenant(self, tenant: Tenant | int) -> "TenantQuerySet":
        return self.filter(tenant=tenant)


class TenantOwned(models.Model):
    """Base of every tenant-owned model: queries go through `Model.objects.for_tenant(tenant)`."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True


CONSENT_CHANNELS = ("email", "sms", "push")


class Member(TenantOwned):
    """A loyalty member of one tenant, known to the touchpoints by their external id."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        # Support's stop: the member's codes are refused (`member_suspended`) and orders and events earn nothing.
        SUSPENDED = "suspended", _("Suspended")
        ERASED = "erased", _("Erased")

    external_id = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    name = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=40, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text=_("ISO 3166 alpha-2"))
    city = models.CharField(max_length=100, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    # Consent per channel, each with the time it last changed (every change is also a `ConsentChange` row).
    # `marketing_consent` is kept for the API and the segment criteria: `member_upsert` keeps it true when
    # any channel is, and writing it sets every channel. Senders read the channel's field, never this one.
    marketing_consent = models.BooleanField(default=False)
    marketing_consent_changed_at = models.DateTimeField(null=True, blank=True)
    email_consent = models.BooleanField(default=False, db_default=False)
    email_consent_changed_at = models.DateTimeField(null=True, blank=True)
    sms_consent = models.BooleanField(default=False, db_default=False)
    sms_consent_changed_at = models.DateTimeField(null=True, blank=True)
    push_consent = models.BooleanField(default=False, db_default=False)
    push_consent_changed_at = models.DateTimeField(null=True, blank=True)
    referral_code = models.CharField(max_length=20)
    referred_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="referrals")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.CharField(max_length=300, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "external_id"], name="member_external_id_unique_per_tenant"),
            models.UniqueConstraint(fields=["tenant", "referral_code"], name="member_referral_code_unique_per_tenant"),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.email or self.external_id} ({self.external_id})"

    @property
    def is_suspended(self) -> bool:
        return self.status == self.Status.SUSPENDED

    def consents_to(self, channel: str) -> bool:
        """Whether the member accepts marketing on `channel` (email, sms, push) now."""
        return channel in CONSENT_CHANNELS and bool(getattr(self, f"{channel}_consent"))

    def can_be_emailed(self) -> bool:
        return bool(self.email) and self.email_consent and self.status == self.Status.ACTIVE


class CustomEvent(TenantOwned):
    """Something a member did (`newsletter_subscribed`, `review_written`, ...), kept for rules and history."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=100)
    metadata = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["member", "name", "occurred_at"])]

    def __str__(self) -> str:
        return f"{self.name} by {self.member_id}"


class Segment(TenantOwned):
    """A named group of members: dynamic (criteria computed by a query) or a static uploaded list.

    `criteria` (dynamic segments) is a small document turned into one SQL query by
    `members.selectors.segment_members`: `{"country": ["GB"], "city": [...], "tiers": ["gold"],
    "attributes": {"vip": true}, "marketing_consent": true, "min_spend": "1000.00", "spend_days": 365,
    "event": {"name": "review_written", "days": 30}}`. Spend and tier are read through the reverse relations
    `orders` and `tier_statuses` (models of `loyalty`), so this app imports nothing above it.
    """

    class Kind(models.TextChoices):
        DYNAMIC = "dynamic", _("Dynamic (criteria)")
        STATIC = "static", _("Static list")

    code = models.SlugField(max_length=50)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DYNAMIC)
    criteria = models.JSONField(default=dict, blank=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="segment_code_unique_per_tenant")]

    def __str__(self) -> str:
        return self.name


class SegmentMember(models.Model):
    """A member of a static segment list."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="static_members")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="static_segments")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["segment", "member"], name="segment_member_unique")]

    def __str__(self) -> str:
        return f"{self.member_id} in {self.segment_id}"


class FormSubmission(models.Model):
    """A one-time token of an admin form that changes balances, codes or budgets, claimed when it is carried out.

    The unique token makes a second POST of the same form (a double click, a browser retry) find it taken and
    change nothing (`members.form_once`). Not tenant data: it only remembers that a form was sent.
    """

    token = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    form = models.CharField(max_length=100)
    submitted_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.form} {self.token[:8]}"


class ConsentChange(TenantOwned):
    """One change of a member's consent on one channel: when, to what, and who or what changed it.

    Append-only; read by the member page and the data export (proof of consent for GDPR).
    """

    class Source(models.TextChoices):
        API = "api", _("API")
        ADMIN = "admin", _("Admin")
        COCKPIT = "cockpit", _("Member cockpit")
        IMPORT = "import", _("Import")
        ERASURE = "erasure", _("Erasure of the member's data")
        MIGRATION = "migration", _("Migrated from marketing consent")

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="consent_changes")
    channel = models.CharField(max_length=10, choices=[(c, c) for c in CONSENT_CHANNELS])
    granted = models.BooleanField()
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.API)
    changed_at = models.DateTimeField()
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["member", "-changed_at"], name="consent_change_member_time")]

    def __str__(self) -> str:
        return f"{self.member_id} {self.channel}={'yes' if self.granted else 'no'}"


class CockpitLinkUse(TenantOwned):
    """A cockpit sign-in link that was opened: the unique nonce makes each link work once.

    The link itself is a signed value (`members.cockpit_links`), so nothing is stored when one is sent; this row
    is written when it is used, and a second use hits the unique constraint.
    """

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    nonce = models.CharField(max_length=32)
    used_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["nonce"], name="cockpit_link_used_once")]

    def __str__(self) -> str:
        return f"cockpit link of {self.member_id} used at {self.used_at:%Y-%m-%d %H:%M}"


class TermsVersion(TenantOwned):
    """One version of a tenant's program terms; the latest published one (`published_at` <= now) is current.

    A new text is a new row: a published version is never changed (members accepted that very text), so the
    admin shows it read-only and old versions are kept.
    """

    version = models.CharField(max_length=20, help_text=_("e.g. 2026-01 or 3"))
    text = models.TextField()
    published_at = models.DateTimeField(
        null=True, blank=True, help_text=_("From when this version is the current one (empty: a draft).")
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "version"], name="terms_version_unique_per_tenant")]
        indexes = [models.Index(fields=["tenant", "-published_at"], name="terms_version_current")]
        verbose_name = _("program terms version")

    def __str__(self) -> str:
        return f"{self.version}"


class TermsAcceptance(TenantOwned):
    """A member accepted one version of the terms, at that time. Append-only (proof of what was agreed)."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="terms_acceptances")
    terms = models.ForeignKey(TermsVersion, on_delete=models.PROTECT, related_name="acceptances")
    accepted_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "terms"], name="terms_accepted_once")]

    def __str__(self) -> str:
        return f"{self.member_id} accepted {self.terms_id}"


class ErasureRequest(TenantOwned):
    """A member asked for their personal data to be erased (GDPR art. 17).

    Staff carry it out in the admin, or `members.tasks.erase_due_members` does once ERASURE_GRACE_DAYS have
    passed; either way through `members.services.member_erase`. At most one open request per member.
    """

    class State(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        CARRIED_OUT = "carried_out", _("Carried out")
        CANCELLED = "cancelled", _("Cancelled")

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="erasure_requests")
    state = models.CharField(max_length=12, choices=State.choices, default=State.REQUESTED)
    requested_at = models.DateTimeField()
    carried_out_at = models.DateTimeField(null=True, blank=True)
    # Who carried it out; empty with `automatic` when the grace period ran out.
    carried_out_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    automatic = models.BooleanField(default=False)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["member"], condition=models.Q(state="requested"), name="erasure_request_one_open_per_member"
            )
        ]
        indexes = [models.Index(fields=["state", "requested_at"], name="erasure_request_due")]
        permissions = [("carry_out_erasurerequest", "Can carry out a member's erasure")]

    def __str__(self) -> str:
        return f"erasure of {self.member_id} ({self.state})"
