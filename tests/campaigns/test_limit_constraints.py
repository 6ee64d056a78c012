"""The campaign limits are check constraints: no code path counts past them, and lowering a limit below what
was used is a clean field error in the API and the admin, never an IntegrityError."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from campaigns.models import Campaign, Code
from campaigns.services import campaign_update
from common.errors import ApplicationError
from tests.api.conftest import assert_error, client_for
from tests.campaigns.test_admin import add_form
from tests.factories import CampaignFactory, CodeFactory, UserFactory, api_key_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(tenant):
    return client_for(api_key_for(tenant)[1])


def raw_update(table: str, sql_set: str, pk: int) -> None:
    """An UPDATE as a code path that forgot the lock (or a console) would send it."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {sql_set} WHERE id = %s", [pk])


@pytest.mark.parametrize(
    "limits, counter_past_limit",
    [
        ({"redemptions_total": 3, "redemptions_count": 3}, "redemptions_count = redemptions_count + 1"),
        ({"discount_total": Decimal("100.00"), "discount_used": Decimal("99.99")}, "discount_used = 100.01"),
        ({"order_value_total": Decimal("500.00")}, "order_value_used = 500.01"),
    ],
)
def test_a_raw_update_of_a_campaign_counter_past_its_limit_is_refused(tenant, limits, counter_past_limit):
    campaign = CampaignFactory(tenant=tenant, **limits)
    with pytest.raises(IntegrityError):
        raw_update(Campaign._meta.db_table, counter_past_limit, campaign.pk)
    assert Campaign.objects.filter(pk=campaign.pk).values(*limits).get() == limits


def test_counters_of_a_campaign_without_limits_are_free(tenant):
    campaign = CampaignFactory(tenant=tenant)
    raw_update(
        Campaign._meta.db_table, "redemptions_count = 1000, discount_used = 5000, order_value_used = 9000", campaign.pk
    )
    assert Campaign.objects.get(pk=campaign.pk).redemptions_count == 1000


def test_a_raw_update_of_a_code_past_its_usage_limit_is_refused(tenant):
    code = CodeFactory(campaign=CampaignFactory(tenant=tenant), usage_limit=2, redeemed_count=2)
    with pytest.raises(IntegrityError):
        raw_update(Code._meta.db_table, "redeemed_count = redeemed_count + 1", code.pk)
    with pytest.raises(IntegrityError):
        raw_update(Code._meta.db_table, "usage_limit = 1", code.pk)
    assert Code.objects.get(pk=code.pk).redeemed_count == 2


def used_campaign(tenant, **limits):
    return CampaignFactory(
        tenant=tenant,
        redemptions_count=5,
        discount_used=Decimal("50.00"),
        order_value_used=Decimal("400.00"),
        **limits,
    )


@pytest.mark.parametrize(
    "limit, lower, used",
    [
        ("redemptions_total", 4, 5),
        ("discount_total", "49.99", "50.00"),
        ("order_value_total", "399.00", "400.00"),
    ],
)
def test_lowering_a_limit_below_usage_through_the_api_is_a_400_on_the_field(api, tenant, limit, lower, used):
    campaign = used_campaign(tenant)
    response = api.patch(f"/api/v1/campaigns/{campaign.pk}", {"limits": {limit: lower}}, format="json")
    error = assert_error(response, 400, "validation_error")
    [message] = error["details"][f"limits.{limit}"]
    assert f"cannot be below the {used}" in message
    assert getattr(Campaign.objects.get(pk=campaign.pk), limit) is None
    # Down to exactly the usage is fine: nothing is left.
    response = api.patch(f"/api/v1/campaigns/{campaign.pk}", {"limits": {limit: used}}, format="json")
    assert response.status_code == 200, response.content
    assert str(getattr(Campaign.objects.get(pk=campaign.pk), limit)) == str(used)


def test_the_service_checks_the_limit_against_the_counters_under_its_lock(tenant):
    campaign = used_campaign(tenant, redemptions_total=10)
    stale = Campaign.objects.get(pk=campaign.pk)
    Campaign.objects.filter(pk=campaign.pk).update(redemptions_count=8)  # redemptions since `stale` was read
    with pytest.raises(ApplicationError) as exc:
        campaign_update(campaign=stale, data={"limits": {"redemptions_total": 7}})
    assert exc.value.code == "validation_error" and "limits.redemptions_total" in exc.value.details
    assert Campaign.objects.get(pk=campaign.pk).redemptions_total == 10


def test_lowering_a_limit_below_usage_in_the_admin_is_a_form_error(client, tenant):
    client.force_login(UserFactory(is_superuser=True))
    campaign = used_campaign(tenant, redemptions_total=10, discount_total=Decimal("100.00"))
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    response = client.post(url, add_form(tenant, name=campaign.name, redemptions_total="4", discount_total="10"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "cannot be below the 5 redemptions" in errors["redemptions_total"][0]
    assert "cannot be below the 50.00" in errors["discount_total"][0]
    stored = Campaign.objects.get(pk=campaign.pk)
    assert (stored.redemptions_total, stored.discount_total) == (10, Decimal("100.00"))
    response = client.post(url, add_form(tenant, name=campaign.name, redemptions_total="5", discount_total="50"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Campaign.objects.get(pk=campaign.pk).redemptions_total == 5


def test_lowering_a_code_usage_limit_below_its_redemptions_in_the_admin_is_a_form_error(client, tenant):
    client.force_login(UserFactory(is_superuser=True))
    code = CodeFactory(campaign=CampaignFactory(tenant=tenant), usage_limit=5, redeemed_count=3)
    url = reverse("admin:campaigns_code_change", args=[code.pk])
    form = {"tenant": tenant.pk, "campaign": code.campaign_id, "code": code.code, "usage_limit": "2"}
    response = client.post(url, form)
    assert response.status_code == 200
    assert "cannot be below the 3 redemptions" in response.context["adminform"].form.errors["usage_limit"][0]
    assert Code.objects.get(pk=code.pk).usage_limit == 5
    assert client.post(url, {**form, "usage_limit": "3"}).status_code == 302
    assert Code.objects.get(pk=code.pk).usage_limit == 3


def test_a_csv_import_cannot_lower_a_code_usage_limit_below_its_redemptions(tenant):
    import tablib

    from campaigns.admin import CodeResource

    code = CodeFactory(campaign=CampaignFactory(tenant=tenant), code="USED-3", usage_limit=5, redeemed_count=3)
    data = tablib.Dataset(headers=["code", "campaign", "usage_limit", "redeemed_count", "expires_at", "balance"])
    data.append(["USED-3", code.campaign_id, 2, 3, "", ""])
    result = CodeResource().import_data(data, dry_run=False)
    assert result.has_errors()
    assert Code.objects.get(pk=code.pk).usage_limit == 5


@pytest.mark.django_db(transaction=True)
def test_the_migration_lifts_limits_already_below_usage_to_the_usage():
    """Rows from before the constraints may have used > limit: the limit becomes the usage, counters stay."""
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        old = executor.migrate([("campaigns", "0002_campaign_use_right_support_channel")]).apps
        tenant = old.get_model("members", "Tenant").objects.create(slug="pre", name="Pre", currency="EUR")
        Old = old.get_model("campaigns", "Campaign")
        over = Old.objects.create(
            tenant=tenant,
            name="over",
            redemptions_total=3,
            redemptions_count=7,
            discount_total=Decimal("10.00"),
            discount_used=Decimal("12.50"),
            order_value_total=Decimal("100.00"),
            order_value_used=Decimal("80.00"),
        )
        MigrationExecutor(connection).migrate(latest)
    finally:
        MigrationExecutor(connection).migrate(latest)
    lifted = Campaign.objects.get(pk=over.pk)
    assert (lifted.redemptions_total, lifted.redemptions_count) == (7, 7)
    assert (lifted.discount_total, lifted.discount_used) == (Decimal("12.50"), Decimal("12.50"))
    assert (lifted.order_value_total, lifted.order_value_used) == (Decimal("100.00"), Decimal("80.00"))
