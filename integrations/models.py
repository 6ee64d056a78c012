"""Integrations, API keys, webhook endpoints and deliveries, idempotency records.

An *integration* is one touchpoint of one tenant ("web-shop", "pos-berlin"). It holds API keys
(djangorestframework-api-key: only a SHA-512 hash is stored, looked up by an 8-character prefix) and
is the scope of idempotency keys. Webhook endpoints belong to the tenant; every published domain event
is written to the `Event` outbox in the caller's transaction and fanned out to one `WebhookDelivery`
per subscribed endpoint, each attempt of which is logged as a `WebhookAttempt`.
"""

import datetime
import ipaddress
import re
import secrets
import urllib.parse
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import AbstractAPIKey, APIKeyManager
from simple_history.models import HistoricalRecords

from common.events import EVENT_TYPES
from members.models import Tenant, TenantOwned

__all__ = [
    "API_SCOPES",
    "Integration",
    "IntegrationAPIKey",
    "WebhookEndpoint",
    "Event",
    "WebhookDelivery",
    "WebhookAttempt",
    "IdempotencyRecord",
]

API_SCOPES = ("read", "redeem", "earn", "manage")


def validate_scopes(value) -> None:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValidationError(_("Scopes must be a list of names."))
    unknown = sorted(set(value) - set(API_SCOPES))
    if unknown:
        raise ValidationError(_("Unknown scopes: %(scopes)s."), params={"scopes": ", ".join(unknown)})


def validate_event_types(value) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError(_("Choose at least one event type."))
    unknown = sorted(set(value) - set(EVENT_TYPES))
    if unknown:
        raise ValidationError(_("Unknown event types: %(types)s."), params={"types": ", ".join(unknown)})


_PERIODS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")


def parse_rate(rate: str) -> tuple[int, int]:
    """A key's throttle rate: '100/s' -> (100, 1); '6000/min' -> (6000, 60)."""
    match = _RATE.match(rate or "")
    if not match or match.group(2) not in _PERIODS or int(match.group(1)) < 1:
        raise ValueError(f"{rate!r} is not a rate such as 100/s, 6000/min, 10000/hour or 100000/day.")
    return int(match.group(1)), _PERIODS[match.group(2)]


def validate_throttle_rate(value: str) -> None:
    if not value:
        return
    try:
        parse_rate(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


def all_scopes() -> list[str]:
    return list(API_SCOPES)


class Integration(TenantOwned):
    """A touchpoint of one tenant (web shop, POS, app, CRM) that calls the API with its own keys."""

    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords(table_name="loyalty_historicalintegration")

    class Meta:
        db_table = "loyalty_integration"  # the table kept its name when the model moved here
        ordering = ["tenant", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="integration_name_unique_per_tenant")]

    def __str__(self) -> str:
        return f"{self.name} ({self.tenant_id})"


class IntegrationAPIKeyManager(APIKeyManager):
    def for_tenant(self, tenant):
        return self.filter(integration__tenant=tenant)


class IntegrationAPIKey(AbstractAPIKey):
    """An API key of one integration: hashed, revocable (for good), with scopes and a last-used time."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="api_keys")
    scopes = models.JSONField(
        default=all_scopes,
        validators=[validate_scopes],
        help_text=_("What the key may do: read, redeem, earn, manage."),
    )
    throttle_rate = models.CharField(
        max_length=20,
        blank=True,
        validators=[validate_throttle_rate],
        help_text=_("Requests allowed, such as 100/s or 6000/min; empty: the default rate."),
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = IntegrationAPIKeyManager()
    history = HistoricalRecords(
        excluded_fields=["hashed_key", "last_used_at"], table_name="loyalty_historicalintegrationapikey"
    )

    class Meta(AbstractAPIKey.Meta):
        db_table = "loyalty_integrationapikey"  # the table kept its name when the model moved here
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    @property
    def tenant(self):
        return self.integration.tenant

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])


_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


def is_public_address(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a webhook may connect to `address`: a globally routed unicast address, nothing internal.

    Addresses that carry an IPv4 address inside (IPv4-mapped, NAT64, 6to4) are judged by that address too,
    so `::ffff:127.0.0.1` is loopback however it is written.
    """
    if isinstance(address, str):
        address = ipaddress.ip_address(address.partition("%")[0])  # drop an IPv6 zone ("fe80::1%eth0")
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)
        if address in _NAT64_PREFIX:
            return is_public_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None and not is_public_address(address.sixtofour):
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def webhook_private_hosts_allowed() -> bool:
    return getattr(settings, "WEBHOOK_ALLOW_PRIVATE_HOSTS", False)


def validate_webhook_url(value: str) -> None:
    """Refuse, at save, a webhook URL that could make the server call itself or its network (SSRF).

    Only literal addresses and `localhost` names are judged here: what a host name resolves to can change
    after saving, so each delivery checks the addresses it is about to connect to (`integrations.webhooks`).
    """
    host = validate_webhook_url_shape(value)
    if webhook_private_hosts_allowed():
        return
    if host == "localhost" or host.endswith(".localhost"):
        raise ValidationError(_("Webhook URLs may not point at this server (localhost)."), code="private_host")
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return  # a host name: judged by the address it resolves to, at each delivery
    if not is_public_address(address):
        raise ValidationError(
            _(
                "Webhook URLs may not point at a private, loopback, link-local, multicast, reserved or "
                "unspecified address (%(address)s); use the receiver's public address or host name."
            ),
            params={"address": str(address)},
            code="private_host",
        )


def validate_webhook_url_shape(value: str) -> str:
    """https (or http where allowed), a host, no credentials: the rules that need no address. Returns the host."""
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ValidationError(_("Enter a valid URL."), code="invalid") from exc
    schemes = ("https", "http") if getattr(settings, "WEBHOOK_ALLOW_HTTP", False) else ("https",)
    if parts.scheme.lower() not in schemes:
        if "http" in schemes:
            raise ValidationError(_("Webhook URLs must start with https:// or http://."), code="scheme")
        raise ValidationError(_("Webhook URLs must use https:// so deliveries are encrypted."), code="scheme")
    if parts.username is not None or parts.password is not None:
        raise ValidationError(
            _("Put no user name or password in the URL: receivers check the Loyalty-Signature header instead."),
            code="credentials",
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValidationError(_("The URL needs a host name."), code="host")
    return host


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class WebhookEndpoint(TenantOwned):
    """Where a tenant wants events POSTed, signed with its own secret."""

    url = models.URLField(max_length=500, validators=[validate_webhook_url])
    description = models.CharField(max_length=200, blank=True)
    secret = models.CharField(
        max_length=100,
        default=new_webhook_secret,
        help_text=_("Signs every delivery (Loyalty-Signature header); share it with the receiver."),
    )
    event_types = models.JSONField(default=list, validators=[validate_event_types])
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords(excluded_fields=["secret"], table_name="loyalty_historicalwebhookendpoint")

    class Meta:
        db_table = "loyalty_webhookendpoint"  # the table kept its name when the model moved here
        ordering = ["tenant", "url"]

    def __str__(self) -> str:
        return self.url


class Event(TenantOwned):
    """The outbox: one row per published domain event, written in the transaction that caused it."""

    append_only = True  # its own history: never changed, so no simple-history table

    # Written inside every hot write (a redemption, an order). No database foreign key check for the tenant:
    # it is the tenant of the row that transaction writes and checks (the redemption, the account, the
    # campaign...), and a tenant is never deleted (on_delete=PROTECT still refuses an ORM delete); the check
    # only share-locked the tenant row once more. No single-column index: (tenant, type, created_at) leads with it.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=50, choices=[(t, t) for t in EVENT_TYPES])
    data = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        db_table = "loyalty_event"  # the table kept its name when the model moved here
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "type", "created_at"])]

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"

    @property
    def public_id(self) -> str:
        return f"evt_{self.id.hex}"

    def envelope(self) -> dict:
        """The delivered document, as the contract says: {"id", "type", "created_at", "tenant", "data"}."""
        return {
            "id": self.public_id,
            "type": self.type,
            "created_at": self.created_at.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z"),
            "tenant": self.tenant.slug,
            "data": self.data,
        }


class WebhookDelivery(TenantOwned):
    """One event to one endpoint; retried until it succeeds or its attempts are used up."""

    # Delivery state, not configuration: its attempt log (WebhookAttempt) is the history.
    append_only = True

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        RETRYING = "retrying", _("Failed, will retry")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed for good")
        SKIPPED = "skipped", _("Skipped (endpoint disabled)")

    # The tenant is always the endpoint's (`integrations.sql.event_record` selects `e.tenant_id` in the same
    # INSERT), and the endpoint foreign key is enforced; a tenant is never deleted (on_delete=PROTECT still
    # refuses an ORM delete): no database check for it. Its index stays (the admin lists deliveries by tenant).
    # `event` and `endpoint` are the delivery's own parents and stay enforced.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_constraint=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    locked_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # Empty but for re-sends: a partial index (below) serves the one lookup by it (the SET_NULL when a delivery
    # is deleted) without an entry for every delivery.
    resent_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resends", db_index=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "loyalty_webhookdelivery"  # the table kept its name when the model moved here
        ordering = ["-created_at"]
        verbose_name_plural = _("webhook deliveries")
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["resent_from"], condition=Q(resent_from__isnull=False), name="delivery_resent_from"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint_id} ({self.status})"


class WebhookAttempt(TenantOwned):
    """The log of one HTTP attempt of a delivery."""

    append_only = True

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    response_body = models.TextField(blank=True)

    class Meta:
        db_table = "loyalty_webhookattempt"  # the table kept its name when the model moved here
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_number_unique")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class IdempotencyRecord(TenantOwned):
    """The first response to a POST carrying an `Idempotency-Key`, replayed to retries for >= 24 h.

    The unique (integration, key) row is claimed before the view runs, so two concurrent requests with
    the same key cannot both run: the second waits for the first's response.
    """

    append_only = True  # a cache of responses, not configuration: no history

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", _("In progress")
        COMPLETED = "completed", _("Completed")

    # Written on every POST with a key. The tenant is always the integration's (`api.idempotency` copies
    # `integration.tenant_id`), whose foreign key is enforced, and a tenant is never deleted (on_delete=PROTECT
    # still refuses an ORM delete): no database check, and no index (nothing reads records by tenant).
    # No single-column index on the integration either: the unique (integration, key) leads with it.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    state = models.CharField(max_length=12, choices=State.choices, default=State.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    locked_until = models.DateTimeField()

    class Meta:
        db_table = "loyalty_idempotencyrecord"  # the table kept its name when the model moved here
        constraints = [
            models.UniqueConstraint(fields=["integration", "key"], name="idempotency_key_unique_per_integration")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"
