"""Send a campaign's codes to a segment now, and export a campaign's publications and codes for a mail tool.

A send lists the segment's members once, when it starts (one `SegmentSendRecipient` row each, written by one
INSERT ... SELECT that skips members already listed), then a task works through the pending rows in batches:
it claims a batch (a conditional UPDATE after `SELECT ... FOR UPDATE SKIP LOCKED`, so two runs never share a
row), marks in two set-based UPDATEs who is skipped (no email consent, or already holding a code of the
campaign), and gives everyone else a code through `publication_create` (limits, the campaign lock and "the same
code again for a member who holds one" all hold), recording the outcome in the publication's own transaction.
The email goes after that commit, consent checked again then. A row leaves "pending" only once, so re-running a
send, or running it twice at once, emails nobody twice.
"""

from __future__ import annotations

import csv
import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from campaigns.emails import code_email_send
from campaigns.models import Campaign, Channel, Code, Publication, SegmentSend, SegmentSendRecipient
from campaigns.services import publication_create
from common.errors import ApplicationError
from common.side_effects import enqueue
from common.validation import FieldErrors
from members.models import Segment
from members.selectors import segment_members

BATCH_SIZE = 200
BATCHES_PER_RUN = 25  # then the task queues itself again: each run stays well under its time limit
STALE_CLAIM = dt.timedelta(minutes=15)
MAX_MESSAGE = 2000
# Refusals that hold for every further member too: the send stops (and can be resumed) instead of failing all.
STOPPING_REFUSALS = {"no_codes_left", "campaign_ended", "campaign_disabled"}

State = SegmentSendRecipient.State
Status = SegmentSend.Status
COUNTED_STATES = (State.PENDING, State.CLAIMED, State.SENT, State.SKIPPED_CONSENT, State.SKIPPED_HELD, State.FAILED)


# --- starting, cancelling ----------------------------------------------------------------------------------


def segment_send_start(*, campaign: Campaign, segment: Segment, message: str = "", user=None) -> SegmentSend:
    """Create a send of `campaign`'s codes to `segment` and queue its task (after commit).

    The segment must be the campaign's tenant's; one open send per campaign and segment at a time (a second
    start while one runs is refused with 409 `send_in_progress`).
    """
    errors = FieldErrors()
    message = errors.text(message, "message", max_length=MAX_MESSAGE, strip=True)
    errors.check(segment.tenant_id == campaign.tenant_id, "segment", "must be a segment of the campaign's tenant")
    errors.raise_if_any("validation_error", "The send is not valid.")
    from campaigns.tasks import run_segment_send  # the tasks module imports this one

    with transaction.atomic(durable=True):
        Campaign.objects.select_for_update().filter(pk=campaign.pk).values_list("pk").get()  # one start at a time
        open_send = SegmentSend.objects.filter(
            campaign=campaign, segment=segment, status__in=(Status.PENDING, Status.RUNNING)
        ).exists()
        if open_send:
            raise ApplicationError(
                "send_in_progress", "A send of this campaign to this segment is already running.", status=409
            )
        send = SegmentSend.objects.create(
            tenant_id=campaign.tenant_id, campaign=campaign, segment=segment, message=message, created_by=user
        )
        enqueue(run_segment_send, send.pk)
    return send


def segment_send_cancel(*, send: SegmentSend) -> bool:
    """Stop an open send: the members not reached yet stay pending and get nothing. False if it was not open."""
    changed = SegmentSend.objects.filter(pk=send.pk, status__in=(Status.PENDING, Status.RUNNING)).update(
        status=Status.CANCELLED, finished_at=timezone.now()
    )
    return bool(changed)


def segment_send_resume(*, send: SegmentSend) -> bool:
    """Run a stopped send again (after codes were added, say): only its pending members are reached."""
    from campaigns.tasks import run_segment_send

    with transaction.atomic(durable=True):
        changed = SegmentSend.objects.filter(pk=send.pk, status=Status.STOPPED).update(
            status=Status.RUNNING, stop_reason="", finished_at=None
        )
        if changed:
            enqueue(run_segment_send, send.pk)
    return bool(changed)


# --- the run (task) -----------------------------------------------------------------------------------------


def _list_recipients(send: SegmentSend) -> int:
    """The segment's members now, one pending row each (INSERT ... SELECT; members already listed are skipped)."""
    members_sql, params = segment_members(send.segment).order_by().values("id").query.sql_with_params()
    table = SegmentSendRecipient._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (send_id, member_id, state, claim, error) "  # noqa: S608 - names are ours
            f"SELECT %s, listed.id, %s, '', '' FROM ({members_sql}) listed WHERE true "
            "ON CONFLICT (send_id, member_id) DO NOTHING",
            [send.pk, State.PENDING.value, *params],
        )
        return cursor.rowcount


def _recover_stale_claims(send: SegmentSend, now: dt.datetime) -> None:
    """Rows a crashed run claimed: those whose member got a code of the campaign since the send started count
    as sent (their email may have gone: never risk a second one); the others are pending again."""
    stale = SegmentSendRecipient.objects.filter(send=send, state=State.CLAIMED, updated_at__lt=now - STALE_CLAIM)
    given = Publication.objects.filter(
        campaign_id=send.campaign_id, member_id=OuterRef("member_id"), published_at__gte=send.started_at or now
    )
    stale.filter(Exists(given)).update(
        state=State.SENT, error="interrupted: the email may not have gone", updated_at=now
    )
    stale.update(state=State.PENDING, claim="", updated_at=now)


def _claim(send: SegmentSend, size: int, now: dt.datetime) -> str | None:
    token = uuid.uuid4().hex
    with transaction.atomic():
        ids = list(
            SegmentSendRecipient.objects.filter(send=send, state=State.PENDING)
            .order_by("pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:size]
        )
        if not ids:
            return None
        claimed = SegmentSendRecipient.objects.filter(pk__in=ids, state=State.PENDING).update(
            state=State.CLAIMED, claim=token, updated_at=now
        )
    return token if claimed else ""


def _skip_set_based(send: SegmentSend, token: str, now: dt.datetime) -> None:
    """Who of the claimed batch gets nothing, read now (at the moment of sending), in two UPDATEs."""
    batch = SegmentSendRecipient.objects.filter(send=send, claim=token, state=State.CLAIMED)
    batch.filter(Q(member__email_consent=False) | Q(member__email="")).update(
        state=State.SKIPPED_CONSENT, updated_at=now
    )
    holds = Publication.objects.filter(campaign_id=send.campaign_id, member_id=OuterRef("member_id"))
    batch.filter(Exists(holds)).update(state=State.SKIPPED_HELD, updated_at=now)


def _release(send: SegmentSend, token: str) -> None:
    SegmentSendRecipient.objects.filter(send=send, claim=token, state=State.CLAIMED).update(
        state=State.PENDING, claim=""
    )


def _set_row(row_id: int, state: str, *, publication_id: int | None = None, error: str = "") -> None:
    fields: dict[str, Any] = {"state": state, "updated_at": timezone.now(), "error": error[:300]}
    if publication_id is not None:
        fields["publication_id"] = publication_id
    SegmentSendRecipient.objects.filter(pk=row_id).update(**fields)


def _send_one(send: SegmentSend, row: SegmentSendRecipient) -> str | None:
    """Give the row's member a code and email it; -> the stopping refusal's code, if the campaign refused."""

    def record(result):  # inside the publication's transaction: the code and the row's state commit together
        publication, created = result
        _set_row(row.pk, State.SENT if created else State.SKIPPED_HELD, publication_id=publication.pk)

    try:
        publication, created = publication_create(
            tenant=send.tenant, campaign=send.campaign, member=row.member, channel=Channel.EMAIL, answer=record
        )
    except ApplicationError as exc:
        if exc.code in STOPPING_REFUSALS:
            return exc.code
        _set_row(row.pk, State.FAILED, error=exc.code)
        return None
    if created:
        try:
            emailed = code_email_send(publication_id=publication.pk, message=send.message)
        except Exception as exc:  # noqa: BLE001 - the mail server refused: the code is published, the row says why
            _set_row(row.pk, State.FAILED, error=f"email: {type(exc).__name__}: {exc}")
        else:
            if not emailed:  # consent withdrawn between the batch's check and now
                _set_row(row.pk, State.SKIPPED_CONSENT, error="consent withdrawn while sending: code published")
    return None


def _is_open(send: SegmentSend) -> bool:
    return SegmentSend.objects.filter(pk=send.pk, status__in=(Status.PENDING, Status.RUNNING)).exists()


def segment_send_run(*, send_id: int, batch_size: int = BATCH_SIZE, batches: int = BATCHES_PER_RUN) -> bool:
    """Work through up to `batches` batches of a send's pending members -> whether some are left for another run.

    Safe to run again or twice at once (claimed rows are never shared); a cancelled send stops between rows.
    """
    send = SegmentSend.objects.select_related("campaign", "segment", "tenant").filter(pk=send_id).first()
    if send is None or not send.is_open:
        return False
    now = timezone.now()
    SegmentSend.objects.filter(pk=send.pk, started_at__isnull=True).update(started_at=now)
    SegmentSend.objects.filter(pk=send.pk, status=Status.PENDING).update(status=Status.RUNNING)
    if not send.recipients_listed:
        _list_recipients(send)
        SegmentSend.objects.filter(pk=send.pk).update(recipients_listed=True)
    send.refresh_from_db(fields=["started_at", "status"])
    _recover_stale_claims(send, now)
    for _batch in range(batches):
        if not _is_open(send):
            return False
        now = timezone.now()
        token = _claim(send, batch_size, now)
        if token is None:
            SegmentSend.objects.filter(pk=send.pk, status=Status.RUNNING).exclude(
                Exists(SegmentSendRecipient.objects.filter(send=OuterRef("pk"), state=State.CLAIMED))
            ).update(status=Status.DONE, finished_at=now)
            return False
        if not token:
            continue  # another run took these rows first
        _skip_set_based(send, token, now)
        rows = SegmentSendRecipient.objects.filter(send=send, claim=token, state=State.CLAIMED).select_related("member")
        for row in rows.order_by("pk"):
            if not _is_open(send):
                _release(send, token)
                return False
            refusal = _send_one(send, row)
            if refusal is not None:
                _release(send, token)
                SegmentSend.objects.filter(pk=send.pk, status=Status.RUNNING).update(
                    status=Status.STOPPED, stop_reason=refusal, finished_at=timezone.now()
                )
                return False
    return True


# --- progress ---------------------------------------------------------------------------------------------


def segment_send_progress(send: SegmentSend) -> dict[str, int]:
    """How many members are in each state (one grouped, indexed query)."""
    counts = dict.fromkeys(COUNTED_STATES, 0)
    for state, n in (
        SegmentSendRecipient.objects.filter(send=send).values_list("state").annotate(n=Count("pk")).order_by()
    ):
        counts[state] = n
    counts["total"] = sum(counts[s] for s in COUNTED_STATES)
    return counts


def segment_sends_with_progress(queryset: QuerySet[SegmentSend]) -> QuerySet[SegmentSend]:
    """Sends annotated with their counts per state, for a list page in one query."""
    return queryset.annotate(
        **{f"n_{state}": Count("recipients", filter=Q(recipients__state=state)) for state in COUNTED_STATES}
    )


# --- CSV export -------------------------------------------------------------------------------------------

EXPORT_CHUNK = 5000
PUBLICATION_COLUMNS = [
    ("email", "member__email"),
    ("name", "member__name"),
    ("external_id", "member__external_id"),
    ("email_consent", "member__email_consent"),
    ("code", "code__code"),
    ("channel", "channel"),
    ("published_at", "published_at"),
    ("expires_at", "code__expires_at"),
    ("redeemed_count", "code__redeemed_count"),
]
CODE_COLUMNS = [
    ("code", "code"),
    ("member", "member__external_id"),
    ("email", "member__email"),
    ("published_at", "published_at"),
    ("expires_at", "expires_at"),
    ("usage_limit", "usage_limit"),
    ("redeemed_count", "redeemed_count"),
    ("balance", "balance"),
]


class _Echo:
    """A file-like object whose write returns the line, for csv.writer inside a generator."""

    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = "" if value is None else value
    if isinstance(text, str) and text[:1] in ("=", "+", "-", "@"):
        return "'" + text  # spreadsheet formula injection
    return text


def campaign_export_rows(
    campaign: Campaign, *, what: str = "publications", consenting_only: bool = True
) -> Iterator[str]:
    """CSV lines of a campaign's publications (with member and code) or of its codes, read in chunks from one
    server-side cursor: constant memory however many rows. Publications are those of members who consent to
    email unless `consenting_only` is false."""
    writer = csv.writer(_Echo())
    if what == "codes":
        columns = CODE_COLUMNS
        rows = Code.objects.filter(tenant_id=campaign.tenant_id, campaign=campaign).order_by("pk")
    else:
        columns = PUBLICATION_COLUMNS
        rows = Publication.objects.filter(tenant_id=campaign.tenant_id, campaign=campaign).order_by("pk")
        if consenting_only:
            rows = rows.filter(member__email_consent=True).exclude(member__email="")
    yield writer.writerow([name for name, _ in columns])
    for values in rows.values_list(*(field for _, field in columns)).iterator(chunk_size=EXPORT_CHUNK):
        yield writer.writerow([_cell(v) for v in values])
