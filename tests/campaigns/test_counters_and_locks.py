"""The counters of campaigns, codes and usage keys change through one statement builder (`campaigns.sql`), and
the hot reads of codes are one statement, locked for redeeming and unlocked for validating."""

from decimal import Decimal as D

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from campaigns import sql
from campaigns.lock_objects import campaigns_for_update, codes_for_update, codes_named_for_update
from campaigns.models import Campaign, CampaignUsage, Code
from campaigns.services import publication_assign
from rewards.services.redemption.counters import apply_deltas
from rewards.services.redemption.load import codes_by_text
from tests.factories import CampaignFactory, CodeFactory, EngineMemberFactory, GiftCardCodeFactory

pytestmark = pytest.mark.django_db


def test_campaign_counters_are_added_to_row_by_row_and_field_by_field(tenant):
    a, b = CampaignFactory(tenant=tenant), CampaignFactory(tenant=tenant)
    sql.campaign_counts_add({a.pk: {"redemptions_count": 2, "discount_used": D("1.50")}, b.pk: {"published_count": 1}})
    sql.campaign_counts_add({a.pk: {"redemptions_count": -1, "discount_used": D("0.25")}})
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.redemptions_count, a.discount_used, a.published_count) == (1, D("1.75"), 0)
    assert (b.redemptions_count, b.discount_used, b.published_count) == (0, D("0.00"), 1)


def test_a_code_without_balance_keeps_none_and_a_gift_card_balance_moves(tenant):
    gift, plain = GiftCardCodeFactory(campaign__tenant=tenant), CodeFactory(campaign__tenant=tenant, usage_limit=None)
    apply_deltas({}, {gift.pk: (1, D("-20.00")), plain.pk: (1, D("-20.00"))}, {})
    gift.refresh_from_db()
    plain.refresh_from_db()
    assert (gift.redeemed_count, gift.balance) == (1, D("30.00"))
    assert (plain.redeemed_count, plain.balance) == (1, None)


def test_the_counters_of_a_redemption_are_one_statement_on_postgresql(tenant):
    campaign = CampaignFactory(tenant=tenant)
    code = CodeFactory(campaign=campaign, usage_limit=None)
    with CaptureQueriesContext(connection) as queries:
        apply_deltas(
            {campaign.pk: (1, D("2.00"), D("40.00"))}, {code.pk: (1, D("0.00"))}, {(campaign.pk, "d:x"): (1, D("2.00"))}
        )
    assert len(queries) == (1 if connection.vendor == "postgresql" else 3)
    apply_deltas(
        {campaign.pk: (-1, D("-2.00"), D("-40.00"))},
        {code.pk: (-1, D("0.00"))},
        {(campaign.pk, "d:x"): (-1, D("-2.00"))},
    )
    campaign.refresh_from_db()
    code.refresh_from_db()
    usage = CampaignUsage.objects.get(campaign=campaign, key="d:x")
    assert (campaign.redemptions_count, campaign.discount_used, campaign.order_value_used) == (0, D("0"), D("0"))
    assert code.redeemed_count == 0 and (usage.count, usage.discount) == (0, D("0.00"))


def test_publishing_and_creating_codes_add_to_the_same_counters(tenant):
    campaign = CampaignFactory(tenant=tenant, code_pattern="PUB-####-????")
    with transaction.atomic():
        publication_assign(campaign=campaign, member=EngineMemberFactory(tenant=tenant), generate=True)
    campaign.refresh_from_db()
    assert (campaign.published_count, campaign.codes_count) == (1, 1)


def test_redeeming_locks_exactly_the_rows_validation_reads(tenant, other_tenant):
    campaign = CampaignFactory(tenant=tenant)
    codes = [CodeFactory(campaign=campaign) for _ in range(3)]
    CodeFactory(campaign__tenant=other_tenant, code=codes[0].code)  # same text, another tenant
    texts = {c.code for c in codes[:2]} | {"MISSING"}
    with transaction.atomic():
        with CaptureQueriesContext(connection) as unlocked:
            read = codes_by_text(tenant, texts, campaign_ids={campaign.pk})
        with CaptureQueriesContext(connection) as locked:
            held = codes_named_for_update(tenant=tenant, texts=texts, campaign_ids={campaign.pk})
    assert [c.pk for c in read] == [c.pk for c in held] == sorted(c.pk for c in codes[:2])
    suffix = " FOR UPDATE" if connection.features.has_select_for_update else ""
    assert locked[0]["sql"] == unlocked[0]["sql"] + suffix
    assert codes_named_for_update(tenant=tenant, texts=texts, campaign_ids=set()) == []


def test_rows_locked_by_id_are_the_tenants_in_id_order(tenant, other_tenant):
    mine, theirs = CampaignFactory(tenant=tenant), CampaignFactory(tenant=other_tenant)
    code = CodeFactory(campaign=mine)
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            campaigns = campaigns_for_update(tenant=tenant, ids={theirs.pk, mine.pk})
            locked_codes = codes_for_update(tenant=tenant.pk, ids={code.pk})
    assert list(campaigns) == [mine.pk] and isinstance(campaigns[mine.pk], Campaign)
    assert list(locked_codes) == [code.pk] and isinstance(locked_codes[code.pk], Code)
    if connection.features.has_select_for_update:
        assert all(q["sql"].endswith("ORDER BY t.id FOR UPDATE") for q in queries)
    assert campaigns_for_update(tenant=tenant, ids=set()) == {}
