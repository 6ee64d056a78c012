"""The member cockpit's pages: what the home shows, the history, spending points on the catalog, and that a
signed-in member reaches only their own data, in a constant number of queries."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.db import connection
from django.template.defaultfilters import date as date_filter
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from loyalty.ledger import account_for, points_adjust
from loyalty.models import Program
from rewards.models import RewardPurchase
from rewards.services.catalog import reward_purchase
from rewards.services.redemption import redeem, redemption_rollback
from tests.factories import (
    CampaignFactory,
    CodeFactory,
    MemberFactory,
    ProgramFactory,
    RewardFactory,
    TenantFactory,
    TierFactory,
    UserFactory,
)
from tests.rewards.cockpit_helpers import (
    empty_cache,  # noqa: F401 (autouse fixture)
    sign_in,
    url,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    return UserFactory(is_superuser=True)


@pytest.fixture
def program(tenant):
    return ProgramFactory(tenant=tenant, points_name="stars", expiry_policy={"policy": "days", "days": 30})


@pytest.fixture
def member(tenant, program, staff):
    member = MemberFactory(tenant=tenant, name="Ada Lovelace")
    points_adjust(points=1000, reason="welcome", staff_user=staff, member=member, program=program)
    return member


@pytest.fixture
def coupon_reward(tenant):
    campaign = CampaignFactory(
        tenant=tenant, type="loyalty_reward", discount={"type": "amount", "value": "5.00"}, code_pattern="LR-####-????"
    )
    return RewardFactory(tenant=tenant, name="Five off", type="coupon", campaign=campaign, points_cost=400)


def balance(member, program):
    return account_for(member=member, program=program).balance


def page(client, name, tenant, **kwargs):
    response = client.get(url(name, tenant, **kwargs))
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_home_shows_points_tier_expiring_points_usable_rewards_and_referrals(
    client, tenant, program, member, staff, coupon_reward
):
    tenant.brand_colour = "#ffd700"
    tenant.save()
    TierFactory(program=program, code="silver", name="Silver", threshold=0)
    TierFactory(program=program, code="gold", name="Gold", threshold=5000)
    Program.objects.filter(pk=program.pk).update(expiry_policy={"policy": "days", "days": 200})
    points_adjust(points=300, reason="later lot", staff_user=staff, member=member, program=program)
    purchase = reward_purchase(tenant=tenant, member=member, reward=coupon_reward)
    cards = CampaignFactory(tenant=tenant, type="gift_card", name="Gift card", discount={}, gift_card_amount=D("50"))
    card = reward_purchase(
        tenant=tenant,
        member=member,
        reward=RewardFactory(tenant=tenant, type="gift_card_credit", campaign=cards, value=D("10.00"), points_cost=100),
    )
    RewardFactory(tenant=tenant, name="Espresso cup", points_cost=200)
    RewardFactory(tenant=tenant, name="Weekend away", points_cost=100000)
    MemberFactory(tenant=tenant, referred_by=member, name="Grace Hopper")
    sign_in(client, member)

    html = page(client, "home", tenant)
    assert 'data-testid="balance">800<' in html  # 1000 + 300 - 400 - 100
    assert "stars" in html  # the program's name for points
    assert "--brand: #ffd700; --on-brand: #000000;" in html  # dark text reads on gold
    in_30_days = (timezone.now() + dt.timedelta(days=30)).astimezone(tenant.tz).date()
    assert f"500 stars on {date_filter(in_30_days, 'DATE_FORMAT')}" in html
    assert "300 stars" not in html  # expires in 200 days: not in the next 90
    assert "Gold" in html and "qualifying points to reach Gold" in html
    assert purchase.code.code in html and card.code.code in html and "balance €10.00" in html
    assert f'data-copy="{purchase.code.code}"' in html
    assert "Espresso cup" in html and "Weekend away" not in html  # affordable ones only
    assert member.referral_code in html
    assert "Grace" in html and "Hopper" not in html and "waiting for their first order" in html
    assert url("ledger", tenant) in html and url("catalog", tenant) in html


def test_history_is_paginated_and_filtered_by_kind(client, tenant, program, member, staff, coupon_reward):
    for n in range(30):
        points_adjust(points=n + 1, reason=f"entry {n}", staff_user=staff, member=member, program=program)
    reward_purchase(tenant=tenant, member=member, reward=coupon_reward)
    sign_in(client, member)

    first = page(client, "ledger", tenant)
    assert "Reward: Five off" in first and "entry 29" in first and "entry 5" not in first
    assert "Page 1 of 2" in first
    second = client.get(url("ledger", tenant), {"page": 2}).content.decode()
    assert "welcome" in second and "entry 0" in second and "entry 29" not in second
    redeemed = client.get(url("ledger", tenant), {"kind": "redeem"}).content.decode()
    assert "Reward: Five off" in redeemed and "entry" not in redeemed
    # htmx swaps the table only.
    swap = client.get(url("ledger", tenant), {"kind": "adjust"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="ledger")
    body = swap.content.decode()
    assert body.startswith('<div id="ledger"') and "<html" not in body and "entry 29" in body


def test_spending_points_on_a_catalog_reward_issues_a_code_shown_at_once(
    client, tenant, program, member, coupon_reward
):
    sign_in(client, member)
    assert "Get Five off" in page(client, "catalog", tenant)
    response = client.post(url("reward-redeem", tenant, reward_id=coupon_reward.pk))
    purchase = RewardPurchase.objects.get(member=member)
    assert response.status_code == 302 and response.url == url("code", tenant, code=purchase.code.code)
    assert balance(member, program) == 600
    shown = client.get(response.url).content.decode()
    assert purchase.code.code in shown and "Five off is yours" in shown
    assert purchase.code.code in page(client, "home", tenant)


def test_spending_more_points_than_the_balance_is_refused_with_a_message(client, tenant, program, member):
    reward = RewardFactory(tenant=tenant, name="Weekend away", points_cost=5000)
    sign_in(client, member)
    response = client.post(url("reward-redeem", tenant, reward_id=reward.pk), follow=True)
    assert "You do not have enough points for this reward." in response.content.decode()
    assert balance(member, program) == 1000 and not RewardPurchase.objects.exists()


def test_spending_needs_the_csrf_token(tenant, program, member, coupon_reward):
    browser = Client(enforce_csrf_checks=True)
    sign_in(browser, member)
    assert browser.post(url("reward-redeem", tenant, reward_id=coupon_reward.pk)).status_code == 403
    assert browser.get(url("reward-redeem", tenant, reward_id=coupon_reward.pk)).status_code == 405
    assert balance(member, program) == 1000


def test_another_members_code_and_another_tenants_reward_are_404(client, tenant, program, member, coupon_reward):
    other = MemberFactory(tenant=tenant)
    points_adjust(points=1000, reason="welcome", staff_user=UserFactory(), member=other, program=program)
    theirs = reward_purchase(tenant=tenant, member=other, reward=coupon_reward)
    elsewhere = TenantFactory()
    foreign_reward = RewardFactory(tenant=elsewhere, points_cost=1)
    sign_in(client, member)

    assert client.get(url("code", tenant, code=theirs.code.code)).status_code == 404
    assert client.post(url("reward-redeem", tenant, reward_id=foreign_reward.pk)).status_code == 404
    assert theirs.code.code not in page(client, "home", tenant)
    assert balance(member, program) == 1000


def _redemptions(tenant, member, count: int, *, rolled_back: int = 0) -> list:
    campaign = CampaignFactory(tenant=tenant, name="Spring 10")
    made = []
    for n in range(count):
        code = CodeFactory(campaign=campaign, tenant=tenant, code=f"SPR-{member.pk}-{n}")
        made.append(
            redeem(
                tenant=tenant,
                member=member,
                order_id=f"o-{member.pk}-{n}",
                order={"amount": "50.00"},
                codes=[code.code],
            )
        )
    for redemption in made[:rolled_back]:
        redemption_rollback(redemption=redemption, reason="returned")
    return made


def test_home_lists_the_members_own_redemptions_with_their_state(tenant, member):
    _redemptions(tenant, member, 2, rolled_back=1)
    other = MemberFactory(tenant=tenant)
    _redemptions(tenant, other, 1)
    client = Client()
    sign_in(client, member)
    page = client.get(url("home", tenant)).content.decode()
    assert page.count(f"o-{member.pk}-") == 2 and f"o-{other.pk}-" not in page
    assert f"SPR-{member.pk}-0" in page and "Spring 10" in page
    assert page.count("Cancelled") == 1 and page.count("Applied") == 1


def _home_queries(client, tenant) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url("home", tenant)).status_code == 200
    return len(queries)


def test_home_and_history_cost_the_same_queries_whatever_the_history_length(
    tenant, program, staff, coupon_reward, django_assert_max_num_queries
):
    TierFactory(program=program, code="silver", name="Silver", threshold=0)
    short, long = MemberFactory(tenant=tenant), MemberFactory(tenant=tenant)
    for member, entries in ((short, 5), (long, 500)):
        for n in range(entries):
            points_adjust(points=100, reason=f"entry {n}", staff_user=staff, member=member, program=program)
        reward_purchase(tenant=tenant, member=member, reward=coupon_reward)
        MemberFactory(tenant=tenant, referred_by=member)
        _redemptions(tenant, member, 1 if member is short else 30)
    short_client, long_client = Client(), Client()
    sign_in(short_client, short)
    sign_in(long_client, long)
    short_client.get(url("home", tenant))  # warm: content types, the session's first save
    long_client.get(url("home", tenant))
    baseline = _home_queries(short_client, tenant)
    with django_assert_max_num_queries(baseline):
        assert long_client.get(url("home", tenant)).status_code == 200
    with django_assert_max_num_queries(baseline):
        assert long_client.get(url("ledger", tenant), {"page": 3}).status_code == 200
