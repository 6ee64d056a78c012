"""Erasure reaches the copies other apps hold (`members.erasure` hooks): the webhook outbox, its delivery attempts,
stored API answers, order answers and evaluation traces; nobody else's copies change."""

import pytest
from rest_framework.test import APIClient

from common.events import EVENT_TYPES
from integrations.models import Event, IdempotencyRecord, WebhookAttempt, WebhookDelivery
from loyalty.models import Order
from members.models import Member
from members.services import member_erase, member_upsert
from rewards.models import EvaluationTrace
from tests.factories import (
    CampaignFactory,
    CodeFactory,
    TenantFactory,
    WebhookEndpointFactory,
    api_key_for,
    earning_setup,
)

pytestmark = pytest.mark.django_db


def api_for(tenant) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(tenant, throttle_rate='100000/min')[1]}")
    return client


def _create(api, external_id: str, email: str, **fields):
    body = {"email": email, "name": "Ada Lovelace", **fields}
    response = api.put(f"/api/v1/members/{external_id}", body, format="json", HTTP_IDEMPOTENCY_KEY=f"put-{email}")
    assert response.status_code == 201, response.content
    return Member.objects.get(tenant__slug=api.tenant_slug, external_id=external_id), body


@pytest.fixture
def api(tenant):
    client = api_for(tenant)
    client.tenant_slug = tenant.slug
    WebhookEndpointFactory(tenant=tenant, event_types=list(EVENT_TYPES))
    return client


def _history(api, tenant, member):
    """An order (points earned, its stored answer) and a redemption (its trace and event) of `member`."""
    order = {"order_id": f"o-{member.pk}", "member": member.external_id, "amount": "40.00", "currency": "EUR"}
    assert api.post("/api/v1/orders", order, format="json").status_code == 201
    code = CodeFactory(campaign=CampaignFactory(tenant=tenant), code=f"TEN-{member.pk}")
    body = {"order_id": f"r-{member.pk}", "member": member.external_id, "order": {"amount": "50.00"}}
    redeemed = api.post("/api/v1/redemptions", {**body, "codes": [code.code]}, format="json")
    assert redeemed.status_code == 201, redeemed.content


def _created_event(tenant, external_id: str) -> Event:
    return Event.objects.get(tenant=tenant, type="member.created", data__external_id=external_id)


def test_the_outbox_and_stored_answers_lose_the_email_and_the_name(api, tenant):
    earning_setup(tenant)
    ada, body = _create(api, "crm-42", "ada@example.com")
    bob, _ = _create(api, "crm-43", "bob@example.com")
    event = _created_event(tenant, "crm-42")
    assert event.data["email"] == "ada@example.com"
    delivery = WebhookDelivery.objects.get(event=event)
    WebhookAttempt.objects.create(
        tenant=tenant, delivery=delivery, number=50, started_at=event.created_at, status_code=200,
        response_body='{"received": {"email": "ada@example.com"}}',
    )  # fmt: skip
    stored = IdempotencyRecord.objects.get(key="put-ada@example.com")
    assert "ada@example.com" in stored.response_body

    erased, _ = member_erase(member=ada)

    event.refresh_from_db()
    assert event.data["email"] == ""
    assert event.data["referral_code"] == erased.referral_code  # the old one began with the name
    assert event.data["external_id"] == "crm-42"  # kept: reserved, the tenant does not allow reuse
    assert not WebhookAttempt.objects.filter(delivery=delivery).exclude(response_body="").exists()
    # A retry of the first PUT gets what a new request gets now, not the erased member's fields.
    replay = api.put("/api/v1/members/crm-42", body, format="json", HTTP_IDEMPOTENCY_KEY="put-ada@example.com")
    assert replay.status_code == 409
    assert replay.json()["error"]["code"] == "member_erased"
    assert b"ada@example.com" not in replay.content and b"Lovelace" not in replay.content
    # Nobody else's copies change.
    assert _created_event(tenant, "crm-43").data["email"] == "bob@example.com"
    assert "bob@example.com" in IdempotencyRecord.objects.get(key="put-bob@example.com").response_body
    assert bob.email == Member.objects.get(pk=bob.pk).email


def test_a_pseudonym_replaces_the_old_external_id_in_every_copy(api, tenant):
    tenant.erased_external_id_reusable = True
    tenant.save()
    earning_setup(tenant)
    ada, _ = _create(api, "crm-42", "ada@example.com")
    referred, _ = _create(api, "crm-44", "eve@example.com", referred_by="crm-42")
    _history(api, tenant, ada)
    _history(api, tenant, referred)
    named = Event.objects.filter(tenant=tenant, data__member="crm-42")
    assert set(named.values_list("type", flat=True)) >= {"points.earned", "redemption.succeeded"}
    assert EvaluationTrace.objects.filter(member_id=ada.pk, member_external_id="crm-42").exists()

    erased, _ = member_erase(member=ada)
    pseudonym = erased.external_id
    assert pseudonym.startswith("erased-")

    assert not named.exists()
    assert Event.objects.filter(tenant=tenant, data__member=pseudonym).count() >= 2
    assert _created_event(tenant, pseudonym).data["email"] == ""
    assert _created_event(tenant, "crm-44").data["referred_by"] == pseudonym
    assert Order.objects.get(member=ada).result["member"] == pseudonym
    traces = EvaluationTrace.objects.filter(member_id=ada.pk)
    assert {(t.member_external_id, t.document["input"]["member"]) for t in traces} == {(pseudonym, pseudonym)}
    # The referred member's own copies still name them.
    assert Event.objects.filter(tenant=tenant, data__member="crm-44").count() >= 2
    assert Order.objects.get(member=referred).result["member"] == "crm-44"
    assert set(EvaluationTrace.objects.filter(member_id=referred.pk).values_list("member_external_id", flat=True)) == {
        "crm-44"
    }

    # The next member with that id starts with nothing of the erased one's.
    newcomer, _ = _create(api, "crm-42", "new@example.com")
    assert newcomer.pk != ada.pk
    assert api.get("/api/v1/members/crm-42/ledger").json()["results"] == []
    assert not Event.objects.filter(tenant=tenant, data__member="crm-42").exists()


def test_reuse_allowed_after_the_erasure_renames_the_copies_when_the_id_is_taken(api, tenant):
    earning_setup(tenant)
    ada, _ = _create(api, "crm-42", "ada@example.com")
    _history(api, tenant, ada)
    member_erase(member=ada)
    assert Event.objects.filter(tenant=tenant, data__member="crm-42").exists()  # reserved: kept as it was

    tenant.erased_external_id_reusable = True
    tenant.save()
    _create(api, "crm-42", "new@example.com")
    pseudonym = Member.objects.get(pk=ada.pk).external_id
    assert pseudonym.startswith("erased-")
    assert not Event.objects.filter(tenant=tenant, data__member="crm-42").exists()
    assert Order.objects.get(member=ada).result["member"] == pseudonym
    assert _created_event(tenant, "crm-42").data["email"] == "new@example.com"  # the newcomer's own
    assert _created_event(tenant, pseudonym).data["email"] == ""


def test_another_tenants_copies_with_the_same_external_id_are_untouched(api, tenant):
    other = TenantFactory()
    theirs, _ = member_upsert(tenant=other, external_id="crm-42", email="ada@other.example")
    ada, _ = _create(api, "crm-42", "ada@example.com")
    member_erase(member=ada)
    assert _created_event(other, "crm-42").data["email"] == "ada@other.example"
    assert _created_event(tenant, "crm-42").data["email"] == ""
