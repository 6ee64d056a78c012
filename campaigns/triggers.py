"""Automatic distributions: a campaign's triggers publish a code to a member when something happens to them.

Event kinds (joined, tier reached, Nth paid order, order amount, custom event) listen to `common.events` inside
the writer's transaction and only enqueue a task with ids after its commit, so a trigger can never fail or slow
down the member's or the order's write. Daily kinds (birthday, segment entry) run from an hourly sweep, once per
tenant-local day. Every firing goes through `trigger_fire`: one durable transaction that locks the campaign
(which serialises the firings of its triggers, so "once per member" and "at most once per N days" hold), hands
out the code through `publication_assign` (one code per member per campaign, the campaign's dates, kill switch
and free codes) and records the firing, published or skipped with its reason. The unique (trigger, member,
occurrence key) makes a retried task or two overlapping daily runs fire once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from campaigns.lock_objects import campaign_for_update
from campaigns.models import Campaign, CampaignTrigger, Channel, TriggerFiring, TriggerKind, TriggerRepeat
from campaigns.models import TriggerSegmentMember as SegmentState
from campaigns.services import publication_assign
from common import events
from common.errors import ApplicationError
from common.side_effects import enqueue
from common.validation import FieldErrors
from loyalty.models import Order, Tier
from members.models import Member, Tenant
from members.selectors import segment_members

logger = logging.getLogger(__name__)

Skipped = TriggerFiring.State.SKIPPED
Published = TriggerFiring.State.PUBLISHED

# Why a firing gave no new code (stable codes; the publication service's refusals pass through as they are).
NO_CONSENT = "no_email_consent"
ALREADY_HOLDS_CODE = "already_holds_code"

EVENT_KINDS = {
    "member.created": (TriggerKind.MEMBER_JOINED,),
    "member.tier_changed": (TriggerKind.TIER_REACHED,),
    "order.paid": (TriggerKind.NTH_ORDER, TriggerKind.ORDER_AMOUNT),
    "custom_event.recorded": (TriggerKind.CUSTOM_EVENT,),
}
DAILY_KINDS = (TriggerKind.BIRTHDAY, TriggerKind.SEGMENT_ENTERED)
CHUNK = 500


def _may_email(member: Member) -> bool:
    """The one consent check of automatic distributions (the code goes out by email)."""
    return bool(member.email) and member.email_consent  # suspended and erased members have their own reasons


# --- configuration --------------------------------------------------------------------------------


def trigger_check(*, trigger: CampaignTrigger) -> dict[str, str]:
    """The field errors of a trigger's settings ({field: message}); empty when it can be saved."""
    errors: dict[str, str] = {}
    kind = trigger.kind
    if trigger.campaign_id and trigger.tenant_id and trigger.campaign.tenant_id != trigger.tenant_id:
        errors["campaign"] = "must be a campaign of the trigger's tenant"
    if kind == TriggerKind.TIER_REACHED:
        if not trigger.tier_code:
            errors["tier_code"] = "required for a tier trigger"
        elif not Tier.objects.filter(tenant_id=trigger.tenant_id, code=trigger.tier_code).exists():
            errors["tier_code"] = "no tier of the tenant has this code"
    if kind == TriggerKind.NTH_ORDER and not trigger.order_number:
        errors["order_number"] = "required: 1 for the first paid order"
    if kind == TriggerKind.ORDER_AMOUNT and (trigger.min_amount is None or trigger.min_amount <= 0):
        errors["min_amount"] = "required: an amount above 0"
    if kind == TriggerKind.CUSTOM_EVENT and not trigger.event_name:
        errors["event_name"] = "required for a custom event trigger"
    if kind == TriggerKind.SEGMENT_ENTERED:
        if trigger.segment_id is None:
            errors["segment"] = "required for a segment trigger"
        elif trigger.tenant_id and trigger.segment.tenant_id != trigger.tenant_id:
            errors["segment"] = "must be a segment of the trigger's tenant"
    if trigger.repeat == TriggerRepeat.EVERY_N_DAYS and not trigger.repeat_days:
        errors["repeat_days"] = "required for 'at most once per N days'"
    return errors


def campaign_trigger_save(*, trigger: CampaignTrigger, user=None) -> CampaignTrigger:
    """Create or change a trigger (the admin's save); 400 `invalid_trigger` with the field errors."""
    found = trigger_check(trigger=trigger)
    if found:
        errors = FieldErrors()
        for name, message in found.items():
            errors.add(name, message)
        errors.raise_if_any("invalid_trigger", "The trigger is not valid.")
    with transaction.atomic():
        trigger._change_reason = f"saved by {user.get_username()}" if user is not None else "saved"
        trigger.save()
    return trigger


# --- firing ---------------------------------------------------------------------------------------


def _published_since(trigger: CampaignTrigger, member: Member, since: dt.datetime | None) -> bool:
    published = TriggerFiring.objects.filter(trigger=trigger, member=member, state=Published)
    return published.filter(created_at__gte=since).exists() if since else published.exists()


def _repeat_allows(trigger: CampaignTrigger, member: Member, now: dt.datetime) -> bool:
    if trigger.repeat == TriggerRepeat.ONCE:
        return not _published_since(trigger, member, None)
    if trigger.repeat == TriggerRepeat.EVERY_N_DAYS:
        return not _published_since(trigger, member, now - dt.timedelta(days=trigger.repeat_days or 1))
    return True


def _refusal(member: Member) -> str | None:
    if member.status == Member.Status.ERASED:
        return "member_erased"
    if member.is_suspended:
        return "member_suspended"
    if not _may_email(member):
        return NO_CONSENT
    return None


def trigger_fire(
    *, trigger: CampaignTrigger, member: Member, occurrence: str, now: dt.datetime | None = None
) -> TriggerFiring | None:
    """Fire `trigger` for `member` for this occurrence -> the firing, or None (fired already, or not due again).

    A firing the repeat policy does not allow (once per member: published before; every N days: too soon) is not
    recorded: the published firing tells that story. Everything else is, published or skipped with its reason.
    """
    from campaigns.tasks import send_code_email  # the tasks module imports this one

    now = now or timezone.now()
    try:
        with transaction.atomic(durable=True):
            campaign = campaign_for_update(campaign=trigger.campaign)  # serialises this campaign's firings
            fired = TriggerFiring.objects.filter(trigger=trigger, member=member, occurrence_key=occurrence)
            if fired.exists() or not _repeat_allows(trigger, member, now):
                return None
            reason, publication = _refusal(member), None
            if reason is None:
                try:
                    with transaction.atomic():
                        publication, created = publication_assign(
                            campaign=campaign, member=member, channel=Channel.EMAIL
                        )
                except ApplicationError as exc:  # campaign_disabled, campaign_ended, no_codes_left
                    reason = exc.code
                else:
                    if not created:
                        reason = ALREADY_HOLDS_CODE
            firing = TriggerFiring.objects.create(
                tenant_id=trigger.tenant_id,
                trigger=trigger,
                campaign_id=trigger.campaign_id,
                member=member,
                occurrence_key=occurrence[:120],
                state=Skipped if reason else Published,
                reason=reason or "",
                publication=publication,
                created_at=now,
            )
            if reason is None:
                enqueue(send_code_email, publication.pk)
            return firing
    except IntegrityError:  # the backstop: a concurrent firing of this occurrence committed first
        return None


# --- event kinds ----------------------------------------------------------------------------------


# Which event kinds each tenant has enabled triggers for, as this worker process last read them: a paid order
# of a tenant without order triggers (most) then queues no task. Read again after TRIGGER_KINDS_SECONDS, and at
# once in the process that changed a trigger; other processes see a new trigger within that time.
_listened: dict[int, tuple[float, frozenset[str]]] = {}


def _listened_kinds(tenant_id: int) -> frozenset[str]:
    now = time.monotonic()
    known = _listened.get(tenant_id)
    if known is not None and known[0] > now:
        return known[1]
    kinds = frozenset(
        CampaignTrigger.objects.for_tenant(tenant_id).filter(enabled=True).values_list("kind", flat=True).distinct()
    )
    _listened[tenant_id] = (now + settings.TRIGGER_KINDS_SECONDS, kinds)
    return kinds


def _forget_listened(sender, instance: CampaignTrigger, **kwargs) -> None:
    _listened.pop(instance.tenant_id, None)


def forget_listened_kinds() -> None:
    """Forget every tenant's (the tests start each from the database)."""
    _listened.clear()


def _on_event(tenant, event_type: str, data: dict) -> None:
    """Bus listener, inside the writer's transaction: only enqueue, after commit, a task with ids (when the
    tenant has an enabled trigger of a kind this event can fire)."""
    from campaigns.tasks import fire_event_triggers

    tenant_id = getattr(tenant, "pk", tenant)
    if _listened_kinds(tenant_id).isdisjoint(EVENT_KINDS[event_type]):
        return
    if event_type == "member.created":
        ids = {"external_id": data["external_id"]}
    elif event_type == "member.tier_changed":
        ids = {"external_id": data["member"], "tier": (data.get("to") or {}).get("code")}
    else:
        ids = dict(data)
    ids["at"] = timezone.now().isoformat()  # the occurrence's time, the same on every retry of the task
    enqueue(fire_event_triggers, tenant_id, event_type, ids)


def register() -> None:
    for event_type in EVENT_KINDS:
        events.subscribe(event_type, _on_event)
    post_save.connect(_forget_listened, sender=CampaignTrigger, dispatch_uid="campaigns.triggers.listened")
    post_delete.connect(_forget_listened, sender=CampaignTrigger, dispatch_uid="campaigns.triggers.listened.delete")


def _member_of(tenant_id: int, data: dict) -> Member | None:
    members = Member.objects.for_tenant(tenant_id)
    if "member_id" in data:
        return members.filter(pk=data["member_id"]).first()
    return members.filter(external_id=data.get("external_id")).first()


def _occurrence(trigger: CampaignTrigger, member: Member, data: dict) -> str | None:
    """The occurrence key of this event for `trigger`, or None when the event does not match it."""
    kind = trigger.kind
    if kind == TriggerKind.MEMBER_JOINED:
        return "joined"
    if kind == TriggerKind.TIER_REACHED:
        return f"tier:{data['tier']}:{data['at']}" if data.get("tier") == trigger.tier_code else None
    if kind == TriggerKind.CUSTOM_EVENT:
        return f"event:{data['event_id']}" if data.get("name") == trigger.event_name else None
    if kind == TriggerKind.ORDER_AMOUNT:
        try:
            matches = Decimal(data["amount"]) >= trigger.min_amount
        except (InvalidOperation, KeyError, TypeError):
            matches = False
        return f"order:{data['order_id']}" if matches else None
    if kind == TriggerKind.NTH_ORDER:
        orders = Order.objects.filter(tenant_id=trigger.tenant_id, member=member)
        this = orders.filter(order_id=data["order_id"]).values_list("pk", flat=True).first()
        if this is None or orders.filter(pk__lte=this).count() != trigger.order_number:
            return None
        return f"order:{data['order_id']}"
    return None


def triggers_fire_for_event(*, tenant_id: int, event_type: str, data: dict) -> list[TriggerFiring]:
    """The firings of the tenant's enabled triggers that this event matches (the task's body)."""
    triggers = list(
        CampaignTrigger.objects.for_tenant(tenant_id)
        .filter(kind__in=EVENT_KINDS.get(event_type, ()), enabled=True)
        .select_related("campaign")
        .order_by("pk")
    )
    if not triggers:
        return []
    member = _member_of(tenant_id, data)
    if member is None:
        return []
    firings = []
    for trigger in triggers:
        occurrence = _occurrence(trigger, member, data)
        if occurrence is not None:
            firing = trigger_fire(trigger=trigger, member=member, occurrence=occurrence)
            if firing is not None:
                firings.append(firing)
    return firings


# --- daily kinds ----------------------------------------------------------------------------------


def _not_fired(trigger: CampaignTrigger, key: str):
    """Members of the trigger's tenant without a firing of `key` (nor, for once-per-member, any publication)."""
    firings = TriggerFiring.objects.filter(trigger=trigger, member=OuterRef("pk"))
    condition = Q(occurrence_key=key)
    if trigger.repeat == TriggerRepeat.ONCE:
        condition |= Q(state=Published)
    return ~Exists(firings.filter(condition))


def _birthdays_due(trigger: CampaignTrigger, today: dt.date):
    born = Q(birth_date__month=today.month, birth_date__day=today.day)
    if (today.month, today.day) == (2, 28) and not _is_leap(today.year):
        born |= Q(birth_date__month=2, birth_date__day=29)  # celebrated on the 28th in common years
    return (
        Member.objects.for_tenant(trigger.tenant_id)
        .filter(born)
        .exclude(status=Member.Status.ERASED)
        .filter(_not_fired(trigger, str(today.year)))
    )


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _fire_each(trigger: CampaignTrigger, member_ids: list[int], key: str, now: dt.datetime) -> int:
    fired = 0
    for start in range(0, len(member_ids), CHUNK):
        for member in Member.objects.filter(pk__in=member_ids[start : start + CHUNK]).order_by("pk"):
            if trigger_fire(trigger=trigger, member=member, occurrence=key, now=now) is not None:
                fired += 1
    return fired


def _birthday_run(trigger: CampaignTrigger, today: dt.date, now: dt.datetime) -> int:
    ids = list(_birthdays_due(trigger, today).order_by("pk").values_list("pk", flat=True))
    return _fire_each(trigger, ids, str(today.year), now)


def _segment_run(trigger: CampaignTrigger, today: dt.date, now: dt.datetime) -> int:
    """Today's members of the segment minus those of the last run entered; those who left are forgotten."""
    current = segment_members(trigger.segment, now).exclude(status=Member.Status.ERASED)
    state = SegmentState.objects.filter(trigger=trigger)
    entered = list(
        current.filter(~Exists(state.filter(member=OuterRef("pk")))).order_by("pk").values_list("pk", flat=True)
    )
    state.exclude(member__in=current.values("pk")).delete()
    baseline = trigger.segment_baseline_at is None  # the first run: they are in already, they did not enter
    fired = 0 if baseline else _fire_each(trigger, entered, f"entered:{today.isoformat()}", now)
    for start in range(0, len(entered), CHUNK):
        rows = [SegmentState(trigger=trigger, member_id=pk, since=now) for pk in entered[start : start + CHUNK]]
        SegmentState.objects.bulk_create(rows, ignore_conflicts=True)
    if baseline:
        CampaignTrigger.objects.filter(pk=trigger.pk, segment_baseline_at__isnull=True).update(segment_baseline_at=now)
    return fired


def triggers_run_daily(*, tenant_id: int, now: dt.datetime | None = None) -> int:
    """The tenant's birthday and segment-entry triggers not yet checked on its local today -> firings made.

    Safe to run twice at once: the firings' unique key holds, and the day is marked checked after the work.
    """
    now = now or timezone.now()
    tenant = Tenant.objects.get(pk=tenant_id)
    today = now.astimezone(tenant.tz).date()
    triggers = (
        CampaignTrigger.objects.for_tenant(tenant)
        .filter(kind__in=DAILY_KINDS, enabled=True)
        .filter(Q(checked_on__isnull=True) | Q(checked_on__lt=today))
        .select_related("campaign", "segment")
        .order_by("pk")
    )
    fired = 0
    for trigger in triggers:
        run = _birthday_run if trigger.kind == TriggerKind.BIRTHDAY else _segment_run
        fired += run(trigger, today, now)
        CampaignTrigger.objects.filter(pk=trigger.pk).update(checked_on=today)
    return fired


def tenants_with_daily_triggers() -> list[int]:
    return list(
        CampaignTrigger.objects.filter(kind__in=DAILY_KINDS, enabled=True)
        .order_by("tenant_id")
        .values_list("tenant_id", flat=True)
        .distinct()
    )


# --- reads ----------------------------------------------------------------------------------------


def campaign_trigger_summary(campaign: Campaign | int) -> dict[str, Any]:
    """What the campaign's triggers did: counts by state and the skips by reason (one query)."""
    rows = (
        TriggerFiring.objects.filter(campaign_id=getattr(campaign, "pk", campaign))
        .values("state", "reason")
        .annotate(n=Count("pk"))
        .order_by()
    )
    summary: dict[str, Any] = {"published": 0, "skipped": 0, "reasons": {}}
    for row in rows:
        summary[row["state"]] += row["n"]
        if row["state"] == Skipped:
            summary["reasons"][row["reason"]] = summary["reasons"].get(row["reason"], 0) + row["n"]
    return summary
