"""History through the real admin: the reason field, field-by-field diffs, reverts through the services."""

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connection, reset_queries
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from guardian.shortcuts import assign_perm

from campaigns import services
from campaigns.models import Campaign
from rewards.services.redemption import redeem
from tests.factories import CodeFactory, UserFactory

pytestmark = pytest.mark.django_db

COUNTERS = ("redemptions_count", "discount_used", "order_value_used", "redemptions_failed", "codes_count")


def staff(role, tenant):
    user = UserFactory()
    user.groups.add(Group.objects.get(name=role))
    assign_perm("members.access_tenant", user, tenant)
    return user


def form(tenant, **overrides):
    data = {
        "tenant": tenant.pk,
        "name": "Spring sale",
        "description": "",
        "type": "discount",
        "enabled": "on",
        "discount_type": "percent",
        "discount_value": "10",
        "rule": "order.amount >= 10",
        "member_period": "",
        "stacking_category": "",
        "combinable_with": "",
        "priority": "0",
        "breaker_enabled": "on",
        "breaker_multiple": "5",
        "breaker_window_minutes": "5",
        "breaker_min_redemptions": "20",
        "discount_total": "500.00",
    }
    data.update(overrides)
    return data


@pytest.fixture
def edited(client, tenant):
    """A campaign made in the admin, redeemed (counters above zero), then edited twice with reasons."""
    marketer = staff("Marketer", tenant)
    client.force_login(marketer)
    response = client.post(reverse("admin:campaigns_campaign_add"), form(tenant, history_change_reason="spring launch"))
    assert response.status_code == 302, response.content.decode()[:3000]
    campaign = Campaign.objects.get()
    for n in range(2):
        code = CodeFactory(campaign=campaign, code=f"SPRING-{n}")
        redeem(tenant=tenant, member=None, order_id=f"o-{n}", order={"amount": "50"}, codes=[code.code])
    change = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    response = client.post(
        change,
        form(
            tenant,
            name="Spring sale (last days)",
            rule="order.amount >= 30",
            discount_value="20",
            owner=marketer.pk,
            history_change_reason="push the last week",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    campaign.refresh_from_db()
    return marketer, campaign


def test_change_form_has_a_reason_field_and_stores_it_with_the_user(client, edited):
    marketer, campaign = edited
    page = client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])).content.decode()
    assert 'name="history_change_reason"' in page and "Reason for this change" in page
    latest = campaign.history.latest()
    assert latest.history_change_reason == "push the last week" and latest.history_user == marketer
    assert campaign.history.earliest().history_change_reason == "spring launch"


def test_history_page_shows_each_changed_field_old_to_new_with_user_and_reason(client, edited):
    marketer, campaign = edited
    page = client.get(reverse("admin:campaigns_campaign_history", args=[campaign.pk])).content.decode()
    assert "push the last week" in page and "spring launch" in page and marketer.username in page
    assert re.search(r"Rule:</strong>\s*order.amount &gt;= 10\s*&nbsp;&rarr;&nbsp;&nbsp;order.amount &gt;= 30", page)
    assert re.search(r"Name:</strong>\s*Spring sale\s*&nbsp;&rarr;&nbsp;&nbsp;Spring sale \(last days\)", page)
    # The version page: what changed in it, field by field.
    latest = campaign.history.latest()
    version = client.get(reverse("admin:campaigns_campaign_simple_history", args=[campaign.pk, latest.pk]))
    body = version.content.decode()
    changed = dict(re.findall(r'data-field="(\w+)"><td>[^<]*</td><td>([^<]*)</td>', body))
    assert changed == {
        "name": "Spring sale",
        "rule": "order.amount &gt;= 10",
        "discount": str({"type": "percent", "value": "10"}).replace("'", "&#x27;"),
    }
    assert "push the last week" in body


def test_revert_puts_configuration_back_and_leaves_counters(client, edited):
    marketer, campaign = edited
    counters = {f: getattr(campaign, f) for f in COUNTERS}
    assert counters["redemptions_count"] == 2 and counters["discount_used"] > 0 and counters["codes_count"] == 0
    first = campaign.history.earliest()
    version_page = client.get(reverse("admin:campaigns_campaign_simple_history", args=[campaign.pk, first.pk]))
    revert_url = reverse("admin:campaigns_campaign_history_revert", args=[campaign.pk, first.pk])
    assert revert_url in version_page.content.decode()
    confirm = client.get(revert_url)
    assert confirm.status_code == 200 and "order.amount &gt;= 30" in confirm.content.decode()
    assert client.post(revert_url, {"reason": ""}).status_code == 200  # a reason is required
    assert Campaign.objects.get().name == "Spring sale (last days)"
    response = client.post(revert_url, {"reason": "last week cancelled"})
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.name, campaign.rule, campaign.discount) == (
        "Spring sale",
        "order.amount >= 10",
        {"type": "percent", "value": "10"},
    )
    assert {f: getattr(campaign, f) for f in COUNTERS} == counters
    assert campaign.discount_total == Decimal("500.00") and campaign.enabled
    latest = campaign.history.latest()
    assert latest.history_user == marketer and "last week cancelled" in latest.history_change_reason


def test_revert_service_keeps_every_counter_listed(tenant):
    campaign = services.campaign_create(
        tenant=tenant, data={"name": "A", "type": "discount", "discount": {"type": "percent", "value": "5"}}
    )
    first = campaign.history.latest()
    services.campaign_update(campaign=campaign, data={"name": "B", "rule": "order.amount > 1"})
    Campaign.objects.filter(pk=campaign.pk).update(
        redemptions_count=7,
        discount_used=Decimal("12.50"),
        order_value_used=Decimal("90"),
        redemptions_failed=3,
        published_count=4,
        codes_count=9,
    )
    reverted = services.campaign_revert(campaign=campaign, history_id=first.pk, reason="undo")
    assert (reverted.name, reverted.rule) == ("A", "")
    assert (reverted.redemptions_count, reverted.discount_used, reverted.order_value_used) == (7, Decimal("12.50"), 90)
    assert (reverted.redemptions_failed, reverted.published_count, reverted.codes_count) == (3, 4, 9)
    for field in ("redemptions_count", "discount_used", "order_value_used", "redemptions_failed", "codes_count"):
        assert field in services.REVERT_KEEPS


def test_revert_refused_without_change_rights_even_by_direct_post(client, edited, tenant):
    _marketer, campaign = edited
    first = campaign.history.earliest()
    revert_url = reverse("admin:campaigns_campaign_history_revert", args=[campaign.pk, first.pk])
    analyst = staff("Analyst", tenant)
    client.force_login(analyst)
    version_page = client.get(reverse("admin:campaigns_campaign_simple_history", args=[campaign.pk, first.pk]))
    assert version_page.status_code == 200 and revert_url not in version_page.content.decode()
    assert client.get(revert_url).status_code == 403
    assert client.post(revert_url, {"reason": "x"}).status_code == 403
    # Saving the historical row (simple-history's own revert) is refused for everyone.
    assert (
        client.post(reverse("admin:campaigns_campaign_simple_history", args=[campaign.pk, first.pk])).status_code == 403
    )
    assert Campaign.objects.get().name == "Spring sale (last days)"


def test_another_tenants_versions_are_not_found(client, edited, other_tenant):
    _marketer, campaign = edited
    outsider = staff("Marketer", other_tenant)
    client.force_login(outsider)
    first = campaign.history.earliest()
    assert client.get(reverse("admin:campaigns_campaign_history", args=[campaign.pk])).status_code == 404
    assert (
        client.get(reverse("admin:campaigns_campaign_simple_history", args=[campaign.pk, first.pk])).status_code == 404
    )
    revert_url = reverse("admin:campaigns_campaign_history_revert", args=[campaign.pk, first.pk])
    assert client.post(revert_url, {"reason": "x"}).status_code == 404


def test_history_page_query_count_does_not_grow_with_versions(client, edited, django_assert_max_num_queries):
    _marketer, campaign = edited
    url = reverse("admin:campaigns_campaign_history", args=[campaign.pk])
    client.get(url)
    reset_queries()  # the log is bounded: a full one would capture nothing
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    budget = len(few.captured_queries)
    for n in range(5):
        services.campaign_update(campaign=campaign, data={"name": f"N{n}"})
    with django_assert_max_num_queries(budget):
        client.get(url)
