"""Explain this decision: each attempt leaves a trace; support reads it in words and can replay it today."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from campaigns.engine import message
from campaigns.models import Campaign
from loyalty.models import Order
from members.services import member_set_status
from rewards.models import EvaluationTrace
from rewards.services.redemption import validate
from rewards.tasks import prune_evaluation_traces
from tests.api.conftest import api, key_pair  # noqa: F401 (fixtures)
from tests.factories import CampaignFactory, CodeFactory, MemberFactory, ProgramFactory
from tests.rewards.test_member_story import agent_of

pytestmark = pytest.mark.django_db


def checkout(member, codes, **extra):
    body = {"order": {"amount": "50.00"}, "codes": codes, **extra}
    if member is not None:
        body["member"] = member.external_id
    return body


@pytest.fixture
def member(tenant):
    return MemberFactory(tenant=tenant)


def test_every_attempt_leaves_a_trace_with_the_counters_it_read(api, tenant, member):  # noqa: F811
    campaign = CampaignFactory(
        tenant=tenant, name="Ten off", discount={"type": "amount", "value": "10.00"}, redemptions_total=5
    )
    CodeFactory(campaign=campaign, code="TEN-1", usage_limit=1)
    api.post("/api/v1/validations", checkout(member, ["TEN-1", "NOPE"]), format="json")
    validation = EvaluationTrace.objects.get()
    assert (validation.kind, validation.succeeded, validation.reasons) == ("validation", False, ["code_not_found"])
    line = validation.document["lines"][0]
    assert line["counters"] == {
        "redemptions_count": 0,
        "redemptions_total": 5,
        "discount_used": "0.00",
        "order_value_used": "0.00",
    }
    assert line["code_uses"] == {"used": 0, "limit": 1} and validation.integration_name
    done = api.post(
        "/api/v1/redemptions", checkout(member, ["TEN-1"], order_id="o-1"), format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert done.status_code == 201
    redemption = EvaluationTrace.objects.get(kind="redemption")
    assert redemption.succeeded and redemption.redemption_id == int(done.json()["id"])
    refused = api.post(
        "/api/v1/redemptions", checkout(member, ["TEN-1"], order_id="o-2"), format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert refused.status_code == 422
    failed = EvaluationTrace.objects.get(kind="redemption", succeeded=False)  # written after the rollback
    assert failed.reasons == ["redemptions_total_exceeded"] and failed.order_id == "o-2"
    assert failed.document["lines"][0]["code_uses"] == {"used": 1, "limit": 1}


def test_with_traces_off_no_attempt_leaves_one_and_the_answers_stay_the_same(api, tenant, member, settings):  # noqa: F811
    settings.EVALUATION_TRACES = False
    campaign = CampaignFactory(tenant=tenant, discount={"type": "amount", "value": "10.00"})
    CodeFactory(campaign=campaign, code="TEN-1", usage_limit=1)
    assert api.post("/api/v1/validations", checkout(member, ["TEN-1"]), format="json").json()["valid"] is True
    done = api.post(
        "/api/v1/redemptions", checkout(member, ["TEN-1"], order_id="o-1"), format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert done.status_code == 201 and done.json()["order"]["discount"] == "10.00"
    again = api.post(
        "/api/v1/redemptions", checkout(member, ["TEN-1"], order_id="o-2"), format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert again.status_code == 422
    assert not EvaluationTrace.objects.exists()
    campaign.refresh_from_db()
    assert (campaign.redemptions_count, campaign.redemptions_failed) == (1, 1)


def _refusal(tenant, member, reason):
    """A validation refused for `reason`; the trace it left."""
    now = timezone.now()
    campaign = CampaignFactory(tenant=tenant, name=f"for {reason}")
    code = CodeFactory(campaign=campaign, code=f"C-{reason.upper()}-{campaign.pk}")
    if reason == "campaign_disabled":
        Campaign.objects.filter(pk=campaign.pk).update(enabled=False)
    elif reason == "campaign_ended":
        Campaign.objects.filter(pk=campaign.pk).update(ends_at=now - dt.timedelta(days=1))
    elif reason == "campaign_not_started":
        Campaign.objects.filter(pk=campaign.pk).update(starts_at=now + dt.timedelta(days=1))
    elif reason == "code_expired":
        code.expires_at = now - dt.timedelta(hours=1)
        code.save()
    elif reason == "rule_not_met":
        Campaign.objects.filter(pk=campaign.pk).update(rule="order.amount > 1000")
    elif reason == "member_suspended":
        member = member_set_status(member=member, suspended=True, reason="test")
    text = "NOPE-NOPE" if reason == "code_not_found" else code.code
    validate(tenant=tenant, member=member, order={"amount": "50.00"}, codes=[text])
    return EvaluationTrace.objects.latest("created_at")


@pytest.mark.parametrize(
    "reason",
    [
        "code_not_found",
        "campaign_disabled",
        "campaign_ended",
        "campaign_not_started",
        "code_expired",
        "rule_not_met",
        "member_suspended",
    ],
)
def test_the_explain_page_says_why_for_each_reason(client, tenant, member, reason):
    trace = _refusal(tenant, member, reason)
    assert trace.reasons == [reason]
    client.force_login(agent_of(tenant))
    page = client.get(reverse("admin:rewards_evaluationtrace_change", args=[trace.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "It was refused." in body and reason in body and escape(str(message(reason))) in body
    listed = client.get(reverse("admin:rewards_evaluationtrace_changelist"), {"reason": reason, "succeeded__exact": 0})
    assert list(listed.context["cl"].result_list) == [trace]


def test_the_trace_keeps_each_condition_of_the_rule_with_the_value_it_compared(client, tenant, member):
    campaign = CampaignFactory(tenant=tenant, name="Big baskets in GB")
    Campaign.objects.filter(pk=campaign.pk).update(
        rule='order.amount >= 100 and (member.country in ["GB", "IE"] or order.currency == "GBP")'
    )
    CodeFactory(campaign=campaign, code="BIG-1")
    member.country = "GB"
    member.save()
    validate(tenant=tenant, member=member, order={"amount": "50.00", "currency": "EUR"}, codes=["BIG-1"])
    trace = EvaluationTrace.objects.latest("created_at")
    assert trace.reasons == ["rule_not_met"]
    assert trace.document["lines"][0]["conditions"] == [
        {"condition": "order.amount >= 100", "holds": False, "value": "50.00"},
        {"condition": 'member.country in ["GB", "IE"]', "holds": True, "value": "GB"},
        {"condition": 'order.currency == "GBP"', "holds": False, "value": "EUR"},
    ]
    client.force_login(agent_of(tenant))
    body = client.get(reverse("admin:rewards_evaluationtrace_change", args=[trace.pk])).content.decode()
    assert "did not hold (the value was 50.00)" in body and "held (the value was GB)" in body
    validate(tenant=tenant, member=member, order={"amount": "150.00", "currency": "EUR"}, codes=["BIG-1"])
    held = EvaluationTrace.objects.latest("created_at")
    assert held.succeeded and [c["holds"] for c in held.document["lines"][0]["conditions"]] == [True, True, False]


def test_replay_against_today_shows_what_changed_and_writes_nothing(client, tenant, member):
    trace = _refusal(tenant, member, "campaign_disabled")
    Campaign.objects.filter(tenant=tenant).update(enabled=True)
    client.force_login(agent_of(tenant))
    page = client.post(reverse("admin:rewards_evaluationtrace_replay", args=[trace.pk]))
    assert page.status_code == 200
    [difference] = page.context["differences"]
    assert difference["then"]["reason"] == "campaign_disabled" and difference["now"]["valid"] is True
    assert EvaluationTrace.objects.count() == 1
    other = agent_of(MemberFactory().tenant)  # another tenant's agent: not even visible
    client.force_login(other)
    assert client.get(reverse("admin:rewards_evaluationtrace_change", args=[trace.pk])).status_code == 404


def test_old_traces_are_pruned_after_the_retention(settings, tenant, member):
    settings.TRACE_RETENTION_DAYS = 30
    with time_machine.travel("2026-01-01 10:00:00+00:00", tick=False):
        _refusal(tenant, member, "code_not_found")
    with time_machine.travel("2026-02-15 10:00:00+00:00", tick=False):
        kept = _refusal(tenant, member, "code_not_found")
        assert prune_evaluation_traces() == 1
        assert list(EvaluationTrace.objects.all()) == [kept]
        assert prune_evaluation_traces() == 0


def test_a_refused_checkout_leaves_its_trace_after_the_rollback(api, tenant, member):  # noqa: F811
    ProgramFactory(tenant=tenant)
    campaign = CampaignFactory(tenant=tenant)
    Campaign.objects.filter(pk=campaign.pk).update(enabled=False)
    CodeFactory(campaign=campaign, code="OFF-1")
    body = {"member": member.external_id, "order_id": "o-9", "amount": "40.00", "currency": "EUR", "codes": ["OFF-1"]}
    assert api.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="o-9").status_code == 422
    assert not Order.objects.exists()
    trace = EvaluationTrace.objects.get()
    assert (trace.kind, trace.succeeded, trace.reasons, trace.order_id) == (
        "redemption",
        False,
        ["campaign_disabled"],
        "o-9",
    )
