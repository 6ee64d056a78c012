import datetime as dt

import pytest
from django.contrib.auth.models import Group

from campaigns.models import Campaign, Code, Publication
from campaigns.selectors import campaign_document, campaign_stats, publication_document
from campaigns.services import (
    campaign_check,
    campaign_create,
    campaign_disable,
    campaign_enable,
    campaign_update,
    publication_create,
)
from common.errors import ApplicationError
from rewards.services.redemption import redeem, validate
from tests.factories import CampaignFactory, CodeFactory, EngineMemberFactory, UserFactory

pytestmark = pytest.mark.django_db

SPRING = {
    "name": "Spring 15",
    "type": "discount",
    "discount": {"type": "percent", "value": "15", "max_amount": "30.00"},
    "starts_at": "2026-03-01T00:00:00Z",
    "ends_at": "2027-06-01T00:00:00+02:00",
    "active_hours": [{"weekdays": [0, 1, 2, 3, 4], "from": "09:00", "to": "17:00"}],
    "rule": "member.country == 'GB' and order.amount >= 50",
    "limits": {
        "redemptions_total": 500,
        "redemptions_per_member": 1,
        "discount_total": "5000.00",
        "order_value_total": None,
    },
    "stacking": {"category": "seasonal", "exclusive": False, "combinable_with": ["loyalty", "gift_card"]},
    "codes": {"count": 1000, "pattern": "SPR-####-????"},
}


def test_create_the_contract_example(tenant, published):
    campaign = campaign_create(tenant=tenant, data=SPRING)
    doc = campaign_document(campaign)
    assert doc["name"] == "Spring 15" and doc["type"] == "discount" and doc["enabled"] is True
    assert doc["codes"] == {"count": 1000, "code": None, "pattern": "SPR-####-????"}
    assert doc["limits"]["redemptions_total"] == 500 and doc["limits"]["discount_total"] == "5000.00"
    assert doc["stacking"]["combinable_with"] == ["loyalty", "gift_card"]
    codes = list(Code.objects.filter(campaign=campaign).values_list("code", flat=True))
    assert len(codes) == len(set(codes)) == 1000
    assert all(len(c) == 13 and c.startswith("SPR-") and c[4:8].isdigit() and c[9:].isalpha() for c in codes)
    assert not set("01OIL") & set("".join(c[4:] for c in codes))
    assert (
        "campaign.created",
        {"campaign": {"id": str(campaign.pk), "name": "Spring 15", "type": "discount"}},
    ) in published


def test_create_with_a_shared_code_and_a_gift_card_campaign(tenant):
    welcome = campaign_create(
        tenant=tenant,
        data={"name": "Welcome", "discount": {"type": "amount", "value": "10"}, "codes": {"code": "welcome10"}},
    )
    assert campaign_document(welcome)["codes"] == {"count": 1, "code": "WELCOME10", "pattern": None}
    shared = Code.objects.get(campaign=welcome)
    assert shared.is_shared and shared.usage_limit is None
    cards = campaign_create(
        tenant=tenant,
        data={
            "name": "GC",
            "type": "gift_card",
            "gift_card": {"amount": "50.00"},
            "codes": {"count": 5, "pattern": "GC-????-####"},
        },
    )
    assert set(Code.objects.filter(campaign=cards).values_list("balance", "usage_limit")) == {(50, None)}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "name"),
        ({"type": "coupon"}, "type"),
        ({"discount": {"type": "percent", "value": "150"}}, "discount.value"),
        ({"discount": None}, "discount"),
        ({"starts_at": "tomorrow"}, "starts_at"),
        ({"ends_at": "2026-01-01T00:00:00Z"}, "ends_at"),
        ({"active_hours": [{"weekdays": [7], "from": "09:00", "to": "17:00"}]}, "active_hours"),
        ({"rule": "member.contry == 'GB'"}, "rule"),
        ({"limits": {"redemptions_total": -1}}, "limits.redemptions_total"),
        ({"limits": {"discount_total": "12.345"}}, "limits.discount_total"),
        ({"limits": {"per_hour": 3}}, "limits.per_hour"),
        ({"stacking": {"combinable_with": "loyalty"}}, "stacking.combinable_with"),
        ({"codes": {"count": 1000, "pattern": "A-##"}}, "codes.pattern"),
        ({"codes": {"pattern": "SPR-####"}}, "codes.count"),
        ({"colour": "red"}, "colour"),
        ({"limits": {"discount_total": "1e30"}}, "limits.discount_total"),
        ({"codes": {"count": 10, "pattern": "SPR-####", "expires_at": "2026-02-30T00:00:00Z"}}, "codes.expires_at"),
        ({"rule": ["member.country == 'GB'"]}, "rule"),
        ({"circuit_breaker": {"multiple": "0.5"}}, "circuit_breaker.multiple"),
    ],
)
def test_bad_input_is_400_with_field_errors_and_creates_nothing(tenant, change, field):
    with pytest.raises(ApplicationError) as caught:
        campaign_create(tenant=tenant, data={**SPRING, **change})
    assert caught.value.code == "validation_error" and caught.value.status == 400
    assert field in caught.value.details and isinstance(caught.value.details[field], str), caught.value.details
    assert not Campaign.objects.exists() and not Code.objects.exists()


def test_every_problem_of_a_campaign_is_reported_at_once_as_path_and_message(tenant):
    data = {
        **SPRING,
        "name": " ",
        "enabled": "yes",
        "limits": {"redemptions_per_member": 0, "order_value_total": "-1", "per_hour": 3},
        "stacking": {"exclusive": None, "category": "x" * 51},
        "codes": {"count": 0, "pattern": "SPR-####"},
    }
    with pytest.raises(ApplicationError) as caught:
        campaign_create(tenant=tenant, data=data)
    assert caught.value.details == {
        "name": "required",
        "enabled": "must be true or false",
        "limits.per_hour": "unknown limit",
        "limits.redemptions_per_member": "must be a whole number >= 1",
        "limits.order_value_total": "must be a decimal number from 0 to 999999999999.99",
        "stacking.category": "must be a text of at most 50 characters",
        "stacking.exclusive": "required",
        "codes.count": "must be a whole number >= 1",
    }
    assert campaign_check(data=data) == caught.value.details


def test_a_shared_code_taken_in_the_tenant_is_refused(tenant, other_tenant):
    CodeFactory(campaign__tenant=tenant, code="WELCOME10")
    data = {"name": "W", "discount": {"type": "amount", "value": "5"}, "codes": {"code": "WELCOME10"}}
    with pytest.raises(ApplicationError) as caught:
        campaign_create(tenant=tenant, data=data)
    assert "codes.code" in caught.value.details
    assert Campaign.objects.filter(tenant=tenant).count() == 1
    campaign_create(tenant=other_tenant, data=data)  # another tenant may use the same code


def test_update_changes_fields_and_adds_codes(tenant):
    campaign = campaign_create(tenant=tenant, data={**SPRING, "codes": {"count": 10, "pattern": "SPR-####-????"}})
    campaign = campaign_update(
        campaign=campaign,
        data={
            "name": "Spring 20",
            "limits": {"redemptions_total": 10},
            "codes": {"count": 5, "pattern": "SPR-####-????"},
        },
    )
    assert campaign.name == "Spring 20" and campaign.redemptions_total == 10
    assert campaign.codes_count == 15 == Code.objects.filter(campaign=campaign).count()
    assert campaign.history.count() >= 2
    with pytest.raises(ApplicationError):
        campaign_update(campaign=campaign, data={"type": "promotion"})


def test_kill_switch_refuses_codes_at_once_and_emits_events(tenant, published):
    code = CodeFactory(campaign__tenant=tenant)
    order = {"amount": "100.00"}
    campaign_disable(campaign=code.campaign, reason="leaked on a forum")
    entry = validate(tenant=tenant, order=order, codes=[code.code]).as_dict()["codes"][0]
    assert entry["reason"] == "campaign_disabled"
    campaign_enable(campaign=code.campaign)
    assert validate(tenant=tenant, order=order, codes=[code.code]).valid
    kinds = [k for k, _ in published]
    assert kinds == ["campaign.disabled", "campaign.enabled"]
    assert published[0][1]["reason"] == "leaked on a forum"


def test_junior_marketer_and_support_agent_cannot_launch(tenant):
    campaign = CampaignFactory(tenant=tenant, enabled=False)
    for role in ("Junior marketer", "Support agent"):
        user = UserFactory()
        user.groups.add(Group.objects.get(name=role))
        with pytest.raises(ApplicationError) as caught:
            campaign_enable(campaign=campaign, user=user)
        assert caught.value.status == 403
        # What they create waits for a marketer to launch it.
        created = campaign_create(
            tenant=tenant, data={"name": "Draft", "discount": {"type": "percent", "value": "5"}}, user=user
        )
        assert created.enabled is False
    marketer = UserFactory()
    marketer.groups.add(Group.objects.get(name="Marketer"))
    assert campaign_enable(campaign=campaign, user=marketer).enabled is True


def test_publication_gives_a_free_code_once_and_returns_it_again(tenant, published):
    campaign = campaign_create(
        tenant=tenant,
        data={
            "name": "P",
            "discount": {"type": "amount", "value": "5"},
            "codes": {"count": 2, "pattern": "P-####-????"},
        },
    )
    ada, bob, eve = (EngineMemberFactory(tenant=tenant) for _ in range(3))
    first, created = publication_create(tenant=tenant, campaign=campaign, member=ada, channel="email")
    assert created and first.code.member == ada
    again, created = publication_create(tenant=tenant, campaign=campaign, member=ada, channel="sms")
    assert not created and again.pk == first.pk
    doc = publication_document(first)
    assert doc["member"] == ada.external_id and doc["channel"] == "email" and doc["code"] == first.code.code
    publication_create(tenant=tenant, campaign=campaign, member=bob, channel="push")
    with pytest.raises(ApplicationError) as caught:
        publication_create(tenant=tenant, campaign=campaign, member=eve, channel="api")
    assert caught.value.code == "no_codes_left"
    # A published code is assigned: only its member may use it.
    entry = validate(tenant=tenant, member=bob, order={"amount": "10"}, codes=[first.code.code]).as_dict()["codes"][0]
    assert entry["reason"] == "not_assigned_to_member"
    assert campaign_stats(Campaign.objects.get(pk=campaign.pk))["published"] == 2
    assert [k for k, _ in published].count("code.published") == 2


def test_publication_refused_when_disabled_or_ended(tenant):
    member = EngineMemberFactory(tenant=tenant)
    disabled = CodeFactory(campaign__tenant=tenant, campaign__enabled=False).campaign
    ended = CodeFactory(campaign__tenant=tenant, campaign__ends_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)).campaign
    for campaign, reason in ((disabled, "campaign_disabled"), (ended, "campaign_ended")):
        with pytest.raises(ApplicationError) as caught:
            publication_create(tenant=tenant, campaign=campaign, member=member, channel="email")
        assert caught.value.code == reason
    assert not Publication.objects.exists()


def test_stats_count_redemptions_failures_and_money(tenant):
    member = EngineMemberFactory(tenant=tenant)
    campaign = CampaignFactory(tenant=tenant, discount={"type": "amount", "value": "10.00"})
    code = CodeFactory(campaign=campaign, usage_limit=1)
    redeem(tenant=tenant, member=member, order_id="o-1", order={"amount": "80.00"}, codes=[code.code])
    with pytest.raises(ApplicationError):
        redeem(tenant=tenant, member=member, order_id="o-2", order={"amount": "80.00"}, codes=[code.code])
    campaign.refresh_from_db()
    assert campaign_stats(campaign) == {
        "published": 0,
        "redeemed": 1,
        "redemptions_failed": 1,
        "discount_total": "10.00",
        "order_value_total": "80.00",
    }
