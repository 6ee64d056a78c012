import copy
import datetime as dt

import pytest
import time_machine

from common.errors import ApplicationError
from loyalty.models import EarningRule, MemberTier, Program, Tier, TierChange
from loyalty.selectors import member_tier, program_document
from loyalty.services.program import program_declare
from loyalty.services.tiers import tier_evaluate
from loyalty.tasks import reevaluate_tiers
from rewards.services.checkout import order_checkout
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

CONTRACT_EXAMPLE = {
    "name": "Club",
    "currency": "EUR",
    "points_name": "stars",
    "expiry": {"policy": "rolling_quarter", "years": 2},
    "tiers": [
        {"code": "bronze", "name": "Bronze", "threshold": 0, "multiplier": "1.0"},
        {"code": "silver", "name": "Silver", "threshold": 1000, "multiplier": "1.5"},
        {
            "code": "gold",
            "name": "Gold",
            "threshold": 5000,
            "multiplier": "2.0",
            "expiry": {"policy": "days", "days": 1095},
        },
    ],
    "earning_rules": [
        {
            "code": "spend",
            "trigger": "order_paid",
            "points_per_unit": "1",
            "unit_amount": "1.00",
            "rule": "order.amount >= 10",
            "happy_hours": [{"weekdays": [5, 6], "from": "17:00", "to": "20:00", "multiplier": "2"}],
        },
        {
            "code": "newsletter",
            "trigger": "event",
            "event": "newsletter_subscribed",
            "points": 50,
            "cap": {"points": 50, "per": "lifetime"},
        },
        {
            "code": "social",
            "trigger": "event",
            "event": "social_liked",
            "points": 10,
            "cap": {"points": 100, "per": "month"},
        },
    ],
}


def test_contract_example_declares_a_program(tenant):
    program = program_declare(tenant=tenant, code="club", document=CONTRACT_EXAMPLE)
    assert (program.name, program.points_name, program.expiry_policy) == (
        "Club",
        "stars",
        {"policy": "rolling_quarter", "years": 2},
    )
    assert list(Tier.objects.filter(program=program).order_by("rank").values_list("code", flat=True)) == [
        "bronze",
        "silver",
        "gold",
    ]
    social = EarningRule.objects.get(program=program, code="social")
    assert (social.trigger, social.event_name, social.cap_points, social.cap_period) == (
        "event",
        "social_liked",
        100,
        "month",
    )


def test_export_round_trips(tenant):
    program = program_declare(tenant=tenant, code="club", document=CONTRACT_EXAMPLE)
    exported = program_document(program)
    again = program_declare(tenant=tenant, code="club", document=exported)
    assert again.pk == program.pk
    assert program_document(again) == exported
    assert exported["tiers"][2]["expiry"] == {"policy": "days", "days": 1095}
    assert exported["earning_rules"][0]["happy_hours"][0]["multiplier"] == "2"


def test_redeclaring_replaces_tiers_and_rules(tenant):
    program_declare(tenant=tenant, code="club", document=CONTRACT_EXAMPLE)
    smaller = copy.deepcopy(CONTRACT_EXAMPLE)
    smaller["tiers"] = smaller["tiers"][:1]
    smaller["earning_rules"] = smaller["earning_rules"][:1]
    smaller["name"] = "Club 2"
    program = program_declare(tenant=tenant, code="club", document=smaller)
    assert Program.objects.for_tenant(tenant).get().name == "Club 2"
    assert list(Tier.objects.filter(program=program).values_list("code", flat=True)) == ["bronze"]
    assert list(EarningRule.objects.filter(program=program).values_list("code", flat=True)) == ["spend"]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["earning_rules"][0].update(rule="order.amout >= 10"), "earning_rules[0].rule"),
        (lambda d: d["earning_rules"][0].update(rule="order.amount >="), "earning_rules[0].rule"),
        (lambda d: d.update(currency="USD"), "currency"),
        (lambda d: d.update(expiry={"policy": "days"}), "expiry.days"),
        (lambda d: d["tiers"][1].update(threshold=0), "tiers"),
        (lambda d: d["earning_rules"][1].update(cap={"points": 5, "per": "fortnight"}), "earning_rules[1].cap"),
        (lambda d: d["earning_rules"][0]["happy_hours"][0].update(to="25:00"), "earning_rules[0].happy_hours[0]"),
        (lambda d: d["earning_rules"][2].pop("event"), "earning_rules[2].event"),
        (lambda d: d.pop("name"), "name"),
        (lambda d: d["earning_rules"][0].update(rule=5), "earning_rules[0].rule"),
        (lambda d: d["earning_rules"][0].update(starts_at="2026-02-30T10:00:00Z"), "earning_rules[0].starts_at"),
        (lambda d: d["earning_rules"][0].update(points_per_unit="1e30"), "earning_rules[0].points_per_unit"),
        (lambda d: d["earning_rules"][2].update(event="e" * 101), "earning_rules[2].event"),
        (lambda d: d["earning_rules"][0].update(trigger=None), "earning_rules[0].trigger"),
        (lambda d: d["tiers"][1].update(multiplier="1000"), "tiers[1].multiplier"),
        (lambda d: d["tiers"][1].update(code="bronze"), "tiers[1].code"),
        (lambda d: d.update(points_value={"points": 100, "amount": "1e30"}), "points_value.amount"),
        (lambda d: d.update(tiers=None), "tiers"),
    ],
)
def test_invalid_documents_are_refused_with_field_details_and_nothing_written(tenant, mutate, field):
    document = copy.deepcopy(CONTRACT_EXAMPLE)
    mutate(document)
    with pytest.raises(ApplicationError) as exc:
        program_declare(tenant=tenant, code="club", document=document)
    assert exc.value.code == "invalid_program" and exc.value.status == 400
    assert field in exc.value.details, exc.value.details
    assert not Program.objects.for_tenant(tenant).exists()


def test_every_problem_of_a_document_is_reported_at_once_as_path_and_message(tenant):
    document = copy.deepcopy(CONTRACT_EXAMPLE)
    document["points_name"] = ""
    document["tiers"][0]["threshold"] = -1
    document["tiers"][2]["expiry"] = {"policy": "days", "days": 0}
    document["earning_rules"][0]["happy_hours"][0]["weekdays"] = [8]
    document["earning_rules"][1]["cap"] = {"per": "month"}
    document["earning_rules"][2]["tier_multipliers"] = {"platinum": "x"}
    with pytest.raises(ApplicationError) as exc:
        program_declare(tenant=tenant, code="the club", document=document)
    assert exc.value.details == {
        "code": "must be letters, digits, - and _ (at most 50)",
        "points_name": "required",
        "tiers[0].threshold": "must be a whole number >= 0",
        "tiers[2].expiry.days": "must be a whole number >= 1",
        "earning_rules[0].happy_hours[0].weekdays": "must be a list of 0 (Monday) to 6 (Sunday)",
        "earning_rules[1].cap.points": "required",
        "earning_rules[2].tier_multipliers.platinum": "unknown tier",
    }
    with pytest.raises(ApplicationError) as exc:
        program_declare(tenant=tenant, code="club", document=["not", "an", "object"])
    assert (exc.value.code, exc.value.details) == ("invalid_program", {"non_field_errors": "must be an object"})


def test_tiers_move_up_at_once_and_down_only_at_evaluation(tenant):
    program = program_declare(tenant=tenant, code="club", document=CONTRACT_EXAMPLE)
    member = MemberFactory(tenant=tenant)
    with time_machine.travel(dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC), tick=False):
        result = order_checkout(
            tenant=tenant, member=member, order_id="big", amount="1200.00", currency="EUR", items=[]
        )
    assert result.tier == {"code": "silver", "name": "Silver"}
    with time_machine.travel(dt.datetime(2026, 12, 1, tzinfo=dt.UTC), tick=False):
        assert reevaluate_tiers.delay().get() == {"changed": {program.pk: 0}}
    with time_machine.travel(dt.datetime(2027, 1, 6, tzinfo=dt.UTC), tick=False):
        assert reevaluate_tiers.delay().get() == {"changed": {program.pk: 1}}
    assert member_tier(member).code == "bronze"
    changes = list(
        TierChange.objects.filter(member=member).order_by("created_at").values_list("reason", "to_tier__code")
    )
    assert changes == [("upgrade", "silver"), ("downgrade", "bronze")]
    assert MemberTier.objects.get(member=member).qualifying_points == 0


def test_tier_evaluate_one_member(tenant):
    program_declare(tenant=tenant, code="club", document=CONTRACT_EXAMPLE)
    member = MemberFactory(tenant=tenant)
    assert tier_evaluate(member=member).code == "bronze"
