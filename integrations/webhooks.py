"""Webhooks: the `common.events` sink, signing, and delivery with retries by Celery.

Flow: a service calls `common.events.publish(tenant, type, data)` inside its transaction. The sink here
writes the `Event` outbox row and one `WebhookDelivery` per enabled endpoint that wants the type, in the
same transaction, and enqueues `deliver_webhook(delivery_id)` after commit (so a rolled-back change never
announces itself).

Each attempt claims the delivery with a conditional UPDATE (so duplicate task messages never send twice
at the same time), POSTs the envelope signed with `Loyalty-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
"<t>.<raw body>">`, and logs a `WebhookAttempt`. A non-2xx answer, a redirect or a timeout is retried
with exponential backoff and jitter: by default 6 attempts, delays of base * factor^(n-1) = 1 min, 6 min,
36 min, 3.6 h, 21.6 h (x0.8-1.2 jitter), about a day in all. After the last failure the delivery is
`failed` and the endpoint is disabled (the admin shows it to the tenant's admins, who re-enable it and
re-send deliveries there).

Why not `autoretry_for`/`retry_backoff` alone: with a Redis broker a task whose ETA lies beyond the
visibility timeout (`CELERY_VISIBILITY_TIMEOUT`, 2 h) is re-delivered to other workers while it waits,
and a restart loses nothing only if the state is in the database. So the due time lives on the delivery
row: short delays are scheduled directly with a countdown, long ones are picked up by
`dispatch_due_webhooks`, a sweep run every minute by beat, which also recovers deliveries whose worker
died mid-attempt and deliveries whose task could not be published (the broker was down when the write
committed: `common.side_effects.publish_task` logs it and the request succeeds; the delivery row is
pending and due, so the sweep sends it).
"""

import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import random
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from common import events
from common.side_effects import enqueue, publish_task
from integrations import sql as integrations_sql
from integrations.models import (
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    is_public_address,
    validate_webhook_url_shape,
    webhook_private_hosts_allowed,
)

logger = logging.getLogger("integrations.webhooks")

SIGNATURE_HEADER = "Loyalty-Signature"
Status = WebhookDelivery.Status


def _setting(name: str, default):
    return getattr(settings, name, default)


def max_attempts() -> int:
    return _setting("WEBHOOK_MAX_ATTEMPTS", 6)


def retry_delay(attempt: int, *, jitter: bool = True) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): exponential, with +-20% jitter."""
    base = _setting("WEBHOOK_RETRY_BASE_SECONDS", 60)
    factor = _setting("WEBHOOK_RETRY_FACTOR", 6)
    delay = base * factor ** (attempt - 1)
    if jitter:
        delay *= random.uniform(0.8, 1.2)
    return delay


# --- signing -------------------------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `Loyalty-Signature` header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, body: bytes, header: str, *, tolerance: int = 300, now: float | None = None) -> bool:
    """What a receiver does: check the HMAC on the exact bytes, in constant time, and the timestamp's age."""
    parts: dict[str, list[str]] = {}
    for item in (header or "").split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", []))


def envelope_bytes(event: Event) -> bytes:
    return json.dumps(event.envelope(), cls=DjangoJSONEncoder, separators=(",", ":"), sort_keys=True).encode()


# --- the sink ------------------------------------------------------------------------------------


def webhook_event_record(tenant, event_type: str, data: dict) -> uuid.UUID:
    """Write the event and its deliveries in the caller's transaction; deliver after commit.

    It runs inside every hot write (a redemption, an order), so the event, the lookup of the endpoints that
    want it and their deliveries are one statement on PostgreSQL, or part of the caller's batch of writes
    (`integrations.sql.event_record`, whose `_wants()` is the one routing rule, on both vendors): the ORM's
    compilation of the three cost more CPU than the redemption's own writes.
    """
    event = Event(
        id=uuid.uuid4(), tenant_id=getattr(tenant, "pk", tenant), type=event_type, data=data, created_at=timezone.now()
    )
    integrations_sql.event_record(event, _deliver_after_commit)
    return event.pk


def _deliver_after_commit(delivery_ids: list[int]) -> None:
    for delivery_id in delivery_ids:
        enqueue(deliver_webhook, delivery_id)


events.register_sink(webhook_event_record)


# --- services used by the admin ----------------------------------------------------------------


def webhook_endpoint_disable(*, endpoint: WebhookEndpoint, reason: str) -> WebhookEndpoint:
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if endpoint.enabled:
            endpoint.enabled = False
            endpoint.disabled_at = timezone.now()
            endpoint.disabled_reason = reason[:300]
            endpoint._change_reason = f"disabled: {reason}"[:100]
            endpoint.save(update_fields=["enabled", "disabled_at", "disabled_reason"])
    return endpoint


def webhook_endpoint_enable(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if not endpoint.enabled:
            endpoint.enabled = True
            endpoint.disabled_at = None
            endpoint.disabled_reason = ""
            endpoint._change_reason = "enabled"
            endpoint.save(update_fields=["enabled", "disabled_at", "disabled_reason"])
    return endpoint


def webhook_delivery_resend(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the delivery's event to its endpoint again, as a new delivery with its own attempts."""
    with transaction.atomic():
        resent = WebhookDelivery.objects.create(
            tenant_id=delivery.tenant_id,
            event_id=delivery.event_id,
            endpoint_id=delivery.endpoint_id,
            resent_from=delivery,
        )
        enqueue(deliver_webhook, resent.pk)
    return resent


# --- delivery ------------------------------------------------------------------------------------


class WebhookAddressRefused(OSError):
    """The delivery's host is not a public address: refused before connecting, nothing sent."""


def _connect_public(host: str, port: int, timeout, source_address) -> socket.socket:
    """Resolve `host` once, refuse it unless every address is public, then connect to those exact addresses.

    Refusing before any connection leaves nothing to probe (an open and a closed internal port look the
    same), and connecting to the addresses just checked leaves no window for DNS rebinding. A name mixing
    public and private addresses is refused as a whole.
    """
    resolved = list(dict.fromkeys(info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))
    private = [address for address in resolved if not is_public_address(address)]
    if private:
        logger.warning("webhook host %s resolves to %s: not a public address, not connecting", host, private)
        raise WebhookAddressRefused(f"{host} resolves to a private, loopback or reserved address")
    error: OSError = OSError(f"{host} resolves to no address")
    for address in resolved:
        try:
            sock = socket.create_connection((address, port), timeout, source_address)
        except OSError as exc:
            error = exc
            continue
        peer = sock.getpeername()[0]
        if not is_public_address(peer):  # cannot happen with the address above; kept as the last word
            sock.close()
            raise WebhookAddressRefused(f"{host} connected to a non-public address")
        return sock
    raise error


class _CheckedHTTPConnection(http.client.HTTPConnection):
    """Connects only to public addresses (`_connect_public`); Host header and TLS SNI keep the URL's name."""

    def connect(self):
        if webhook_private_hosts_allowed():
            return super().connect()
        sys.audit("http.client.connect", self, self.host, self.port)
        self.sock = _connect_public(self.host, self.port, self.timeout, self.source_address)
        with contextlib.suppress(OSError):  # as http.client does; some systems lack TCP_NODELAY
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _CheckedHTTPSConnection(http.client.HTTPSConnection, _CheckedHTTPConnection):
    """HTTPSConnection.connect calls super().connect(), the checked connect above by this MRO, then wraps
    TLS with the URL's host name (SNI and certificate checked as usual)."""


class _CheckedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_CheckedHTTPConnection, req)


class _CheckedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_CheckedHTTPSConnection, req, context=self._context)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery: the signed POST is never replayed to another URL."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _build_opener() -> urllib.request.OpenerDirector:
    """Only http(s), connected directly: no ftp/file/data handlers, and no proxy from the environment
    (through a proxy the peer would be the proxy, and the address check would prove nothing)."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.UnknownHandler(),
        _CheckedHTTPHandler(),
        _CheckedHTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        _NoRedirect(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


_opener = _build_opener()


def _post(url: str, body: bytes, headers: dict, timeout: float) -> tuple[int | None, str, str]:
    """POST once: (status code or None, response excerpt, error text)."""
    try:
        # Rows written before these rules, or outside forms, are held to them too; the address is judged
        # by the connection itself (a literal IP included), so there is one authority on it.
        validate_webhook_url_shape(url)
    except ValidationError as exc:
        return None, "", _refused(url, " ".join(exc.messages))
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as response:
            return response.status, response.read(2000).decode("utf-8", "replace"), ""
    except urllib.error.HTTPError as exc:
        try:
            excerpt = exc.read(2000).decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - the body of an error answer is best effort
            excerpt = ""
        return exc.code, excerpt, f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, WebhookAddressRefused):
            return None, "", _refused(url, str(exc.reason))
        return None, "", f"{type(exc).__name__}: {exc}"[:500]
    except Exception as exc:  # noqa: BLE001 - timeouts, refused connections, bad URLs: all are failed attempts
        return None, "", f"{type(exc).__name__}: {exc}"[:500]


def _refused(url: str, reason: str) -> str:
    logger.warning(
        "webhook to %s refused: %s (WEBHOOK_ALLOW_PRIVATE_HOSTS / WEBHOOK_ALLOW_HTTP allow it in development)",
        url,
        reason,
    )
    return f"Refused, not sent: {reason}"[:500]


def webhook_delivery_attempt(*, delivery_id: int) -> WebhookDelivery | None:
    """Make the next attempt of a delivery if it is due (None when it is not, or another worker has it)."""
    now = timezone.now()
    timeout = _setting("WEBHOOK_TIMEOUT_SECONDS", 10)
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery_id)
        .filter(
            Q(status__in=[Status.PENDING, Status.RETRYING], next_attempt_at__lte=now)
            | Q(status=Status.SENDING, locked_until__lt=now)
        )
        .update(status=Status.SENDING, attempts=F("attempts") + 1, locked_until=now + timedelta(seconds=timeout + 60))
    )
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint", "event__tenant").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=Status.SKIPPED, locked_until=None)
        delivery.status = Status.SKIPPED
        return delivery

    body = envelope_bytes(delivery.event)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "loyalty-webhooks/1.0",
        SIGNATURE_HEADER: sign(endpoint.secret, body, int(time.time())),
        "Loyalty-Event-Id": delivery.event.public_id,
        "Loyalty-Event-Type": delivery.event.type,
    }
    started_at = timezone.now()
    clock = time.monotonic()
    status_code, excerpt, error = _post(endpoint.url, body, headers, timeout)
    duration_ms = int((time.monotonic() - clock) * 1000)
    succeeded = status_code is not None and 200 <= status_code < 300
    attempt_number = delivery.attempts
    finished = timezone.now()
    delay = None

    with transaction.atomic():
        WebhookAttempt.objects.create(
            tenant_id=delivery.tenant_id,
            delivery=delivery,
            number=attempt_number,
            started_at=started_at,
            duration_ms=duration_ms,
            status_code=status_code,
            error=error,
            response_body=excerpt,
        )
        update = {"last_status_code": status_code, "last_error": error, "locked_until": None}
        if succeeded:
            update.update(status=Status.SUCCEEDED, succeeded_at=finished)
        elif attempt_number >= max_attempts():
            update.update(status=Status.FAILED)
        else:
            delay = retry_delay(attempt_number)
            update.update(status=Status.RETRYING, next_attempt_at=finished + timedelta(seconds=delay))
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**update)
        if update["status"] == Status.FAILED:
            logger.warning("webhook endpoint %s disabled after %s failed attempts", endpoint.pk, attempt_number)
            webhook_endpoint_disable(
                endpoint=endpoint,
                reason=f"Disabled after {attempt_number} failed attempts of delivery {delivery.pk} ({error}).",
            )
    if delay is not None and delay <= _setting("WEBHOOK_DIRECT_RETRY_MAX_SECONDS", 600):
        publish_task(deliver_webhook, delivery.pk, countdown=delay)  # if refused, the sweep retries when due
    delivery.refresh_from_db()
    return delivery


@shared_task(name="integrations.deliver_webhook", acks_late=True, time_limit=120, soft_time_limit=100)
def deliver_webhook(delivery_id: int) -> str | None:
    delivery = webhook_delivery_attempt(delivery_id=delivery_id)
    return delivery.status if delivery else None


def webhook_deliveries_due(*, limit: int = 1000) -> list[int]:
    now = timezone.now()
    return list(
        WebhookDelivery.objects.filter(
            Q(status__in=[Status.PENDING, Status.RETRYING], next_attempt_at__lte=now)
            | Q(status=Status.SENDING, locked_until__lt=now)
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


@shared_task(name="integrations.dispatch_due_webhooks", time_limit=300, soft_time_limit=280)
def dispatch_due_webhooks() -> int:
    """Beat, every minute: enqueue deliveries whose retry is due or whose worker died mid-attempt."""
    due = webhook_deliveries_due()
    for delivery_id in due:
        if not publish_task(deliver_webhook, delivery_id):
            break  # the broker is down: the next sweep takes them all again
    return len(due)
