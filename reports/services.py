"""The reports' writes besides the rollups: digest subscriptions and the claim that sends each period once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from members.models import Tenant
from reports.models import DigestSent, ReportSubscription

# A claim whose email never went out (the run died between claim and send) is taken over after this long:
# well above the time one digest takes to build and send.
STALE_CLAIM = dt.timedelta(minutes=30)


def subscription_subscribe(*, user, tenant: Tenant, frequency: str, filters: dict[str, Any]) -> ReportSubscription:
    """Subscribe `user` to the digest of these filters (again, if they had stopped it); one row per
    (user, tenant, frequency, filters), so a second click changes nothing."""
    with transaction.atomic():
        subscription, created = ReportSubscription.objects.get_or_create(
            user=user, tenant=tenant, frequency=frequency, filters=filters
        )
        if not created and not subscription.active:
            ReportSubscription.objects.filter(pk=subscription.pk, active=False).update(active=True)
            subscription.active = True
    return subscription


def subscription_cancel(*, subscription: ReportSubscription) -> None:
    """Stop a digest (kept, inactive: its sent periods stay recorded, subscribing again resumes it)."""
    ReportSubscription.objects.filter(pk=subscription.pk).update(active=False)
    subscription.active = False


def digest_claim(
    *, subscription: ReportSubscription, period_start: dt.date, period_end: dt.date, now: dt.datetime | None = None
) -> DigestSent | None:
    """Claim a period for sending, or None when another run has it (or sent it).

    The unique (subscription, period_start) decides: of two runs at once, one inserts and the other gets the
    conflict. A claim never marked sent and older than `STALE_CLAIM` is taken over with a conditional UPDATE,
    which again only one run wins.
    """
    now = now or timezone.now()
    try:
        with transaction.atomic():
            digest, created = DigestSent.objects.get_or_create(
                subscription=subscription,
                period_start=period_start,
                defaults={"period_end": period_end, "claimed_at": now},
            )
    except IntegrityError:  # the other run inserted between our SELECT and INSERT
        return None
    if created:
        return digest
    if digest.sent_at is not None or digest.claimed_at > now - STALE_CLAIM:
        return None
    taken = DigestSent.objects.filter(pk=digest.pk, sent_at__isnull=True, claimed_at=digest.claimed_at).update(
        claimed_at=now
    )
    if not taken:
        return None
    digest.claimed_at = now
    return digest


def digest_mark_sent(*, digest: DigestSent, now: dt.datetime | None = None) -> None:
    now = now or timezone.now()
    DigestSent.objects.filter(pk=digest.pk).update(sent_at=now)
    digest.sent_at = now


def digest_release(*, digest: DigestSent) -> None:
    """Give a claim back when its email could not be sent, so that the next run tries again."""
    DigestSent.objects.filter(pk=digest.pk, sent_at__isnull=True).delete()
