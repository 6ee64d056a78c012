"""The program console: every change of a program (add, change with its tier and earning-rule inlines, import)
is a declaration through `program_declare`, as `PUT /api/v1/programs/{code}` is."""

import copy
import json

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.forms import CheckboxInput, MultiWidget
from django.urls import reverse
from guardian.shortcuts import assign_perm

from config.roles import sync_roles
from loyalty.models import EarningRule, Program, Tier
from loyalty.selectors import program_document
from loyalty.services.program import program_declare
from members.admin_tenancy import ACCESS_TENANT
from tests.api.conftest import client_for
from tests.factories import UserFactory, api_key_for
from tests.loyalty.test_program_declare import CONTRACT_EXAMPLE

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(db):
    return UserFactory(is_superuser=True)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def club(tenant):
    return program_declare(tenant=tenant, code="club", document=CONTRACT_EXAMPLE)


def change_url(program):
    return reverse("admin:loyalty_program_change", args=[program.pk])


def _field_data(bound_field) -> dict[str, str]:
    """What a browser posts back for one field of the page as shown."""
    widget, name = bound_field.field.widget, bound_field.html_name
    value = bound_field.value()  # prepared for the widget (a JSON field's text, a choice's key)
    if isinstance(widget, CheckboxInput):
        return {name: "on"} if value else {}
    if isinstance(widget, MultiWidget):  # the admin's split date and time
        parts = widget.decompress(value)
        return {f"{name}_{n}": "" if part is None else str(part) for n, part in enumerate(parts)}
    return {name: "" if value is None else str(value)}


def page_data(response) -> dict[str, str]:
    """The POST of the add or change page as the browser shows it: form, inline rows and management forms."""
    data: dict[str, str] = {}
    for bound_field in response.context["adminform"].form:
        data.update(_field_data(bound_field))
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for bound_field in formset.management_form:
            data[bound_field.html_name] = str(bound_field.value())
        for form in formset.forms:
            for bound_field in form:
                if bound_field.name != "DELETE":
                    data.update(_field_data(bound_field))
    return data


def add_row(data: dict[str, str], prefix: str, fields: dict[str, str]) -> None:
    n = int(data[f"{prefix}-TOTAL_FORMS"])
    data[f"{prefix}-TOTAL_FORMS"] = str(n + 1)
    data.update({f"{prefix}-{n}-{name}": value for name, value in fields.items()})


def state(program) -> dict:
    """The program's rows and their history, without ids, tenants and times."""
    ignore = {"id", "tenant_id", "program_id", "created_at", "updated_at"}

    def rows(model, **filters):
        return [
            {k: v for k, v in row.items() if k not in ignore}
            for row in model.objects.filter(**filters).order_by("code").values()
        ]

    def history(model, **filters):
        return list(
            model.history.filter(**filters)
            .order_by("history_id")
            .values_list("code", "history_type", "history_change_reason")
        )

    return {
        "program": rows(Program, pk=program.pk),
        "tiers": rows(Tier, program=program),
        "rules": rows(EarningRule, program=program),
        "history": [
            history(Program, id=program.pk),
            history(Tier, program_id=program.pk),
            history(EarningRule, program_id=program.pk),
        ],
    }


def test_program_pages_load(admin_client, club):
    assert admin_client.get(reverse("admin:loyalty_program_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:loyalty_program_add")).status_code == 200
    assert admin_client.get(change_url(club)).status_code == 200
    assert admin_client.get(reverse("admin:loyalty_earningrule_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:loyalty_tier_changelist")).status_code == 200


def test_the_page_posted_back_unchanged_declares_the_same_program(admin_client, club):
    before = program_document(club)
    response = admin_client.post(change_url(club), page_data(admin_client.get(change_url(club))))
    assert response.status_code == 302
    club.refresh_from_db()
    assert program_document(club) == before
    reasons = set(Tier.history.filter(program_id=club.pk).values_list("history_change_reason", flat=True))
    assert reasons == {"declared"}


def test_a_change_through_the_admin_makes_the_rows_and_history_of_the_api_declaration(
    admin_client, admin_user, tenant, other_tenant, club
):
    # The same program in two tenants; one is changed in the admin, the other with PUT /api/v1/programs/club.
    twin = program_declare(tenant=other_tenant, code="club", document=CONTRACT_EXAMPLE)
    data = page_data(admin_client.get(change_url(club)))
    assert [data[f"earning_rules-{n}-code"] for n in range(3)] == ["spend", "newsletter", "social"]
    data["name"] = "Club Plus"
    data["tiers-1-threshold"] = "1200"
    data["earning_rules-0-rule"] = "order.amount >= 20"
    data["earning_rules-2-DELETE"] = "on"
    add_row(
        data,
        "earning_rules",
        {"code": "review", "trigger": "event", "event_name": "review_written", "points": "25", "points_per_unit": "0"}
        | {"unit_amount": "1.00", "rounding": "down", "categories": "[]", "tier_multipliers": "{}"}
        | {"happy_hours": "[]", "pending_days": "0", "priority": "3", "active": "on", "apply_tier_multiplier": "on"}
        | {"starts_at_0": "", "starts_at_1": "", "ends_at_0": "", "ends_at_1": "", "program": str(club.pk)},
    )
    response = admin_client.post(change_url(club), data)
    assert response.status_code == 302, response.context and response.context["errors"]

    document = copy.deepcopy(CONTRACT_EXAMPLE)
    document["name"] = "Club Plus"
    document["tiers"][1]["threshold"] = 1200
    document["earning_rules"][0]["rule"] = "order.amount >= 20"
    document["earning_rules"][2] = {"code": "review", "trigger": "event", "event": "review_written", "points": 25}
    api = client_for(api_key_for(other_tenant)[1])
    assert api.put("/api/v1/programs/club", document, format="json").status_code == 200

    club.refresh_from_db()
    twin.refresh_from_db()
    assert program_document(club)["name"] == "Club Plus"
    assert program_document(club) == program_document(twin)
    assert state(club) == state(twin)
    rule_history = state(club)["history"][2]
    assert ("social", "-", None) in rule_history and ("review", "+", "declared") in rule_history
    last = Program.history.filter(id=club.pk).latest("history_id")
    assert last.history_user == admin_user and last.history_change_reason == "declared"


def test_rows_added_since_the_page_was_loaded_are_kept(admin_client, tenant, club):
    data = page_data(admin_client.get(change_url(club)))
    late = {"code": "late", "trigger": "event", "event": "app_installed", "points": 5}
    program_declare(
        tenant=tenant,
        code="club",
        document=program_document(club) | {"earning_rules": [*program_document(club)["earning_rules"], late]},
    )
    data["name"] = "Club Plus"
    assert admin_client.post(change_url(club), data).status_code == 302
    club.refresh_from_db()
    document = program_document(club)
    assert document["name"] == "Club Plus"
    assert [r["code"] for r in document["earning_rules"]] == ["spend", "newsletter", "social", "late"]


def test_an_invalid_rule_in_an_inline_is_a_form_error_and_changes_nothing(admin_client, club):
    before = state(club)
    data = page_data(admin_client.get(change_url(club)))
    data["earning_rules-0-rule"] = "order.amout >= 10"
    data["name"] = "Renamed"
    response = admin_client.post(change_url(club), data)
    assert response.status_code == 200
    rules = response.context["inline_admin_formsets"][1].formset
    assert "amout" in str(rules.forms[0].errors["rule"])
    assert state(club) == before


def test_what_the_declaration_refuses_is_shown_on_the_fields_it_names_and_nothing_changes(admin_client, club):
    before = state(club)
    data = page_data(admin_client.get(change_url(club)))
    data["currency"] = "USD"  # not the tenant's
    data["tiers-1-threshold"] = "0"  # the same threshold as bronze
    data["earning_rules-0-tier_multipliers"] = '{"platinum": "3"}'  # no such tier
    response = admin_client.post(change_url(club), data)
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "EUR" in str(form.errors["currency"])
    assert "not valid" in str(form.non_field_errors())
    tiers, rules = (inline.formset for inline in response.context["inline_admin_formsets"])
    assert "thresholds must differ" in str(tiers.non_form_errors())
    assert "platinum" in str(rules.forms[0].errors["tier_multipliers"])
    assert b"thresholds must differ" in response.content
    assert state(club) == before


def test_the_code_of_a_saved_tier_cannot_change_in_the_inline(admin_client, club):
    before = state(club)
    data = page_data(admin_client.get(change_url(club)))
    data["tiers-1-code"] = "argent"  # would delete silver and create another tier
    response = admin_client.post(change_url(club), data)
    assert response.status_code == 200
    assert response.context["inline_admin_formsets"][0].formset.forms[1].errors["code"]
    assert state(club) == before


def test_a_program_added_in_the_admin_is_declared(admin_client, tenant):
    data = page_data(admin_client.get(reverse("admin:loyalty_program_add")))
    data |= {"tenant": str(tenant.pk), "code": "club", "name": "Club", "currency": tenant.currency}
    data["expiry_policy"] = json.dumps({"policy": "days", "days": 365})
    add_row(data, "tiers", {"code": "bronze", "name": "Bronze", "threshold": "0", "multiplier": "1.0"})
    add_row(data, "tiers", {"code": "gold", "name": "Gold", "threshold": "5000", "multiplier": "2"})
    add_row(
        data,
        "earning_rules",
        {"code": "spend", "trigger": "order_paid", "points": "0", "points_per_unit": "1", "unit_amount": "1.00"}
        | {"rounding": "down", "categories": "[]", "tier_multipliers": "{}", "happy_hours": "[]", "pending_days": "0"}
        | {"priority": "0", "active": "on", "apply_tier_multiplier": "on", "rule": "order.amount >= 10"},
    )
    response = admin_client.post(reverse("admin:loyalty_program_add"), data)
    assert response.status_code == 302, response.context and response.context["errors"]
    program = Program.objects.for_tenant(tenant).get(code="club")
    document = program_document(program)
    assert [(t["code"], t["threshold"]) for t in document["tiers"]] == [("bronze", 0), ("gold", 5000)]
    assert [r["code"] for r in document["earning_rules"]] == ["spend"] and document["expiry"]["days"] == 365
    assert list(Tier.objects.filter(program=program).order_by("rank").values_list("code", flat=True)) == [
        "bronze",
        "gold",
    ]
    assert set(EarningRule.history.values_list("history_change_reason", flat=True)) == {"declared"}
    assert response["Location"] == reverse("admin:loyalty_program_changelist")
    assert LogEntry.objects.get().object_id == str(program.pk)  # the admin's log names the declared program


def test_a_user_without_change_permission_cannot_post_a_program(client, tenant, club):
    sync_roles()
    marketer = UserFactory()
    marketer.groups.add(Group.objects.get(name="Marketer"))  # views programs, does not change them
    assign_perm(ACCESS_TENANT, marketer, tenant)
    client.force_login(marketer)
    assert client.get(change_url(club)).status_code == 200
    before = state(club)
    data = {"name": "Hijacked", "currency": "EUR", "tiers-TOTAL_FORMS": "0", "tiers-INITIAL_FORMS": "0"}
    assert client.post(change_url(club), data).status_code == 403
    assert client.post(reverse("admin:loyalty_program_add"), {"tenant": tenant.pk, "code": "x"}).status_code == 403
    document = json.dumps(dict(CONTRACT_EXAMPLE, name="Hijacked"))
    import_url = reverse("admin:loyalty_program_import")
    assert client.post(import_url, {"tenant": tenant.pk, "code": "club", "document": document}).status_code == 403
    assert state(club) == before


def test_tiers_and_rules_change_only_on_their_program_page(admin_client, club):
    rule = EarningRule.objects.get(program=club, code="spend")
    before = state(club)
    assert admin_client.get(reverse("admin:loyalty_earningrule_change", args=[rule.pk])).status_code == 200  # view
    assert admin_client.post(reverse("admin:loyalty_earningrule_add"), {"code": "x"}).status_code == 403
    response = admin_client.post(reverse("admin:loyalty_earningrule_change", args=[rule.pk]), {"rule": ""})
    assert response.status_code == 403
    tier = Tier.objects.get(program=club, code="gold")
    assert admin_client.post(reverse("admin:loyalty_tier_delete", args=[tier.pk]), {"post": "yes"}).status_code == 403
    version = rule.history.earliest("history_id")
    revert = reverse("admin:loyalty_earningrule_simple_history", args=[rule.pk, version.history_id])
    assert admin_client.post(revert, {"rule": ""}).status_code == 403
    delete = reverse("admin:loyalty_program_delete", args=[club.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403  # deactivated, never deleted
    assert state(club) == before


def test_export_action_downloads_the_document(admin_client, club):
    response = admin_client.post(
        reverse("admin:loyalty_program_changelist"),
        {"action": "export_documents", "_selected_action": [club.pk]},
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert json.loads(response.content)["tiers"][1]["code"] == "silver"


def test_import_view_declares_the_document(admin_client, tenant):
    url = reverse("admin:loyalty_program_import")
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"tenant": tenant.pk, "code": "club", "document": json.dumps(CONTRACT_EXAMPLE)})
    assert response.status_code == 302
    program = Program.objects.for_tenant(tenant).get()
    assert program.code == "club" and program.history.get().history_change_reason == "declared"
    bad = dict(CONTRACT_EXAMPLE, earning_rules=[{"code": "x", "rule": "member.contry == 'GB'"}])
    response = admin_client.post(url, {"tenant": tenant.pk, "code": "club2", "document": json.dumps(bad)})
    assert response.status_code == 200 and b"contry" in response.content
    assert not Program.objects.for_tenant(tenant).filter(code="club2").exists()
