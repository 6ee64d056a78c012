"""The public reward calculator: a year of a visitor's habits through the real earning code, nothing written."""

import datetime as dt
import zoneinfo

import pytest
import time_machine
from django.apps import apps
from django.urls import reverse

from loyalty.forecast import forecast_year, program_terms, year_schedule
from loyalty.ledger.selectors import member_points_summary
from tests.api.conftest import client_for
from tests.factories import (
    EarningRuleFactory,
    MemberFactory,
    ProgramFactory,
    RewardFactory,
    TenantFactory,
    TierFactory,
    api_key_for,
)

pytestmark = pytest.mark.django_db

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
TODAY = dt.datetime(2027, 1, 1, 9, 0, tzinfo=BERLIN)  # the year runs from 1 January to 31 December 2027
HABITS = {"orders_per_month": "2", "order_amount": "50.00"}


@pytest.fixture
def shop():
    """A hand-made program: 1 point per 1.00 doubled at lunchtime (so on every order at midday), a fixed bonus of
    10 per order capped at 15 a month, 25 per review capped at 50 a month, Silver (500, x1.5) and Gold (2000, x2)."""
    tenant = TenantFactory(slug="corner-shop", name="Corner Shop", currency="EUR", time_zone="Europe/Berlin")
    program = ProgramFactory(tenant=tenant, points_name="stars", qualification_window_months=12)
    lunch = [{"weekdays": [0, 1, 2, 3, 4, 5, 6], "from": "11:00", "to": "14:00", "multiplier": "2"}]
    EarningRuleFactory(program=program, code="base", name="Spend", points_per_unit="1", happy_hours=lunch)
    EarningRuleFactory(
        program=program,
        code="bonus",
        name="Visit bonus",
        points=10,
        points_per_unit="0",
        apply_tier_multiplier=False,
        cap_points=15,
        cap_period="month",
    )
    EarningRuleFactory(
        program=program,
        code="review",
        name="Write a review",
        trigger="event",
        event_name="review",
        points=25,
        points_per_unit="0",
        apply_tier_multiplier=False,
        cap_points=50,
        cap_period="month",
    )
    TierFactory(program=program, code="silver", name="Silver", threshold=500, multiplier="1.5", rank=1)
    TierFactory(program=program, code="gold", name="Gold", threshold=2000, multiplier="2", rank=2)
    for name, cost, tiers in [
        ("Mug", 1000, []),
        ("Lounge access", 3000, ["gold"]),
        ("Bag", 4000, []),
        ("Silver socks", 100, ["silver"]),
        ("Trip", 10000, []),
    ]:
        RewardFactory(tenant=tenant, name=name, points_cost=cost, tier_codes=tiers)
    return tenant


def calculator_url(tenant) -> str:
    return reverse("cockpit:calculator", kwargs={"tenant_slug": tenant.slug})


def forecast(tenant, orders=2, amount="50.00", reviews=3):
    from decimal import Decimal

    return forecast_year(
        program_terms(tenant),
        tenant=tenant,
        start_day=TODAY.date(),
        orders_per_month=orders,
        order_amount=Decimal(amount),
        activities={"review": reviews},
    )


@time_machine.travel(TODAY, tick=False)
def test_the_year_is_worked_out_by_hand(shop):
    """Every month: 2 reviews of 25 count (the third passes the cap of 50), the first order's bonus is 10 and
    the second's 5 (the cap of 15). An order gives 50 x 2 (lunchtime) x the tier's multiplier.

    January and February without a tier: 25 + 110 + 25 + 105 = 265 each; the second order of February (the 22nd)
    reaches 530 >= 500: Silver. March to June in Silver: 25 + (150 + 10) + 25 + (150 + 5) = 365 each, so 1990 by
    the end of June; July's first review (the 6th) makes 2015 >= 2000: Gold, and July to December give
    25 + (200 + 10) + 25 + (200 + 5) = 465 each. 265 * 2 + 365 * 4 + 465 * 6 = 4780.
    """
    result = forecast(shop)
    assert [m.points for m in result.months] == [265, 265, 365, 365, 365, 365, 465, 465, 465, 465, 465, 465]
    assert [m.total for m in result.months][-1] == result.points_total == result.balance == 4780
    assert [(t.code if t else None, day) for t, day in result.tiers_reached] == [
        (None, dt.date(2027, 1, 1)),
        ("silver", dt.date(2027, 2, 22)),
        ("gold", dt.date(2027, 7, 6)),
    ]
    assert [m.tier.code if m.tier else None for m in result.months] == [None] + ["silver"] * 5 + ["gold"] * 6
    assert [m.tier_changed for m in result.months] == [False, True, False, False, False, False, True] + [False] * 5
    assert (result.points_pending, result.points_expired) == (0, 0)
    assert [m.orders for m in result.months] == [2] * 12 and [m.activities for m in result.months] == [3] * 12


def test_the_same_year_through_the_real_order_api_earns_the_same(shop):
    """Replay the calculator's schedule for a real member through POST /orders and /events, each at its time."""
    with time_machine.travel(TODAY, tick=False):
        expected = forecast(shop)
    member = MemberFactory(tenant=shop)
    api = client_for(api_key_for(shop)[1])
    schedule = year_schedule(start_day=TODAY.date(), tz=BERLIN, orders_per_month=2, activities={"review": 3})
    earned = 0
    for n, occurrence in enumerate(schedule):
        with time_machine.travel(occurrence.at, tick=False):
            if occurrence.is_order:
                body = {"order_id": f"o-{n}", "member": member.external_id, "amount": "50.00", "currency": "EUR"}
                response = api.post("/api/v1/orders", body, format="json")
            else:
                body = {"member": member.external_id, "event": occurrence.event}
                response = api.post("/api/v1/events", body, format="json")
        assert response.status_code == 201, response.content
        earned += response.json()["points_earned"]
    assert earned == expected.points_total == 4780
    assert member_points_summary(member)["balance"] == expected.balance
    tier = apps.get_model("loyalty", "MemberTier").objects.get(member=member).tier
    assert tier.code == expected.tier.code == "gold"
    changes = apps.get_model("loyalty", "TierChange").objects.filter(member=member).order_by("created_at")
    assert [(c.to_tier.code, c.created_at.astimezone(BERLIN).date()) for c in changes] == [
        (t.code, day) for t, day in expected.tiers_reached if t is not None
    ]


def _row_counts() -> dict[str, int]:
    """Rows of every table (unmanaged models are views over them)."""
    models = [m for m in apps.get_models() if m._meta.managed and not m._meta.proxy]
    return {model._meta.label: model._default_manager.count() for model in models}


@time_machine.travel(TODAY, tick=False)
def test_the_page_shows_the_year_and_writes_nothing(client, shop, django_assert_max_num_queries):
    before = _row_counts()
    with django_assert_max_num_queries(6):
        response = client.get(calculator_url(shop), {**HABITS, "activity-review": "3"})
    assert response.status_code == 200
    assert _row_counts() == before
    html = response.content.decode()
    assert '<dd data-testid="points-total">4780</dd>' in html and '<dd data-testid="tier">Gold</dd>' in html
    # Gold with 4780 stars: every reward up to 4000 but the Silver-only one; the trip is 5220 stars away.
    affordable = [item["name"] for item in response.context["results"]["affordable"]]
    assert affordable == ["Mug", "Lounge access", "Bag"]
    assert "5220 more stars and you could choose Trip." in html
    assert "Stars in a year" in html and "limits per day, week, month, year or membership count from zero" in html
    assert "Write a review" in html  # the activity is labelled with its rule's name
    assert 'for="id_activity-review"' in html


@time_machine.travel(TODAY, tick=False)
@pytest.mark.parametrize(
    "habits",
    [
        {"orders_per_month": "0", "order_amount": "0"},
        {"orders_per_month": "100", "order_amount": "100000.00", "activity-review": "100"},
        {"orders_per_month": "7", "order_amount": "12.34", "activity-review": "1"},
    ],
)
def test_the_page_costs_the_same_queries_whatever_the_input(client, shop, habits, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        response = client.get(calculator_url(shop), habits)
    assert response.status_code == 200 and "results" in response.context and response.context["results"]


@pytest.mark.parametrize(
    "habits,field",
    [
        ({"orders_per_month": "101", "order_amount": "10"}, "orders_per_month"),
        ({"orders_per_month": "-1", "order_amount": "10"}, "orders_per_month"),
        ({"orders_per_month": "two", "order_amount": "10"}, "orders_per_month"),
        ({"orders_per_month": "2", "order_amount": "100000.01"}, "order_amount"),
        ({"orders_per_month": "2", "order_amount": "1.234"}, "order_amount"),
        ({"orders_per_month": "2", "order_amount": "NaN"}, "order_amount"),
        ({"orders_per_month": "2", "order_amount": "-5"}, "order_amount"),
        ({"orders_per_month": "2"}, "order_amount"),
        ({"orders_per_month": "2", "order_amount": "10", "activity-review": "1000"}, "activity-review"),
        ({"orders_per_month": "2", "order_amount": "10", "activity-review": "1.5"}, "activity-review"),
    ],
)
def test_bad_input_is_a_form_error_not_a_500(client, shop, habits, field):
    response = client.get(calculator_url(shop), habits)
    assert response.status_code == 200
    form = response.context["form"]
    assert field in form.errors and "results" not in response.context
    assert 'aria-invalid="true"' in response.content.decode()


def test_an_unknown_tenant_is_404(client, shop):
    assert client.get(reverse("cockpit:calculator", kwargs={"tenant_slug": "no-such-shop"})).status_code == 404


@pytest.mark.parametrize("query", [{}, {"utm_source": "newsletter"}])
def test_the_empty_form_is_public_and_shows_no_figures_nor_errors(client, shop, query):
    response = client.get(calculator_url(shop), query)
    assert response.status_code == 200 and "results" not in response.context
    assert not response.context["form"].is_bound and 'method="get"' in response.content.decode()


def test_an_htmx_request_gets_the_form_and_results_only(client, shop):
    response = client.get(calculator_url(shop), {**HABITS, "activity-review": "3"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<div id="calculator">')
    assert "<html" not in html and 'data-testid="points-total"' in html


def test_figures_past_what_a_balance_holds_are_a_form_error(client, shop):
    from loyalty.models import EarningRule

    EarningRule.objects.filter(code="base").update(points_per_unit="9999")
    response = client.get(calculator_url(shop), {"orders_per_month": "100", "order_amount": "100000.00"})
    assert response.status_code == 200 and response.context["results"] is None
    assert response.context["form"].non_field_errors()


def test_a_tenant_without_a_program_says_so(client):
    tenant = TenantFactory(slug="no-program")
    response = client.get(calculator_url(tenant))
    assert response.status_code == 200 and "There is no points program" in response.content.decode()


@time_machine.travel(TODAY, tick=False)
def test_a_daily_cap_holds_on_each_day_of_the_year():
    """62 orders in January's 31 days: two a day. With 100 points a day at most, each day gives 80 + 20."""
    from decimal import Decimal

    tenant = TenantFactory(time_zone="Europe/Berlin")
    program = ProgramFactory(tenant=tenant)
    EarningRuleFactory(program=program, code="spend", points_per_unit="1", cap_points=100, cap_period="day")
    result = forecast_year(
        program_terms(tenant),
        tenant=tenant,
        start_day=TODAY.date(),
        orders_per_month=62,
        order_amount=Decimal("80.00"),
        activities={},
    )
    assert result.months[0].orders == 62 and result.months[0].points == 31 * 100


@time_machine.travel(TODAY, tick=False)
def test_pending_points_are_released_and_lots_expire_within_the_year():
    """One order of 100.00 mid-month (the 15th or 16th at midday), points kept 90 days, 5 more held 30 days.

    Spend: the lots of October, November and December outlive the year (300); the nine before expire (900).
    Held: December's 5 are still on hold on 1 January 2028; those released from September on live on (15),
    the eight released before expire (40). 1260 = 315 spendable + 5 on hold + 940 expired.
    """
    from decimal import Decimal

    tenant = TenantFactory(time_zone="Europe/Berlin")
    program = ProgramFactory(tenant=tenant, expiry_policy={"policy": "days", "days": 90})
    EarningRuleFactory(program=program, code="spend", points_per_unit="1")
    EarningRuleFactory(program=program, code="held", points=5, points_per_unit="0", pending_days=30)
    result = forecast_year(
        program_terms(tenant),
        tenant=tenant,
        start_day=TODAY.date(),
        orders_per_month=1,
        order_amount=Decimal("100.00"),
        activities={},
    )
    assert (result.points_total, result.balance, result.points_pending, result.points_expired) == (1260, 315, 5, 940)
