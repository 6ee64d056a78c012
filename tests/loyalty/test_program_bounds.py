"""A program document that would break later requests cannot be declared (API and admin), and the earning path
survives one stored before the bounds."""

import copy
import datetime as dt
import json

import pytest

from loyalty.ledger.jobs import expiry_warnings_send
from loyalty.models import EarningRule, LedgerEntry, Program
from loyalty.services.program import program_declare
from loyalty.services.tiers import tier_evaluate
from tests.api.conftest import assert_error, client_for
from tests.factories import TierFactory, UserFactory, api_key_for, earning_setup
from tests.loyalty.test_program_admin import change_url, page_data, state
from tests.loyalty.test_program_declare import CONTRACT_EXAMPLE

pytestmark = pytest.mark.django_db

BIG = 10**12


@pytest.fixture
def api(tenant):
    return client_for(api_key_for(tenant)[1])


def _set(path, value):
    def change(document):
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_set(["expiry"], {"policy": "days", "days": BIG}), "expiry.days"),  # today: every order a 500
        (_set(["expiry"], {"policy": "days", "days": 36501}), "expiry.days"),
        (_set(["expiry"], {"policy": "rolling_quarter", "years": 101}), "expiry.years"),
        (_set(["expiry"], {"policy": "inactivity", "months": 1201}), "expiry.months"),
        (_set(["expiry"], {"policy": "end_of_period", "period": "year", "count": 9000}), "expiry.count"),
        (_set(["expiry"], {"policy": "end_of_period", "period": "month", "count": BIG}), "expiry.count"),
        (_set(["tiers", 2, "expiry"], {"policy": "days", "days": BIG}), "tiers[2].expiry.days"),
        (_set(["points_value"], {"points": 2**31, "amount": "1.00"}), "points_value.points"),
        (_set(["qualification_window_months"], BIG), "qualification_window_months"),
        (_set(["expiry_warning_days"], BIG), "expiry_warning_days"),
        (_set(["tiers", 1, "threshold"], 2**31), "tiers[1].threshold"),
        (_set(["tiers", 1, "multiplier"], "1.0001"), "tiers[1].multiplier"),
        (_set(["earning_rules", 0, "points"], 2**31), "earning_rules[0].points"),
        (_set(["earning_rules", 0, "pending_days"], BIG), "earning_rules[0].pending_days"),
        (_set(["earning_rules", 2, "cap"], {"points": 2**31, "per": "month"}), "earning_rules[2].cap.points"),
        (_set(["earning_rules", 0, "tier_multipliers"], {"gold": "1e9"}), "earning_rules[0].tier_multipliers.gold"),
        (
            _set(["earning_rules", 0, "happy_hours"], [{"from": "17:00", "to": "20:00", "multiplier": "1e9"}]),
            "earning_rules[0].happy_hours[0].multiplier",
        ),
        (
            _set(["earning_rules", 0, "happy_hours"], [{"from": "17:00", "to": "20:00"}] * 21),
            "earning_rules[0].happy_hours",
        ),
        (_set(["earning_rules", 0, "categories"], ["x"] * 51), "earning_rules[0].categories"),
        (_set(["tiers"], [{"code": f"t{n}", "threshold": n} for n in range(51)]), "tiers"),
        (_set(["earning_rules"], [{"code": f"r{n}", "points": 1} for n in range(101)]), "earning_rules"),
    ],
)
def test_a_number_past_its_bound_is_400_through_the_api(api, tenant, change, field):
    document = copy.deepcopy(CONTRACT_EXAMPLE)
    change(document)
    error = assert_error(api.put("/api/v1/programs/club", document, format="json"), 400, "invalid_program")
    assert isinstance(error["details"][field], str) and error["details"][field], error
    assert not Program.objects.filter(tenant=tenant).exists()


def test_the_bounds_themselves_are_accepted(api, tenant):
    document = copy.deepcopy(CONTRACT_EXAMPLE)
    document["expiry"] = {"policy": "days", "days": 36500}
    document["tiers"][2]["expiry"] = {"policy": "end_of_period", "period": "year", "count": 100}
    document["earning_rules"][0]["pending_days"] = 3650
    document["earning_rules"][0]["tier_multipliers"] = {"gold": "999.999"}
    response = api.put("/api/v1/programs/club", document, format="json")
    assert response.status_code in (200, 201), response.content


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_superuser=True))
    return client


@pytest.fixture
def club(tenant):
    return program_declare(tenant=tenant, code="club", document=CONTRACT_EXAMPLE)


def test_the_admin_refuses_an_expiry_past_its_bound_with_a_form_error(admin_client, club):
    before = state(club)
    data = page_data(admin_client.get(change_url(club)))
    data["expiry_policy"] = json.dumps({"policy": "days", "days": BIG})
    response = admin_client.post(change_url(club), data)
    assert response.status_code == 200
    assert "expiry.days" in str(response.context["adminform"].form.errors["expiry_policy"])
    assert state(club) == before


def test_the_admin_refuses_numbers_past_their_bounds_in_the_inlines_with_form_errors(admin_client, club):
    before = state(club)
    data = page_data(admin_client.get(change_url(club)))
    data["tiers-1-threshold"] = str(2**31)
    data["earning_rules-0-pending_days"] = str(BIG)
    data["earning_rules-0-happy_hours"] = json.dumps([{"from": "17:00", "to": "20:00", "multiplier": "1e9"}])
    response = admin_client.post(change_url(club), data)
    assert response.status_code == 200
    tiers, rules = (inline.formset for inline in response.context["inline_admin_formsets"])
    assert tiers.forms[1].errors["threshold"] and rules.forms[0].errors["pending_days"]
    data["tiers-1-threshold"] = "1000"
    data["earning_rules-0-pending_days"] = "0"
    response = admin_client.post(change_url(club), data)
    assert response.status_code == 200
    rules = response.context["inline_admin_formsets"][1].formset
    assert "999.999" in str(rules.forms[0].errors["happy_hours"])
    assert state(club) == before


def test_the_admin_refuses_a_rule_with_hundreds_of_terms_with_a_form_error(admin_client, club):
    before = state(club)
    data = page_data(admin_client.get(change_url(club)))
    data["earning_rules-0-rule"] = " or ".join(["order.amount > 1"] * 600)
    response = admin_client.post(change_url(club), data)
    assert response.status_code == 200
    rules = response.context["inline_admin_formsets"][1].formset
    assert "at most" in str(rules.forms[0].errors["rule"])
    assert state(club) == before


def _order(api, member, order_id="o-1", amount="100.00"):
    body = {"order_id": order_id, "member": member.external_id, "amount": amount, "currency": "EUR"}
    return api.post("/api/v1/orders", body, format="json")


def test_an_expiry_stored_before_the_bounds_is_read_clamped_and_the_order_is_recorded(api, tenant):
    program, _, member = earning_setup(tenant, expiry={"policy": "days", "days": BIG})
    response = _order(api, member)
    assert response.status_code == 201, response.content
    entry = LedgerEntry.objects.get(account__member=member)
    assert entry.points == 100
    assert entry.expires_at - entry.created_at == dt.timedelta(days=36500)


@pytest.mark.parametrize(
    "policy",
    [
        {"policy": "rolling_quarter", "years": BIG},
        {"policy": "end_of_period", "period": "month", "count": BIG},
        {"policy": "inactivity", "months": BIG},
        {"policy": "days", "days": "many"},
        {"policy": "fortnightly"},
    ],
)
def test_any_bad_stored_expiry_still_records_the_order(api, tenant, policy):
    _, _, member = earning_setup(tenant, expiry=policy)
    assert _order(api, member).status_code == 201


def test_pending_days_stored_before_the_bounds_are_read_clamped(api, tenant):
    _, rule, member = earning_setup(tenant)
    EarningRule.objects.filter(pk=rule.pk).update(pending_days=2**31 - 1)
    response = _order(api, member)
    assert response.status_code == 201, response.content
    assert response.json()["points_pending"] == 100


def test_an_order_whose_points_a_balance_cannot_hold_is_422_and_writes_nothing(api, tenant):
    # Every number is within its bound, their product is not: 99999999.9999 points per 0.01.
    _, _, member = earning_setup(tenant, points_per_unit="99999999.9999", unit_amount="0.01")
    error = assert_error(_order(api, member, amount="1000.00"), 422, "points_out_of_range")
    assert error["details"]["maximum"] == 2**31 - 1
    assert not LedgerEntry.objects.filter(account__member=member).exists()
    assert _order(api, member, "o-2", amount="0.01").status_code == 201  # nothing was recorded for o-1


def test_a_qualification_window_and_warning_days_stored_before_the_bounds_are_read_clamped(api, tenant):
    program, _, member = earning_setup(tenant, expiry={"policy": "days", "days": 30})
    TierFactory(program=program, code="gold", threshold=50)
    Program.objects.filter(pk=program.pk).update(qualification_window_months=2**31 - 1, expiry_warning_days=2**31 - 1)
    assert _order(api, member).status_code == 201
    program.refresh_from_db()
    assert tier_evaluate(member=member, program=program).code == "gold"
    assert expiry_warnings_send() == 1
