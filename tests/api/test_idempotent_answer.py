"""`api.idempotency.Answer`: each write view's answer is stored once, inside its service's transaction.

Runs on SQLite and PostgreSQL; the crash tests (`test_idempotency_crashes.py`, PostgreSQL) kill the
connection at these very points.
"""

import pytest
from django.db import connection

from api import idempotency
from integrations.models import IdempotencyRecord
from tests.api.conftest import client_for
from tests.api.test_idempotency_crashes import WRITES, send
from tests.factories import api_key_for, earning_setup

pytestmark = pytest.mark.django_db


@pytest.fixture
def stores(monkeypatch):
    """Each stored answer, with whether it ran inside a transaction opened by the request."""
    made = []
    real = idempotency._store
    outside = len(connection.atomic_blocks)  # the test's own blocks (none on a transactional test)

    def recording(record, status, body, **kwargs):
        made.append((status, len(connection.atomic_blocks) > outside))
        return real(record, status, body, **kwargs)

    monkeypatch.setattr(idempotency, "_store", recording)
    return made


@pytest.mark.parametrize("endpoint", list(WRITES))
def test_every_write_endpoint_stores_its_answer_once_inside_its_transaction(tenant, endpoint, stores):
    write = WRITES[endpoint](tenant)
    client = client_for(api_key_for(tenant)[1])
    first = send(client, write, "k-1")
    assert write.answered(first), first.content
    assert stores == [(first.status_code, True)]
    assert write.effects() == write.once
    replay = send(client, write, "k-1")
    assert (replay.status_code, replay.content) == (first.status_code, first.content)
    assert replay["Idempotent-Replayed"] == "true"
    # The replay changed nothing: a claim read the first answer before the view ran, or (a deferred claim) the
    # retry's work met the first answer at its commit and rolled back.
    assert write.effects() == write.once
    record = IdempotencyRecord.objects.get(key="k-1")
    assert (record.response_status, record.response_body) == (first.status_code, first.content.decode())


def test_a_record_past_retention_that_the_purge_has_not_deleted_yet_answers_nobody(tenant):
    from datetime import timedelta

    from django.db.models import F

    from integrations.idempotency import retention

    write = WRITES["redemption"](tenant)
    client = client_for(api_key_for(tenant)[1])
    first = send(client, write, "k-1")
    assert first.status_code == 201
    IdempotencyRecord.objects.filter(key="k-1").update(created_at=F("created_at") - retention() - timedelta(minutes=1))
    again = send(client, write, "k-1")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again  # run anew, as after the purge
    assert again.json()["id"] != first.json()["id"]
    assert write.effects() == (2, 2)
    record = IdempotencyRecord.objects.get(key="k-1")  # the old row taken over, not a second one
    assert record.response_body == again.content.decode()


def test_a_refusal_writes_nothing_and_is_stored_after_the_rollback(tenant, stores):
    client = client_for(api_key_for(tenant)[1])
    response = client.post(
        "/api/v1/events", {"member": "nobody", "event": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert response.status_code == 404
    assert stores == [(404, False)]


def test_an_order_id_replayed_under_a_new_key_is_answered_after_the_view(tenant, stores):
    """The service writes nothing then (no transaction of its own to answer in): `complete` stores it."""
    _, _, member = earning_setup(tenant)
    client = client_for(api_key_for(tenant)[1])
    body = {"order_id": "o-1", "member": member.external_id, "amount": "40.00", "currency": "EUR"}
    first = client.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    second = client.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert stores == [(201, True), (200, False)]
    record = IdempotencyRecord.objects.get(key="k-2")
    assert (record.state, record.response_status) == (IdempotencyRecord.State.COMPLETED, 200)


def test_without_a_key_the_view_answers_through_the_same_path(tenant, stores):
    write = WRITES["custom_event"](tenant)
    response = getattr(client_for(api_key_for(tenant)[1]), write.method)(write.path, write.body, format="json")
    assert response.status_code == 201 and response.json()["points_earned"] == 50
    assert stores == []
