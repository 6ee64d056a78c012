"""Orders, returns, custom events and program declaration through the API."""

import copy

import pytest

from tests.api.conftest import assert_error, client_for
from tests.factories import EarningRuleFactory, api_key_for, earning_setup

pytestmark = pytest.mark.django_db


def order(member, order_id="o-1", amount="120.00", **extra):
    return {"order_id": order_id, "member": member.external_id, "amount": amount, "currency": "EUR", **extra}


def test_a_paid_order_earns_points_once(api, tenant):
    _, _, member = earning_setup(tenant)
    body = order(member, items=[{"sku": "TSHIRT", "category": "apparel", "quantity": 2, "unit_price": "60.00"}])
    first = api.post("/api/v1/orders", body, format="json")
    assert first.status_code == 201, first.content
    result = first.json()
    assert result["order_id"] == "o-1" and result["member"] == member.external_id
    assert result["points_earned"] == 120 and result["entries"][0]["kind"] == "earn"
    again = api.post("/api/v1/orders/", body, format="json")
    assert again.status_code == 200 and again.json() == result
    assert api.get(f"/api/v1/members/{member.external_id}").json()["points"]["balance"] == 120


def test_the_order_answer_is_already_in_the_documented_shape(api, tenant):
    """The view answers the service's body as it is: the documenting serializer would change nothing."""
    import json

    from api.views.earning import OrderOutputSerializer
    from tests.factories import CampaignFactory, CodeFactory

    _, _, member = earning_setup(tenant)
    code = CodeFactory(campaign=CampaignFactory(tenant=tenant), code="TENOFF")
    bodies = [
        api.post("/api/v1/orders", order(member), format="json").json(),
        api.post("/api/v1/orders", order(member, order_id="o-2", codes=[code.code]), format="json").json(),
    ]
    assert "redemption" in bodies[1], bodies[1]
    for body in bodies:
        assert json.loads(json.dumps(OrderOutputSerializer(body).data)) == body


@pytest.mark.parametrize(
    "change,status,code,field",
    [
        ({"currency": "USD"}, 400, "invalid_order", "currency"),
        ({"amount": "-1"}, 400, "validation_error", "amount"),
        ({"amount": "abc"}, 400, "validation_error", "amount"),
        ({"status": "refunded"}, 400, "validation_error", "status"),
        ({"items": [{"quantity": 0}]}, 400, "validation_error", "items"),
        ({"order_id": ""}, 400, "validation_error", "order_id"),
    ],
)
def test_a_bad_order_is_400_and_earns_nothing(api, tenant, change, status, code, field):
    _, _, member = earning_setup(tenant)
    error = assert_error(api.post("/api/v1/orders", {**order(member), **change}, format="json"), status, code)
    assert field in error["details"]
    assert api.get(f"/api/v1/members/{member.external_id}").json()["points"]["balance"] == 0


def test_an_order_of_an_unknown_member_is_404(api, tenant):
    earning_setup(tenant)
    body = {"order_id": "o-1", "member": "nobody", "amount": "1.00", "currency": "EUR"}
    assert_error(api.post("/api/v1/orders", body, format="json"), 404, "member_not_found")


def test_a_frozen_tenant_refuses_earning_until_unfrozen(api, tenant):
    _, _, member = earning_setup(tenant)
    assert api.post("/api/v1/tenant/freeze", {"reason": "incident"}, format="json").status_code == 200
    assert_error(api.post("/api/v1/orders", order(member), format="json"), 422, "tenant_frozen")
    api.post("/api/v1/tenant/unfreeze")
    assert api.post("/api/v1/orders", order(member), format="json").status_code == 201


def test_earning_needs_the_earn_scope(tenant):
    _, _, member = earning_setup(tenant)
    _, raw = api_key_for(tenant, scopes=["read", "redeem"])
    assert_error(client_for(raw).post("/api/v1/orders", order(member), format="json"), 403, "insufficient_scope")


def test_a_return_reverses_points_once_per_return_id(api, tenant):
    _, _, member = earning_setup(tenant)
    api.post("/api/v1/orders", order(member, amount="100.00"), format="json")
    first = api.post("/api/v1/orders/o-1/returns", {"amount": "40.00", "return_id": "r-1"}, format="json")
    assert first.status_code == 201, first.content
    assert first.json()["points_reversed"] == 40 and first.json()["entries"][0]["points"] == -40
    again = api.post("/api/v1/orders/o-1/returns", {"amount": "40.00", "return_id": "r-1"}, format="json")
    assert again.status_code == 200 and again.json() == first.json()
    assert api.get(f"/api/v1/members/{member.external_id}").json()["points"]["balance"] == 60


def test_return_errors(api, tenant):
    _, _, member = earning_setup(tenant)
    api.post("/api/v1/orders", order(member, amount="100.00"), format="json")
    assert_error(
        api.post("/api/v1/orders/o-1/returns", {"amount": "500.00"}, format="json"), 422, "return_exceeds_order"
    )
    assert_error(api.post("/api/v1/orders/o-1/returns", {}, format="json"), 400, "invalid_return")
    assert_error(api.post("/api/v1/orders/o-1/returns", {"amount": "x"}, format="json"), 400, "validation_error")
    assert_error(api.post("/api/v1/orders/nope/returns", {"amount": "1.00"}, format="json"), 404, "order_not_found")


def test_a_custom_event_earns_its_rule_points(api, tenant):
    program, _, member = earning_setup(tenant)
    EarningRuleFactory(program=program, code="news", trigger="event", event_name="newsletter_subscribed", points=50)
    body = {"member": member.external_id, "event": "newsletter_subscribed", "metadata": {"list": "weekly"}}
    response = api.post("/api/v1/events", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["event"] == "newsletter_subscribed" and response.json()["points_earned"] == 50
    assert_error(api.post("/api/v1/events", {"member": member.external_id}, format="json"), 400, "validation_error")
    body["metadata"] = "not an object"
    assert_error(api.post("/api/v1/events", body, format="json"), 400, "validation_error")
    assert_error(api.post("/api/v1/events", {"member": "nobody", "event": "x"}, format="json"), 404, "member_not_found")


PROGRAM = {
    "name": "Club",
    "currency": "EUR",
    "points_name": "stars",
    "expiry": {"policy": "rolling_quarter", "years": 2},
    "tiers": [
        {"code": "bronze", "name": "Bronze", "threshold": 0, "multiplier": "1.0"},
        {"code": "silver", "name": "Silver", "threshold": 1000, "multiplier": "1.5"},
    ],
    "earning_rules": [
        {"code": "spend", "trigger": "order_paid", "points_per_unit": "1", "unit_amount": "1.00"},
        {"code": "news", "trigger": "event", "event": "newsletter_subscribed", "points": 50},
    ],
}


def test_a_program_is_declared_read_back_and_replaced(api, tenant):
    response = api.put("/api/v1/programs/club", PROGRAM, format="json")
    assert response.status_code == 200, response.content
    document = api.get("/api/v1/programs/club").json()
    assert document["name"] == "Club" and document["points_name"] == "stars"
    assert [t["code"] for t in document["tiers"]] == ["bronze", "silver"]
    assert {r["code"] for r in document["earning_rules"]} == {"spend", "news"}
    replaced = api.put("/api/v1/programs/club/", {**PROGRAM, "tiers": PROGRAM["tiers"][:1]}, format="json").json()
    assert [t["code"] for t in replaced["tiers"]] == ["bronze"]


def test_program_errors(api, tenant):
    error = assert_error(
        api.put("/api/v1/programs/club", {**PROGRAM, "currency": 5}, format="json"), 400, "invalid_program"
    )
    assert "currency" in error["details"]
    assert_error(api.put("/api/v1/programs/club", {"currency": "EUR"}, format="json"), 400, "validation_error")
    assert_error(api.put("/api/v1/programs/club", [1, 2], format="json"), 400, "validation_error")
    assert_error(api.get("/api/v1/programs/club"), 404, "program_not_found")
    _, raw = api_key_for(tenant, scopes=["read"])
    assert_error(client_for(raw).put("/api/v1/programs/club", PROGRAM, format="json"), 403, "insufficient_scope")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["earning_rules"][0].update(rule=5), "earning_rules[0].rule"),
        (lambda d: d["earning_rules"][0].update(starts_at="2026-02-30T10:00:00Z"), "earning_rules[0].starts_at"),
        (lambda d: d["tiers"][1].update(multiplier="1000"), "tiers[1].multiplier"),
        (lambda d: d.update(points_value={"points": 100, "amount": "1e30"}), "points_value.amount"),
    ],
)
def test_a_program_document_the_columns_cannot_hold_is_400_not_500(api, tenant, change, field):
    document = copy.deepcopy(PROGRAM)
    change(document)
    error = assert_error(api.put("/api/v1/programs/club", document, format="json"), 400, "invalid_program")
    assert isinstance(error["details"][field], str), error
