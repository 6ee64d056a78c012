"""A redemption applied after the fact is judged as of the order's time, previewed first, then applied."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from rewards.models import Redemption
from rewards.services.checkout import order_checkout
from tests.factories import CampaignFactory, CodeFactory, earning_setup, form_token
from tests.rewards.test_member_story import agent_of

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 5, 10, 12, tzinfo=dt.UTC)
URL = reverse("admin:rewards_redemption_apply")


@pytest.fixture
def late(tenant):
    _program, _rule, member = earning_setup(tenant)
    campaign = CampaignFactory(
        tenant=tenant,
        name="April week",
        discount={"type": "amount", "value": "7.00"},
        starts_at=NOW - dt.timedelta(days=10),
        ends_at=NOW - dt.timedelta(days=2),
    )
    CodeFactory(campaign=campaign, code="APRIL-1")
    with time_machine.travel(NOW - dt.timedelta(days=4), tick=False):
        order_checkout(tenant=tenant, member=member, order_id="o-late", amount="70.00", currency="EUR")
    return member


@time_machine.travel(NOW, tick=False)
def test_the_codes_are_judged_at_the_orders_time_previewed_then_applied(client, tenant, late):
    member = late
    client.force_login(agent_of(tenant))
    form = {
        "tenant": tenant.pk,
        "member": member.external_id,
        "order_id": "o-late",
        "amount": "70.00",
        "form_token": form_token(),
    }
    # The agent picks the member's order from the list (its time comes with it).
    page = client.get(URL, {"tenant": tenant.pk, "member": member.external_id})
    assert [o.order_id for o in page.context["orders"]] == ["o-late"]
    preview = client.post(URL, {**form, "codes": "APRIL-1", "preview": "1"})
    assert preview.status_code == 200
    assert preview.context["preview"]["result"]["valid"] is True  # the recorded order's time: campaign was live
    assert preview.context["preview"]["as_of"] == NOW - dt.timedelta(days=4)
    assert not Redemption.objects.exists()  # the preview writes nothing
    applied = client.post(URL, {**form, "codes": "APRIL-1", "apply": "1"})
    assert applied.status_code == 302
    redemption = Redemption.objects.get()
    assert redemption.discount == 7 and redemption.channel == "admin" and redemption.created_at == NOW


@time_machine.travel(NOW, tick=False)
def test_as_of_now_the_ended_campaign_refuses_and_a_future_time_is_refused(client, tenant, late):
    member = late
    client.force_login(agent_of(tenant))
    form = {
        "tenant": tenant.pk,
        "member": member.external_id,
        "order_id": "o-new",
        "amount": "70.00",
        "form_token": form_token(),
    }
    page = client.post(URL, {**form, "codes": "APRIL-1", "preview": "1"})  # no recorded order o-new: now
    assert page.context["preview"]["result"]["codes"][0]["reason"] == "campaign_ended"
    assert 'name="apply"' not in page.content.decode()  # nothing to apply after a refused preview
    future = client.post(URL, {**form, "codes": "APRIL-1", "occurred_at": "2026-06-01T10:00", "preview": "1"})
    assert "in the future" in future.content.decode()
    typed = client.post(URL, {**form, "codes": "APRIL-1", "occurred_at": "2026-05-05T10:00", "apply": "1"})
    assert typed.status_code == 302 and Redemption.objects.count() == 1
