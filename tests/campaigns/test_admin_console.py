"""The marketing console in the campaign admin, per role, through the real admin: the list at a glance, the campaign
page's figures (equal to the records made here), cloning, the incentive as form fields, and bulk actions."""

import datetime as dt
import json
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm

from campaigns.models import Campaign, Code
from campaigns.selectors import campaign_document
from common.errors import ApplicationError
from rewards.models import Redemption
from rewards.services.redemption import redeem, redemption_rollback, validate
from tests.campaigns.test_admin import add_form
from tests.factories import CampaignFactory, CodeFactory, EngineMemberFactory, UserFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 6, 10, 12, 0, tzinfo=dt.UTC)
CHANGELIST = "admin:campaigns_campaign_changelist"


def staff(tenant, role):
    user = UserFactory()
    user.groups.add(Group.objects.get(name=role))
    assign_perm("members.access_tenant", user, tenant)
    return user


def change_url(campaign):
    return reverse("admin:campaigns_campaign_change", args=[campaign.pk])


@pytest.fixture
def marketer(tenant):
    """A marketer who reaches every campaign of the tenant: the console's figures are under test here, the rights
    per campaign in test_admin_rights.py."""
    user = staff(tenant, "Marketer")
    for codename in ("view_every_campaign", "change_every_campaign"):
        user.user_permissions.add(Permission.objects.get(content_type__app_label="campaigns", codename=codename))
    return user


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def redeem_code(tenant, code, order_id, amount="100.00"):
    return redeem(tenant=tenant, member=None, order_id=order_id, order={"amount": amount}, codes=[code.code])


# --- the list ------------------------------------------------------------------------------------------


def test_the_list_shows_bars_flags_and_filters_by_status_owner_and_code(client, tenant, other_tenant, marketer, frozen):
    soon = CampaignFactory(tenant=tenant, name="Ends soon", ends_at=NOW + dt.timedelta(days=3), owner=marketer)
    low = CampaignFactory(tenant=tenant, name="Nearly spent", discount_total=Decimal("100.00"), redemptions_total=200)
    Campaign.objects.filter(pk=low.pk).update(discount_used=Decimal("96.00"), redemptions_count=10)
    calm = CampaignFactory(tenant=tenant, name="Calm", ends_at=NOW + dt.timedelta(days=30), enabled=False)
    CodeFactory(campaign=calm, code="CALM-0042")
    hidden = CampaignFactory(tenant=other_tenant, name="Other tenant's")
    CodeFactory(campaign=hidden, code="HIDDEN-1")
    client.force_login(marketer)
    url = reverse(CHANGELIST)

    page = client.get(url)
    rows = {c.name: c for c in page.context["cl"].result_list}
    assert set(rows) == {"Ends soon", "Nearly spent", "Calm"}
    html = page.content.decode()
    assert "ends within 7 days" in html and "under 5 % budget left" in html
    assert "96.00 / 100.00" in html and "10 / 200" in html  # the small bars with their limits
    assert "campaign-bar-low" in html  # the discount bar (4 % left) is marked, the redemptions one is not
    assert html.count("campaign-flag-ends_soon") == 1 and html.count("campaign-flag-budget_low") == 1

    def names(query):
        return {c.name for c in client.get(url, query).context["cl"].result_list}

    assert names({"status": "disabled"}) == {"Calm"}
    assert names({"status": "active"}) == {"Ends soon", "Nearly spent"}
    assert names({"owner__id__exact": marketer.pk}) == {"Ends soon"}
    assert names({"attention": "budget_low"}) == {"Nearly spent"}
    assert names({"attention": "ends_soon"}) == {"Ends soon"}
    assert names({"tenant__id__exact": tenant.pk}) == {"Ends soon", "Nearly spent", "Calm"}
    assert names({"q": "calm-0042"}) == {"Calm"}  # by one of its codes, as typed
    assert names({"q": "nearly"}) == {"Nearly spent"}
    assert names({"q": "HIDDEN-1"}) == set()  # another tenant's code finds nothing
    assert soon.pk in {c.pk for c in client.get(url, {"q": "soon"}).context["cl"].result_list}


def test_the_list_costs_the_same_queries_for_many_campaigns(client, tenant, marketer, django_assert_max_num_queries):
    def make(n):
        for i in range(n):
            campaign = CampaignFactory(tenant=tenant, discount_total=Decimal("50.00"), redemptions_total=5)
            redeem_code(tenant, CodeFactory(campaign=campaign), f"list-{campaign.pk}-{i}")

    make(2)
    client.force_login(marketer)
    url = reverse(CHANGELIST)
    client.get(url)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        client.get(url)
    make(25)
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get(url)
    assert len(page.context["cl"].result_list) == 27
    assert all(c.last_redemption_at is not None for c in page.context["cl"].result_list)


def test_the_admin_index_shows_the_flags_of_the_campaigns_the_user_sees(client, tenant, other_tenant, frozen):
    CampaignFactory(tenant=tenant, name="Visible ending", ends_at=NOW + dt.timedelta(days=2))
    CampaignFactory(tenant=tenant, name="Far away", ends_at=NOW + dt.timedelta(days=60))
    CampaignFactory(tenant=other_tenant, name="Foreign ending", ends_at=NOW + dt.timedelta(days=2))
    client.force_login(staff(tenant, "Junior marketer"))
    html = client.get(reverse("admin:index")).content.decode()
    assert "Campaigns needing attention" in html and "Visible ending" in html
    assert "Far away" not in html and "Foreign ending" not in html
    assert 'id="support-q"' in html  # what the index showed before stays
    client.force_login(staff(tenant, "Support agent"))
    assert "Visible ending" in client.get(reverse("admin:index")).content.decode()  # they may view campaigns


# --- the campaign page ---------------------------------------------------------------------------------


def _activity(tenant, campaign, *, redemptions, member):
    """Redemptions, one rollback, validations, refusals: the records the page counts."""
    codes = [CodeFactory(campaign=campaign) for _ in range(redemptions)]
    made = [redeem_code(tenant, code, f"o-{code.pk}", amount="50.00") for code in codes]
    redemption_rollback(redemption=made[0], reason="returned")
    validate(tenant=tenant, member=member, order={"amount": "50.00"}, codes=[codes[1].code])  # used: refused
    validate(tenant=tenant, member=member, order={"amount": "50.00"}, codes=[CodeFactory(campaign=campaign).code])
    with pytest.raises(ApplicationError):
        redeem_code(tenant, codes[2], "again")  # already used
    return made


def test_the_campaign_page_numbers_equal_the_records(client, tenant, marketer, frozen):
    campaign = CampaignFactory(tenant=tenant, discount={"type": "percent", "value": "10"}, discount_total="100.00")
    member = EngineMemberFactory(tenant=tenant)
    made = _activity(tenant, campaign, redemptions=4, member=member)
    Campaign.objects.filter(pk=campaign.pk).update(published_count=8)
    client.force_login(marketer)

    page = client.get(change_url(campaign))
    assert page.status_code == 200
    numbers = page.context["numbers"]
    assert numbers["redeemed"] == 3 == Redemption.objects.filter(status="succeeded").count()
    assert numbers["rollbacks"] == 1
    assert numbers["validations"] == 2 and numbers["validations_refused"] == 1
    failed = {row["reason"]: row for row in numbers["failed_by_reason"]}
    assert numbers["redemptions_failed"] == 1
    assert sum(row["redemption"] for row in failed.values()) == 1
    assert sum(row["validation"] for row in failed.values()) == 1
    assert numbers["published"] == 8 and numbers["conversion"] == "37.5 %"
    assert numbers["discount_given"] == "15.00"  # 3 x 10 % of 50.00
    assert numbers["order_value"] == "150.00" and numbers["budget_left"] == "85.00"
    chart = page.context["chart"]
    assert len(chart["days"]) == 90 and chart["days"][-1] == NOW.date().isoformat()
    assert chart["redemptions"][-1] == 3 and sum(chart["redemptions"]) == 3
    assert chart["discount"][-1] == "15.00" and chart["validations"][-1] == 2 and chart["failed"][-1] == 2
    html = page.content.decode()
    assert 'id="campaign-chart-data"' in html and "chart.umd.min.js" in html
    assert 'id="n-rollbacks">1<' in html and 'id="n-conversion">37.5 %<' in html
    assert "Codes of this campaign" in html and "Generate codes" in html and 'id="campaign-clone"' in html
    assert 'id="campaign-history"' in html
    assert made  # the redemptions exist
    # CSP: no inline script on the page but json_script data blocks and nonce'd ones.
    assert "Content-Security-Policy" in page.headers
    for chunk in html.split("<script")[1:]:
        head = chunk.split(">", 1)[0]
        assert "src=" in head or 'type="application/json"' in head or "nonce=" in head, head


def test_the_campaign_page_costs_the_same_queries_for_many_redemptions(
    client, tenant, marketer, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    campaign = CampaignFactory(tenant=tenant)
    member = EngineMemberFactory(tenant=tenant)
    _activity(tenant, campaign, redemptions=3, member=member)
    client.force_login(marketer)
    client.get(change_url(campaign))
    with CaptureQueriesContext(connection) as few:
        client.get(change_url(campaign))
    _activity(tenant, campaign, redemptions=30, member=member)
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get(change_url(campaign))
    assert page.context["numbers"]["rollbacks"] == 2


def test_the_code_list_filters_by_campaign(client, tenant, marketer):
    mine, other = CampaignFactory(tenant=tenant), CampaignFactory(tenant=tenant)
    CodeFactory(campaign=mine, code="MINE-1")
    CodeFactory(campaign=other, code="OTHER-1")
    client.force_login(marketer)
    page = client.get(reverse("admin:campaigns_code_changelist"), {"campaign": mine.pk})
    assert [c.code for c in page.context["cl"].result_list] == ["MINE-1"]


# --- cloning -------------------------------------------------------------------------------------------


def test_clone_from_the_page_is_a_disabled_draft_without_codes_or_counters(client, tenant, marketer):
    campaign = CampaignFactory(
        tenant=tenant, name="Spring", rule="order.amount >= 10", redemptions_total=50, active_hours=[]
    )
    redeem_code(tenant, CodeFactory(campaign=campaign), "c-1")
    client.force_login(marketer)
    url = reverse("admin:campaigns_campaign_clone", args=[campaign.pk])
    assert client.get(url).status_code == 405
    response = client.post(url)
    clone = Campaign.objects.exclude(pk=campaign.pk).get()
    assert response.status_code == 302 and response.url == change_url(clone)
    assert clone.name == "Spring (copy)" and clone.enabled is False and clone.owner == marketer
    assert (clone.rule, clone.redemptions_total, clone.discount) == (campaign.rule, 50, campaign.discount)
    assert (clone.redemptions_count, clone.codes_count, clone.discount_used) == (0, 0, 0)
    assert not Code.objects.filter(campaign=clone).exists()
    assert clone.history.get().history_change_reason == f"cloned from campaign {campaign.pk}"


def test_clone_as_a_list_action_and_refused_without_the_add_right(client, tenant, marketer):
    a, b = CampaignFactory(tenant=tenant, name="A"), CampaignFactory(tenant=tenant, name="B")
    client.force_login(marketer)
    client.post(reverse(CHANGELIST), {"action": "clone_selected", "_selected_action": [a.pk, b.pk]})
    assert set(Campaign.objects.filter(enabled=False).values_list("name", flat=True)) == {"A (copy)", "B (copy)"}
    client.force_login(staff(tenant, "Support agent"))
    assert client.post(reverse("admin:campaigns_campaign_clone", args=[a.pk])).status_code == 403
    assert Campaign.objects.count() == 4


# --- the form ------------------------------------------------------------------------------------------


def test_a_percent_campaign_with_hours_and_limits_saved_by_the_form_is_the_api_document(client, tenant, marketer):
    client.force_login(marketer)
    form = add_form(
        tenant,
        name="Spring 15",
        discount_type="percent",
        discount_value="15",
        discount_max_amount="30.00",
        discount_categories="apparel, shoes",
        discount_sku="ignored: not a field of a percent",
        hours_1_days=["0", "1", "2", "3", "4"],
        hours_1_from="09:00",
        hours_1_to="17:00",
        hours_2_days=["5"],
        hours_2_from="10:00",
        hours_2_to="14:00",
        redemptions_total="500",
        redemptions_per_member="1",
        redemptions_per_member_period="2",
        member_period="week",
        discount_total="5000.00",
        stacking_category="spring",
        combinable_with="loyalty, gift_card",
        max_codes_per_order="2",
        exclusive="on",
    )
    response = client.post(reverse("admin:campaigns_campaign_add"), form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    doc = campaign_document(Campaign.objects.get(name="Spring 15"))
    assert doc["discount"] == {
        "type": "percent",
        "value": "15",
        "max_amount": "30.00",
        "categories": ["apparel", "shoes"],
    }
    assert doc["active_hours"] == [
        {"weekdays": [0, 1, 2, 3, 4], "from": "09:00", "to": "17:00"},
        {"weekdays": [5], "from": "10:00", "to": "14:00"},
    ]
    assert doc["limits"] == {
        "redemptions_total": 500,
        "redemptions_per_member": 1,
        "redemptions_per_member_per_period": {"count": 2, "period": "week"},
        "redemptions_per_day": None,
        "redemptions_per_week": None,
        "redemptions_per_month": None,
        "discount_total": "5000.00",
        "order_value_total": None,
    }
    assert doc["stacking"]["combinable_with"] == ["loyalty", "gift_card"] and doc["stacking"]["exclusive"] is True
    # The page shows them back in the same fields.
    page = client.get(change_url(Campaign.objects.get(name="Spring 15")))
    form = page.context["adminform"].form
    assert form.initial["discount_type"] == "percent" and form.initial["discount_value"] == "15"
    assert form.initial["hours_2_days"] == [5] and form.initial["hours_1_to"] == "17:00"
    fields = json.loads(
        page.content.decode().split('id="campaign-incentive-fields" type="application/json">')[1].split("<")[0]
    )
    assert (
        "discount_max_amount" in fields["by_discount"]["percent"]
        and "discount_sku" not in fields["by_discount"]["percent"]
    )


def test_form_errors_come_from_the_campaign_check_and_nothing_is_saved(client, tenant, marketer):
    client.force_login(marketer)
    url = reverse("admin:campaigns_campaign_add")
    response = client.post(url, add_form(tenant, discount_type="percent", discount_value="150"))
    assert response.status_code == 200
    assert "discount_value" in response.context["adminform"].form.errors
    response = client.post(url, add_form(tenant, discount_type="volume", discount_tiers="lots: 10%"))
    assert "Line 1" in str(response.context["adminform"].form.errors["discount_tiers"])
    response = client.post(url, add_form(tenant, discount_type="", discount_value=""))
    assert response.status_code == 200 and "discount_type" in response.context["adminform"].form.errors
    response = client.post(url, add_form(tenant, hours_1_days=["0"], hours_1_from="09:00"))
    assert "hours_1_days" in response.context["adminform"].form.errors
    assert not Campaign.objects.exists()
    tiers = "amount 100: 10%\nquantity 3: 5.00"
    response = client.post(url, add_form(tenant, name="Volume", discount_type="volume", discount_tiers=tiers))
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Campaign.objects.get().discount == {
        "type": "volume",
        "tiers": [{"min_amount": "100", "percent": "10"}, {"min_quantity": "3", "amount": "5.00"}],
    }


# --- bulk actions --------------------------------------------------------------------------------------


def _bulk(client, action, campaigns, **fields):
    return client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [c.pk for c in campaigns], **fields})


def test_bulk_disable_confirms_the_counts_then_writes_one_history_record_each(client, tenant, marketer):
    a, b = CampaignFactory(tenant=tenant), CampaignFactory(tenant=tenant)
    untouched = CampaignFactory(tenant=tenant)
    holders = [EngineMemberFactory(tenant=tenant) for _ in range(3)]
    CodeFactory(campaign=a, member=holders[0])
    CodeFactory(campaign=a, member=holders[1])
    CodeFactory(campaign=b, member=holders[1])
    CodeFactory(campaign=b, member=holders[2], redeemed_count=1)  # redeemed: not counted
    CodeFactory(campaign=b)  # nobody holds it
    CodeFactory(campaign=untouched, member=holders[2])
    Campaign.objects.filter(pk=a.pk).update(codes_count=2)
    Campaign.objects.filter(pk=b.pk).update(codes_count=3)
    client.force_login(marketer)

    page = _bulk(client, "disable_selected", [a, b])
    assert page.status_code == 200 and page.context["counts"] == {"campaigns": 2, "codes": 5, "members": 2}
    assert (
        "<strong>2</strong> campaigns, <strong>5</strong> codes and <strong>2</strong> members" in page.content.decode()
    )
    assert Campaign.objects.filter(enabled=False).count() == 0  # nothing yet
    page = _bulk(client, "disable_selected", [a, b], confirm="yes", reason="")
    assert page.status_code == 200 and "reason" in page.context["form"].errors  # a reason is required

    before = {c.pk: c.history.count() for c in (a, b, untouched)}
    response = _bulk(client, "disable_selected", [a, b], confirm="yes", reason="stock ran out")
    assert response.status_code == 302
    for campaign in (a, b):
        campaign.refresh_from_db()
        assert campaign.enabled is False and campaign.disabled_reason == "stock ran out"
        assert campaign.history.count() == before[campaign.pk] + 1
        record = campaign.history.first()
        assert record.history_user == marketer and record.history_change_reason == "disabled: stock ran out"
    untouched.refresh_from_db()
    assert untouched.enabled and untouched.history.count() == before[untouched.pk]

    _bulk(client, "enable_selected", [a], confirm="yes", reason="restocked")
    a.refresh_from_db()
    assert a.enabled and a.history.first().history_change_reason == "enabled: restocked"


def test_bulk_extend_and_change_a_limit_go_through_the_update_service(client, tenant, marketer):
    ends = timezone.now() + dt.timedelta(days=5)
    a = CampaignFactory(tenant=tenant, ends_at=ends, redemptions_total=10)
    open_ended = CampaignFactory(tenant=tenant, ends_at=None, redemptions_total=10)
    Campaign.objects.filter(pk=a.pk).update(redemptions_count=4)
    client.force_login(marketer)

    _bulk(client, "extend_end_date", [a, open_ended], confirm="yes", reason="good weather", days="7")
    a.refresh_from_db()
    open_ended.refresh_from_db()
    assert a.ends_at == ends + dt.timedelta(days=7) and open_ended.ends_at is None
    record = a.history.first()
    assert record.history_change_reason == "good weather" and record.history_user == marketer

    response = _bulk(
        client, "change_limit", [a, open_ended], confirm="yes", reason="tighter", limit="redemptions_total", value="3"
    )
    a.refresh_from_db()
    open_ended.refresh_from_db()
    assert (a.redemptions_total, open_ended.redemptions_total) == (10, 3)  # 3 is below a's 4 redemptions
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("cannot be below" in m for m in messages), messages
    _bulk(client, "change_limit", [a], confirm="yes", reason="no cap", limit="redemptions_total", value="")
    a.refresh_from_db()
    assert a.redemptions_total is None


def test_a_junior_marketer_cannot_enable_in_bulk_even_by_a_direct_post(client, tenant):
    ends = timezone.now() + dt.timedelta(days=2)
    junior = staff(tenant, "Junior marketer")
    campaign = CampaignFactory(tenant=tenant, enabled=False, ends_at=ends, owner=junior)  # their own draft
    records = campaign.history.count()
    client.force_login(junior)
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert "enable_selected" not in page and "extend_end_date" in page
    response = _bulk(client, "enable_selected", [campaign], confirm="yes", reason="sneaky")
    assert response.status_code in (200, 302)
    campaign.refresh_from_db()
    assert campaign.enabled is False and campaign.history.count() == records
    # What they may do, they may: extending is a change.
    _bulk(client, "extend_end_date", [campaign], confirm="yes", reason="x", days="1")
    campaign.refresh_from_db()
    assert campaign.ends_at == ends + dt.timedelta(days=1) and campaign.enabled is False


def test_a_support_agent_is_refused_bulk_changes(client, tenant):
    campaign = CampaignFactory(tenant=tenant, ends_at=timezone.now() + dt.timedelta(days=1))
    client.force_login(staff(tenant, "Support agent"))
    ends = campaign.ends_at
    _bulk(client, "extend_end_date", [campaign], confirm="yes", reason="x", days="9")
    _bulk(client, "disable_selected", [campaign], confirm="yes", reason="x")
    campaign.refresh_from_db()
    assert campaign.ends_at == ends and campaign.enabled


def test_referral_and_gift_card_campaigns_take_their_own_fields(client, tenant, marketer):
    client.force_login(marketer)
    url = reverse("admin:campaigns_campaign_add")
    referral = add_form(
        tenant, name="Bring a friend", type="referral", discount_type="", discount_value="", referral_points="250"
    )
    response = client.post(url, {**referral, "referral_min_order_amount": "20.00"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    doc = campaign_document(Campaign.objects.get(name="Bring a friend"))
    assert doc["referral"] == {"min_order_amount": "20.00", "points": 250, "reward_campaign": None}
    gift = add_form(tenant, name="Gift 50", type="gift_card", discount_type="", gift_card_amount="50.00")
    response = client.post(url, gift)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert campaign_document(Campaign.objects.get(name="Gift 50"))["gift_card"] == {"amount": "50.00"}
    response = client.post(url, add_form(tenant, name="No reward", type="referral", discount_type=""))
    assert response.status_code == 200 and "referral_points" in response.context["adminform"].form.errors


def test_a_campaign_with_more_windows_than_the_form_shows_keeps_them(client, tenant, marketer):
    windows = [{"weekdays": [d], "from": "09:00", "to": "12:00"} for d in range(6)]
    campaign = CampaignFactory(tenant=tenant, name="Many windows", active_hours=windows)
    client.force_login(marketer)
    response = client.post(change_url(campaign), add_form(tenant, name="Many windows, renamed"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign.refresh_from_db()
    assert campaign.name == "Many windows, renamed" and campaign.active_hours == windows
