"""Reminder sequences: follow-ups N days after a code was published, while it is still unused.

One periodic sweep (`campaigns.tasks.reminders_sweep`, beat) does everything, over the `ReminderDelivery` state
table, never one scheduled task per member:

1. writes a row for every (step, publication) that fell due, one INSERT ... SELECT per active step that skips
   the rows already written (the unique (step, publication) makes each reminder at most once);
2. claims a batch of due rows (`SELECT ... FOR UPDATE SKIP LOCKED`, then a conditional UPDATE on the state), so
   two sweeps running at once never take the same row;
3. stops, in a few set-based UPDATEs, the claimed rows whose code was redeemed or expired, whose campaign is
   off or over, or whose member withdrew email consent (read now, at the moment of sending);
4. emails the rest and marks them sent.
A row claimed by a sweep that died is marked failed, not sent again: a member never gets a reminder twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from django.db import connection, transaction
from django.db.models import DateTimeField, Exists, ExpressionWrapper, F, OuterRef, Q, QuerySet, Value
from django.utils import timezone

from campaigns.emails import code_reminder_send
from campaigns.models import Campaign, Publication, ReminderDelivery, ReminderStep
from common.errors import ApplicationError
from common.validation import FieldErrors

BATCH_SIZE = 500
MAX_BATCHES = 20
STALE_CLAIM = dt.timedelta(minutes=15)
MAX_ATTEMPTS = 3
MAX_DAYS = 365
State = ReminderDelivery.State


@dataclasses.dataclass
class SweepResult:
    written: int = 0
    sent: int = 0
    stopped: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


# --- the steps (admin) ------------------------------------------------------------------------------------


def _clean_step(errors: FieldErrors, campaign, days_after, message, subject, step) -> tuple[str, str]:
    ok = isinstance(days_after, int) and not isinstance(days_after, bool) and 1 <= days_after <= MAX_DAYS
    errors.check(ok, "days_after", f"must be 1 to {MAX_DAYS}")
    message = errors.text(message, "message", required=True, max_length=5000, strip=True)
    subject = errors.text(subject, "subject", max_length=200, strip=True)
    taken = ReminderStep.objects.filter(campaign=campaign, days_after=days_after if ok else -1)
    if step is not None and step.pk is not None:
        taken = taken.exclude(pk=step.pk)
    errors.check(not (ok and taken.exists()), "days_after", "this campaign already has a reminder on that day")
    return message, subject


def reminder_step_errors(
    *, campaign: Campaign, days_after, message, subject: str = "", step: ReminderStep | None = None
) -> dict[str, str]:
    """What `reminder_step_save` would refuse ({field: message}), for forms that check before saving."""
    errors = FieldErrors()
    _clean_step(errors, campaign, days_after, message, subject, step)
    return errors.details


def reminder_step_save(
    *,
    campaign: Campaign,
    days_after: int,
    message: str,
    subject: str = "",
    active: bool = True,
    step: ReminderStep | None = None,
    user=None,
) -> ReminderStep:
    """Create or change a step of a campaign's reminder sequence; 400 `validation_error` with the fields at fault."""
    errors = FieldErrors()
    message, subject = _clean_step(errors, campaign, days_after, message, subject, step)
    errors.raise_if_any("validation_error", "The reminder is not valid.")
    with transaction.atomic(durable=True):
        if step is None or step.pk is None:
            step = ReminderStep(tenant_id=campaign.tenant_id, campaign=campaign)
        elif step.campaign_id != campaign.pk:
            raise ApplicationError("validation_error", "A reminder stays with its campaign.")
        step.days_after, step.message, step.subject, step.active = days_after, message, subject, active
        step._change_reason = "saved"
        if user is not None:
            step._history_user = user
        step.save()
    return step


# --- the sweep --------------------------------------------------------------------------------------------


def _db_datetime(value: dt.datetime):
    return DateTimeField().get_db_prep_value(value, connection)


def _write_due(now: dt.datetime) -> int:
    """A row for every (active step, publication) due by `now`, not retroactive: due after the step was made."""
    table = ReminderDelivery._meta.db_table
    written = 0
    steps = ReminderStep.objects.filter(active=True, campaign__enabled=True).only("pk", "campaign_id", "days_after")
    for step in steps.iterator():
        after = dt.timedelta(days=step.days_after)
        due = (
            Publication.objects.filter(
                campaign_id=step.campaign_id,
                published_at__lte=now - after,
                published_at__gte=step.created_at - after,
            )
            .exclude(Exists(ReminderDelivery.objects.filter(step=step, publication=OuterRef("pk"))))
            .annotate(due=ExpressionWrapper(F("published_at") + Value(after), output_field=DateTimeField()))
            .order_by()
            .values("tenant_id", "id", "campaign_id", "member_id", "code_id", "due")
        )
        sql, params = due.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (tenant_id, step_id, publication_id, campaign_id, member_id, code_id, "  # noqa: S608
                "due_at, state, stop_reason, claim, attempts, created_at) "
                f"SELECT d.tenant_id, %s, d.id, d.campaign_id, d.member_id, d.code_id, d.due, %s, '', '', 0, %s "
                f"FROM ({sql}) d WHERE true ON CONFLICT (step_id, publication_id) DO NOTHING",
                [step.pk, State.PENDING.value, _db_datetime(now), *params],
            )
            written += max(cursor.rowcount, 0)
    return written


def _fail_stale_claims(now: dt.datetime) -> int:
    return ReminderDelivery.objects.filter(state=State.CLAIMED, claimed_at__lt=now - STALE_CLAIM).update(
        state=State.FAILED, stop_reason="interrupted"
    )


def _claim(now: dt.datetime, size: int) -> str | None:
    token = uuid.uuid4().hex
    with transaction.atomic():
        ids = list(
            ReminderDelivery.objects.filter(state=State.PENDING, due_at__lte=now)
            .order_by("due_at", "pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:size]
        )
        if not ids:
            return None
        claimed = ReminderDelivery.objects.filter(pk__in=ids, state=State.PENDING).update(
            state=State.CLAIMED, claim=token, claimed_at=now
        )
    return token if claimed else ""


def stop_conditions(now: dt.datetime) -> list[tuple[str, Q]]:
    """Why a due reminder is not sent, in the order they are checked (each a filter on the delivery)."""
    return [
        ("redeemed", Q(code__redeemed_count__gt=0)),
        ("expired", Q(code__expires_at__lte=now)),
        ("campaign_disabled", Q(campaign__enabled=False)),
        ("campaign_ended", Q(campaign__ends_at__lte=now)),
        ("code_reassigned", ~Q(code__member_id=F("member_id")) | Q(code__member__isnull=True)),
        ("no_consent", Q(member__email_consent=False) | Q(member__email="")),
        ("member_inactive", ~Q(member__status="active")),
    ]


def _stop_set_based(token: str, now: dt.datetime) -> int:
    stopped = 0
    for reason, condition in stop_conditions(now):
        stopped += (
            ReminderDelivery.objects.filter(claim=token, state=State.CLAIMED)
            .filter(condition)
            .update(state=State.STOPPED, stop_reason=reason)
        )
    return stopped


def _send(delivery: ReminderDelivery, now: dt.datetime, result: SweepResult) -> None:
    try:
        emailed = code_reminder_send(delivery=delivery)
    except Exception:  # noqa: BLE001 - the mail server refused: tried again by a later sweep, a few times
        attempts = delivery.attempts + 1
        state = State.PENDING if attempts < MAX_ATTEMPTS else State.FAILED
        ReminderDelivery.objects.filter(pk=delivery.pk, state=State.CLAIMED).update(
            state=state, attempts=attempts, claim="", stop_reason="email_failed"
        )
        result.failed += state == State.FAILED
        return
    if emailed:
        ReminderDelivery.objects.filter(pk=delivery.pk).update(state=State.SENT, sent_at=now, stop_reason="")
        result.sent += 1
    else:
        ReminderDelivery.objects.filter(pk=delivery.pk).update(state=State.STOPPED, stop_reason="no_consent")
        result.stopped += 1


def reminders_send_due(
    *, now: dt.datetime | None = None, batch_size: int = BATCH_SIZE, max_batches: int = MAX_BATCHES
) -> SweepResult:
    """The sweep: write what fell due, then claim, stop or send it in batches (safe to run twice at once)."""
    now = now or timezone.now()
    result = SweepResult(written=_write_due(now))
    result.failed += _fail_stale_claims(now)
    for _batch in range(max_batches):
        token = _claim(now, batch_size)
        if token is None:
            break
        if not token:
            continue
        result.stopped += _stop_set_based(token, now)
        batch = ReminderDelivery.objects.filter(claim=token, state=State.CLAIMED).select_related(
            "step", "code", "member", "campaign", "tenant"
        )
        for delivery in batch.order_by("pk"):
            _send(delivery, now, result)
    return result


# --- reads ------------------------------------------------------------------------------------------------


def reminders_sent_count(campaign: Campaign) -> int:
    """How many reminders of the campaign were sent (one indexed count)."""
    return ReminderDelivery.objects.filter(campaign=campaign, state=State.SENT).count()


def member_reminders(member) -> QuerySet[ReminderDelivery]:
    """The reminders sent to a member, newest first, with what they were about (for the member page)."""
    return (
        ReminderDelivery.objects.filter(tenant_id=member.tenant_id, member=member, state=State.SENT)
        .select_related("step", "code", "campaign")
        .order_by("-sent_at", "-pk")
    )
