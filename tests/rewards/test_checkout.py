"""order_checkout: codes redeemed with the paid order in one transaction, points on the amount after discounts,
all or nothing, idempotent per order id, the referral reward on a referred member's first qualifying order."""

import threading
from decimal import Decimal as D

import pytest
from django.db import connection

from campaigns.services import campaign_create
from common.errors import ApplicationError
from loyalty.ledger import account_for
from loyalty.models import LedgerEntry, Order
from rewards.models import Redemption, ReferralGrant
from rewards.services.checkout import order_checkout
from tests.factories import CodeFactory, EarningRuleFactory, EngineMemberFactory, ProgramFactory

pytestmark = pytest.mark.django_db

ITEMS = [{"sku": "TSHIRT", "category": "apparel", "quantity": 2, "unit_price": "50.00"}]


@pytest.fixture
def program(tenant):
    program = ProgramFactory(tenant=tenant, expiry_policy={"policy": "never"})
    EarningRuleFactory(program=program, code="spend", points_per_unit="1", unit_amount="1.00")
    return program


@pytest.fixture
def member(tenant):
    return EngineMemberFactory(tenant=tenant)


def checkout(tenant, member, order_id="o-1", amount="100.00", **kw):
    return order_checkout(
        tenant=tenant, member=member, order_id=order_id, amount=amount, currency="EUR", items=ITEMS, **kw
    )


def percent_code(tenant, value="15", usage_limit=1):
    return CodeFactory(
        campaign__tenant=tenant, campaign__discount={"type": "percent", "value": value}, usage_limit=usage_limit
    )


def test_a_valid_code_is_redeemed_and_points_are_earned_on_the_discounted_amount(tenant, program, member):
    code = percent_code(tenant)
    result = checkout(tenant, member, codes=[code.code])
    assert result.created and result.points_earned == 85  # 100.00 - 15 % = 85.00 paid, 1 point per 1.00
    assert result.redemption["order"]["discount"] == "15.00" and result.redemption["order"]["total"] == "85.00"
    assert [c["code"] for c in result.redemption["codes"]] == [code.code]
    redemption = Redemption.objects.get()
    assert redemption.order_id == "o-1" and redemption.member == member
    code.refresh_from_db()
    assert code.redeemed_count == 1
    order = Order.objects.get(order_id="o-1")
    assert order.amount == D("100.00") and order.points_total == 85  # recorded at full price, earned on paid
    assert account_for(member=member, program=program).balance == 85
    assert result.as_dict()["redemption"]["id"] == str(redemption.pk)


def test_a_category_rule_takes_the_discount_off_its_items_pro_rata(tenant, program, member):
    EarningRuleFactory(program=program, code="apparel", categories=["apparel"], points_per_unit="1")
    code = percent_code(tenant, value="50")
    result = checkout(tenant, member, codes=[code.code])
    assert result.points_earned == 50 + 50  # spend rule on 50.00 paid; apparel rule on 100.00 of items x 50/100


def test_a_refused_code_writes_nothing_at_all(tenant, program, member):
    used = percent_code(tenant)
    used.redeemed_count = 1
    used.save()
    good = percent_code(tenant)
    with pytest.raises(ApplicationError) as refused:
        checkout(tenant, member, codes=[good.code, used.code])
    error = refused.value
    assert (error.code, error.status) == ("redemption_failed", 422)
    assert error.details["valid"] is False
    reasons = {c["code"]: c.get("reason") for c in error.details["codes"]}
    assert reasons[used.code] == "redemptions_total_exceeded"
    assert not Order.objects.exists() and not Redemption.objects.exists() and not LedgerEntry.objects.exists()
    good.refresh_from_db()
    assert good.redeemed_count == 0
    # An unknown code is refused the same way.
    with pytest.raises(ApplicationError) as unknown:
        checkout(tenant, member, codes=["NOPE-0000"])
    assert unknown.value.code == "redemption_failed"
    assert unknown.value.details["codes"][0]["reason"] == "code_not_found"
    assert not Order.objects.exists()


def test_replaying_an_order_id_returns_the_first_result_and_changes_nothing(tenant, program, member):
    code = percent_code(tenant, usage_limit=5)
    first = checkout(tenant, member, codes=[code.code])
    again = checkout(tenant, member, codes=[code.code])
    assert not again.created
    assert again.as_dict() == first.as_dict()
    assert Redemption.objects.count() == 1 and Order.objects.count() == 1
    code.refresh_from_db()
    assert code.redeemed_count == 1
    assert account_for(member=member, program=program).balance == 85


def test_an_order_without_codes_earns_on_its_amount(tenant, program, member):
    result = checkout(tenant, member)
    assert result.points_earned == 100 and result.redemption is None
    assert "redemption" not in result.as_dict()
    assert not Redemption.objects.exists()


@pytest.fixture
def referral(tenant, program):
    campaign_create(
        tenant=tenant,
        data={"name": "Refer a friend", "type": "referral", "referral": {"min_order_amount": "50.00", "points": 500}},
    )
    referrer = EngineMemberFactory(tenant=tenant)
    return referrer


def test_the_referrer_is_rewarded_once_on_the_first_qualifying_order(tenant, program, referral):
    friend = EngineMemberFactory(tenant=tenant, referred_by=referral)
    checkout(tenant, friend, order_id="f-1", amount="60.00")
    assert account_for(member=referral, program=program).balance == 500
    grant = ReferralGrant.objects.get()
    assert (grant.referred, grant.order_id, grant.points) == (friend, "f-1", 500)
    checkout(tenant, friend, order_id="f-2", amount="80.00")  # a second order gives nothing more
    checkout(tenant, friend, order_id="f-1", amount="60.00")  # nor a replay
    assert account_for(member=referral, program=program).balance == 500
    assert ReferralGrant.objects.count() == 1


def test_no_referral_reward_below_the_minimum_nor_after_a_first_order_below_it(tenant, program, referral):
    friend = EngineMemberFactory(tenant=tenant, referred_by=referral)
    checkout(tenant, friend, order_id="f-1", amount="49.99")
    checkout(tenant, friend, order_id="f-2", amount="90.00")  # not the first paid order any more
    assert account_for(member=referral, program=program).balance == 0
    assert not ReferralGrant.objects.exists()


def test_the_referral_minimum_is_checked_on_the_amount_after_discounts(tenant, program, referral):
    friend = EngineMemberFactory(tenant=tenant, referred_by=referral)
    code = percent_code(tenant, value="20")
    checkout(tenant, friend, order_id="f-1", amount="60.00", codes=[code.code])  # 48.00 paid
    assert not ReferralGrant.objects.exists()
    other = EngineMemberFactory(tenant=tenant, referred_by=referral)
    code2 = percent_code(tenant, value="10")
    checkout(tenant, other, order_id="o-1", amount="60.00", codes=[code2.code])  # 54.00 paid
    assert ReferralGrant.objects.get().referred == other
    assert account_for(member=referral, program=program).balance == 500


def test_a_referral_campaign_stops_rewarding_at_its_redemptions_limit_and_the_order_still_succeeds(
    tenant, program, referral
):
    from campaigns.models import Campaign

    Campaign.objects.filter(type="referral").update(redemptions_total=1)
    checkout(tenant, EngineMemberFactory(tenant=tenant, referred_by=referral), order_id="f-1", amount="60.00")
    result = checkout(tenant, EngineMemberFactory(tenant=tenant, referred_by=referral), order_id="f-2", amount="60.00")
    assert result.points_earned == 60  # the order itself is recorded; only the referral reward is used up
    assert ReferralGrant.objects.count() == 1 and Campaign.objects.get(type="referral").redemptions_count == 1
    assert account_for(member=referral, program=program).balance == 500


def test_a_refused_code_does_not_pay_the_referral_either(tenant, program, referral):
    friend = EngineMemberFactory(tenant=tenant, referred_by=referral)
    with pytest.raises(ApplicationError):
        checkout(tenant, friend, order_id="f-1", amount="60.00", codes=["NOPE-0000"])
    assert not ReferralGrant.objects.exists() and not Order.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_order_redeem_and_earn_once(tenant, program, member):
    code = percent_code(tenant, usage_limit=10)
    results, errors = [], []
    barrier = threading.Barrier(8)

    def attempt():
        try:
            barrier.wait()
            results.append(checkout(tenant, member, order_id="same", codes=[code.code]))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(r.created for r in results) == 1 and len(results) == 8
    assert {r.points_earned for r in results} == {85}
    assert Redemption.objects.count() == 1 and Order.objects.count() == 1
    code.refresh_from_db()
    assert code.redeemed_count == 1
    assert account_for(member=member, program=program).balance == 85


@pytest.mark.postgres  # the redemption engine's set-wise writes are per row on SQLite
def test_a_checkout_is_a_constant_number_of_queries(tenant, program, member, django_assert_max_num_queries):
    from django.db import connection as conn
    from django.test.utils import CaptureQueriesContext

    checkout(tenant, member, order_id="warm-up")
    with django_assert_max_num_queries(9):  # without codes: only the earning step's queries
        checkout(tenant, member, order_id="plain")
    counts = []
    for n in range(3):
        codes = [percent_code(tenant, value="5").code for _ in range(n + 1)]
        with CaptureQueriesContext(conn) as queries:
            checkout(tenant, member, order_id=f"coded-{n}", codes=codes)
        counts.append(len(queries))
    assert counts[0] == counts[1] == counts[2], counts  # more codes cost no more queries
    # redemption (locks, lines, usage, budgets, event, evaluation trace) + the order and its earning
    assert counts[0] <= 20, counts
