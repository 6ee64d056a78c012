"""What this app holds of an erased member, scrubbed in the erasure's transaction (`members.erasure`).

- The outbox row of `member.created` carries the email: emptied, with the external id and referral code as the
  member now has them; its delivery attempts lose the receiver's answers (a receiver may echo the payload).
- A stored answer of `PUT /members/<external id>` (replayed to a retry for `IDEMPOTENCY_RETENTION_HOURS`) holds
  every personal field: it becomes the answer a new request gets now, 409 `member_erased`.
- When the external id became a pseudonym (the tenant lets erased ids be reused), every event naming the old id
  (`member`, or `referred_by` of a referred member's `member.created`) names the pseudonym: the next member with
  that id must not be taken for this one in a re-sent webhook.

Every lookup goes through an index: (tenant, type, created_at) from the member's creation on for events, the
unique (integration, key) by the tenant's integrations for answers, the delivery's event for attempts.
"""

import datetime as dt
import json

from django.db.models import Q

from common.events import EVENT_TYPES
from integrations.models import Event, IdempotencyRecord, Integration, WebhookAttempt
from members.erasure import Erased, register

# `member.created` is written in the member's own creating transaction: its time is the member's, give or take
# the rest of that transaction.
CREATED_EVENT_WINDOW = dt.timedelta(hours=1)
# The event types whose data name a member by external id (`"member": "<external id>"`): all but the campaigns'
# and `member.created` (which says `external_id`).
MEMBER_EVENT_TYPES = tuple(t for t in EVENT_TYPES if not t.startswith("campaign.") and t != "member.created")
ERASED_ANSWER = json.dumps(
    {"error": {"code": "member_erased", "message": "This member's data was erased.", "details": {}}}
)


def _events(erased: Erased):
    return Event.objects.filter(tenant_id=erased.tenant_id, created_at__gte=erased.created_at - dt.timedelta(minutes=1))


def _created_event_scrub(erased: Erased) -> None:
    window = (erased.created_at - dt.timedelta(minutes=1), erased.created_at + CREATED_EVENT_WINDOW)
    created = Event.objects.filter(tenant_id=erased.tenant_id, type="member.created", created_at__range=window).filter(
        data__external_id=erased.external_id_before
    )
    for event in created:
        event.data = {
            **event.data,
            "external_id": erased.external_id,
            "email": "",
            "referral_code": erased.referral_code,
        }
        Event.objects.filter(pk=event.pk).update(data=event.data)
        WebhookAttempt.objects.filter(delivery__event=event).exclude(response_body="").update(response_body="")


def _renamed_references(erased: Erased) -> None:
    """The events that name the old external id (as `member`, or as the referrer) name the pseudonym."""
    before, after = erased.external_id_before, erased.external_id
    named = _events(erased).filter(
        Q(type__in=MEMBER_EVENT_TYPES, data__member=before) | Q(type="member.created", data__referred_by=before)
    )
    changed = []
    for event in named.only("id", "type", "data").iterator(chunk_size=1000):
        key = "referred_by" if event.type == "member.created" else "member"
        event.data = {**event.data, key: after}
        changed.append(event)
    Event.objects.bulk_update(changed, ["data"], batch_size=1000)


def _stored_answers_scrub(erased: Erased) -> None:
    integrations = Integration.objects.filter(tenant_id=erased.tenant_id).values("pk")
    suffix = f"/members/{erased.external_id_before}"
    answers = IdempotencyRecord.objects.filter(
        integration__in=integrations, method="PUT", state=IdempotencyRecord.State.COMPLETED
    ).filter(Q(path__endswith=suffix) | Q(path__endswith=f"{suffix}/"))
    answers.exclude(response_body=ERASED_ANSWER).update(response_status=409, response_body=ERASED_ANSWER)


def member_copies_erase(erased: Erased) -> None:
    if erased.external_id_changed:
        _renamed_references(erased)
    _created_event_scrub(erased)
    _stored_answers_scrub(erased)


register(member_copies_erase)
