"""Scheduled digests: each active subscription gets, once per period, an HTML email (with a text part) of the
dashboard's figures for that period and a small chart image drawn here (Pillow), embedded inline by Content-ID.

Periods, in the tenant's time zone: weekly = the previous Monday to Sunday, monthly = the previous calendar month.
A period is due once it is over and ended after the subscription was made. The sweep (`digests_send_due`, run by
beat every hour) claims a period before sending it (`services.digest_claim`): a beat restart or two sweeps at
once send it once. Recipients are checked at send time: active staff who still have the dashboard's right and the
tenant, with an email address.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from decimal import Decimal
from email.mime.image import MIMEImage

from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone
from PIL import Image, ImageDraw, ImageFont

from members.admin_tenancy import tenants_for_user
from reports import services
from reports.dashboard import PERMISSION, figure_sections, report_filters
from reports.models import ReportSubscription
from reports.selectors import Report, ReportRange, report_database

logger = logging.getLogger(__name__)

CHART_CID = "report-digest-chart"
CHART_SIZE = (560, 180)


def digest_period(frequency: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """The last complete period before `today` (a day in the tenant's zone): (first day, last day)."""
    if frequency == ReportSubscription.Frequency.WEEKLY:
        monday = today - dt.timedelta(days=today.weekday())
        return monday - dt.timedelta(days=7), monday - dt.timedelta(days=1)
    if frequency == ReportSubscription.Frequency.MONTHLY:
        last = today.replace(day=1) - dt.timedelta(days=1)
        return last.replace(day=1), last
    raise ValueError(frequency)


def recipient_allowed(subscription: ReportSubscription) -> bool:
    """Whether the subscriber may still get this tenant's figures: active staff, the right, the tenant, an address."""
    user = subscription.user
    if not (user.is_active and user.is_staff and user.email):
        return False
    if not user.has_perm(PERMISSION):
        return False
    return tenants_for_user(user).filter(pk=subscription.tenant_id).exists()


def chart_png(periods: list[dict]) -> bytes:
    """Bars of the order value per day, with the peak written above: small enough for any mail client."""
    width, height = CHART_SIZE
    left, right, top, bottom = 10, 10, 22, 20
    image = Image.new("RGB", CHART_SIZE, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    values = [Decimal(p["value"]) for p in periods]
    peak = max(values, default=Decimal(0))
    draw.line([(left, height - bottom), (width - right, height - bottom)], fill="#888888")
    if periods:
        step = (width - left - right) / len(periods)
        for n, value in enumerate(values):
            x0 = left + n * step + max(step * 0.15, 0.5)
            x1 = left + (n + 1) * step - max(step * 0.15, 0.5)
            bar = 0 if not peak else float(value / peak) * (height - top - bottom)
            if bar:
                draw.rectangle([(x0, height - bottom - bar), (max(x1, x0 + 1), height - bottom)], fill="#417690")
        draw.text((left, 4), f"max {peak:.2f}", fill="#333333", font=font)
        draw.text((left, height - bottom + 4), periods[0]["start"], fill="#333333", font=font)
        draw.text((width - right - 70, height - bottom + 4), periods[-1]["start"], fill="#333333", font=font)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def digest_email(subscription: ReportSubscription, first: dt.date, last: dt.date) -> EmailMultiAlternatives:
    tenant = subscription.tenant
    using = report_database()
    report = Report(ReportRange(tenant, first, last), report_filters(tenant, subscription.filters, using), using=using)
    summary = report.summary()
    series = report.timeseries("day")
    context = {
        "subscription": subscription,
        "tenant": tenant,
        "first": first.isoformat(),
        "last": last.isoformat(),
        "summary": summary,
        "sections": figure_sections(summary),
        "filters": subscription.filters,
        "chart_cid": CHART_CID,
    }
    subject = render_to_string("emails/report_digest_subject.txt", context).strip()
    email = EmailMultiAlternatives(
        subject, render_to_string("emails/report_digest.txt", context), to=[subscription.user.email]
    )
    email.attach_alternative(render_to_string("emails/report_digest.html", context), "text/html")
    email.mixed_subtype = "related"  # the image belongs to the HTML part (cid:), not a download
    image = MIMEImage(chart_png(series["periods"]), "png")
    image.add_header("Content-ID", f"<{CHART_CID}>")
    image.add_header("Content-Disposition", "inline", filename="chart.png")
    email.attach(image)
    return email


def digest_send(*, subscription_id: int, now: dt.datetime | None = None) -> bool:
    """Send the subscription's due period if no other run has; True when this call sent it."""
    now = now or timezone.now()
    subscription = (
        ReportSubscription.objects.select_related("user", "tenant").filter(pk=subscription_id, active=True).first()
    )
    if subscription is None or not recipient_allowed(subscription):
        return False
    tenant = subscription.tenant
    first, last = digest_period(subscription.frequency, now.astimezone(tenant.tz).date())
    if ReportRange(tenant, first, last).end <= subscription.created_at:
        return False  # the period ended before the subscription: the first digest is the next one
    digest = services.digest_claim(subscription=subscription, period_start=first, period_end=last, now=now)
    if digest is None:
        return False
    try:
        email = digest_email(subscription, first, last)
        email.send()
    except LookupError:  # a segment the subscription names is gone: do not send a wider report
        logger.warning("digest %s not sent: a filter names a deleted segment", subscription.pk)
        services.digest_release(digest=digest)
        return False
    except Exception:
        services.digest_release(digest=digest)
        raise
    services.digest_mark_sent(digest=digest)
    return True


def digests_send_due(now: dt.datetime | None = None) -> int:
    """Send every due digest; one failing subscription is logged and does not stop the others. Returns how many
    were sent."""
    sent = 0
    ids = list(ReportSubscription.objects.filter(active=True).order_by("pk").values_list("pk", flat=True))
    for subscription_id in ids:
        try:
            sent += digest_send(subscription_id=subscription_id, now=now)
        except Exception:  # noqa: BLE001 - the claim was released; the next run retries this one
            logger.exception("digest of subscription %s failed", subscription_id)
    return sent
