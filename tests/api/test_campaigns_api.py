"""Programmable campaigns and publications through the API."""

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import Campaign
from tests.api.conftest import assert_error, client_for
from tests.factories import CampaignFactory, CodeFactory, MemberFactory, api_key_for

pytestmark = pytest.mark.django_db

SPRING = {
    "name": "Spring 15",
    "type": "discount",
    "discount": {"type": "percent", "value": "15", "max_amount": "30.00"},
    "rule": "order.amount >= 50",
    "limits": {"redemptions_total": 500, "redemptions_per_member": 1, "discount_total": "5000.00"},
    "stacking": {"category": "seasonal", "exclusive": False, "combinable_with": ["loyalty"]},
    "codes": {"count": 20, "pattern": "SPR-####-????"},
}


def test_a_campaign_is_created_with_its_codes(api, tenant):
    response = api.post("/api/v1/campaigns", SPRING, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "Spring 15" and body["type"] == "discount" and body["enabled"] is True
    assert body["codes"]["count"] == 20 and body["codes"]["code"] is None
    assert body["limits"]["redemptions_total"] == 500
    assert Campaign.objects.get(pk=int(body["id"])).tenant == tenant


def test_a_shared_code_campaign(api, tenant):
    body = api.post(
        "/api/v1/campaigns", {**SPRING, "codes": {"code": "WELCOME10"}, "name": "Welcome"}, format="json"
    ).json()
    assert body["codes"] == {"count": 1, "code": "WELCOME10", "pattern": None}


@pytest.mark.parametrize(
    "change,field",
    [
        ({"name": ""}, "name"),
        ({"type": "lottery"}, "type"),
        ({"rule": "member.nope =="}, "rule"),
        ({"discount": "lots"}, "discount"),
        ({"starts_at": "yesterday"}, "starts_at"),
        ({"colour": "red"}, "colour"),
        ({"limits": {"discount_total": "1e30"}}, "limits.discount_total"),
        ({"codes": {"count": 5, "pattern": "SPR-####", "expires_at": "2026-02-30T00:00:00Z"}}, "codes.expires_at"),
    ],
)
def test_bad_campaign_input_is_400_with_field_errors_and_creates_nothing(api, tenant, change, field):
    error = assert_error(api.post("/api/v1/campaigns", {**SPRING, **change}, format="json"), 400, "validation_error")
    assert field in error["details"], error
    # One shape for validation_error whichever layer refused (the serializer or the service): a list of messages.
    assert all(isinstance(messages, list) and messages for messages in error["details"].values()), error
    assert not Campaign.objects.exists()


def test_get_patch_enable_disable_and_stats(api, tenant):
    campaign_id = api.post("/api/v1/campaigns", SPRING, format="json").json()["id"]
    assert api.get(f"/api/v1/campaigns/{campaign_id}").json()["name"] == "Spring 15"
    patched = api.patch(f"/api/v1/campaigns/{campaign_id}", {"name": "Spring 20"}, format="json")
    assert patched.status_code == 200 and patched.json()["name"] == "Spring 20"
    error = assert_error(
        api.patch(f"/api/v1/campaigns/{campaign_id}", {"limits": "none"}, format="json"), 400, "validation_error"
    )
    assert "limits" in error["details"]
    disabled = api.post(f"/api/v1/campaigns/{campaign_id}/disable", {"reason": "leak"}, format="json").json()
    assert disabled["enabled"] is False and disabled["status"] == "disabled"
    enabled = api.post(f"/api/v1/campaigns/{campaign_id}/enable/").json()
    assert enabled["enabled"] is True
    stats = api.get(f"/api/v1/campaigns/{campaign_id}/stats").json()
    assert stats == {
        "published": 0,
        "redeemed": 0,
        "redemptions_failed": 0,
        "discount_total": "0.00",
        "order_value_total": "0.00",
    }


def test_a_disabled_campaigns_codes_fail_validation_at_once(api, tenant):
    code = CodeFactory(campaign=CampaignFactory(tenant=tenant), code="KILL-1")
    body = {"order": {"amount": "100.00"}, "codes": [code.code]}
    assert api.post("/api/v1/validations", body, format="json").json()["valid"] is True
    api.post(f"/api/v1/campaigns/{code.campaign_id}/disable", {}, format="json")
    result = api.post("/api/v1/validations", body, format="json").json()
    assert result["valid"] is False and result["codes"][0]["reason"] == "campaign_disabled"


@pytest.mark.parametrize("path", ["", "/enable", "/disable", "/stats"])
def test_unknown_campaigns_are_404(api, path):
    method = api.post if path in ("/enable", "/disable") else api.get
    assert_error(method(f"/api/v1/campaigns/999999{path}"), 404, "campaign_not_found")
    assert_error(method(f"/api/v1/campaigns/abc{path}"), 404, "campaign_not_found")


def test_campaign_writes_need_manage_and_reads_need_read(tenant):
    campaign = CampaignFactory(tenant=tenant)
    _, reader = api_key_for(tenant, scopes=["read"])
    client = client_for(reader)
    assert client.get(f"/api/v1/campaigns/{campaign.pk}").status_code == 200
    assert_error(client.post("/api/v1/campaigns", SPRING, format="json"), 403, "insufficient_scope")
    assert_error(
        client.patch(f"/api/v1/campaigns/{campaign.pk}", {"name": "x"}, format="json"), 403, "insufficient_scope"
    )
    assert_error(client.post(f"/api/v1/campaigns/{campaign.pk}/disable"), 403, "insufficient_scope")
    _, writer = api_key_for(tenant, scopes=["manage"])
    assert_error(client_for(writer).get(f"/api/v1/campaigns/{campaign.pk}"), 403, "insufficient_scope")


def test_a_publication_gives_a_code_and_the_same_one_again(api, tenant):
    campaign = CampaignFactory(tenant=tenant)
    CodeFactory(campaign=campaign)
    CodeFactory(campaign=campaign)
    member = MemberFactory(tenant=tenant)
    body = {"campaign": str(campaign.pk), "member": member.external_id, "channel": "email"}
    first = api.post("/api/v1/publications", body, format="json")
    assert first.status_code == 201, first.content
    published = first.json()
    assert published["campaign"] == str(campaign.pk) and published["member"] == member.external_id
    assert published["channel"] == "email" and published["code"]
    again = api.post("/api/v1/publications", body, format="json")
    assert again.status_code == 200 and again.json()["code"] == published["code"]


def test_publication_refusals(api, tenant):
    member = MemberFactory(tenant=tenant)
    empty = CampaignFactory(tenant=tenant)
    body = {"campaign": str(empty.pk), "member": member.external_id}
    assert_error(api.post("/api/v1/publications", body, format="json"), 422, "no_codes_left")
    disabled = CampaignFactory(tenant=tenant, enabled=False)
    CodeFactory(campaign=disabled)
    body["campaign"] = str(disabled.pk)
    assert_error(api.post("/api/v1/publications", body, format="json"), 422, "campaign_disabled")
    ended = CampaignFactory(tenant=tenant, ends_at=timezone.now() - timedelta(days=1))
    CodeFactory(campaign=ended)
    body["campaign"] = str(ended.pk)
    assert_error(api.post("/api/v1/publications", body, format="json"), 422, "campaign_ended")
    body["member"] = "nobody"
    assert_error(api.post("/api/v1/publications", body, format="json"), 404, "member_not_found")
    body.update(member=member.external_id, campaign="999999")
    assert_error(api.post("/api/v1/publications", body, format="json"), 404, "campaign_not_found")
    body["channel"] = "pigeon"
    assert_error(api.post("/api/v1/publications", body, format="json"), 400, "validation_error")
