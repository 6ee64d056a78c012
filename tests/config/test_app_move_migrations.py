"""A database of the old layout (the ledger in `rewards`, integrations in `loyalty`) upgrades in place.

The models moved with `SeparateDatabaseAndState`: tables keep their names, rows stay where they are, and the
content types move with their models, so permissions, group rights and per-object rights keep pointing at them.
"""

import pytest
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from integrations.models import Integration
from loyalty.models import Account, LedgerEntry

OLD_LAYOUT = [
    ("loyalty", "0002_webhook_endpoint_url_validation"),
    ("rewards", "0001_initial"),
    ("integrations", None),
]


def _migrate(targets):
    """Migrate to `targets`; the models as they were there."""
    return MigrationExecutor(connection).migrate(targets).apps


def _migrate_to_latest():
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture
def old_layout(transactional_db):
    """The database as the old layout left it; back at the latest migrations afterwards, whatever happens."""
    try:
        yield _migrate(OLD_LAYOUT)
    finally:
        _migrate_to_latest()


def test_rows_content_types_and_rights_of_the_old_layout_follow_the_moved_models(old_layout):
    old = old_layout
    tenant = old.get_model("members", "Tenant").objects.create(slug="old", name="Old", currency="EUR")
    member = old.get_model("members", "Member").objects.create(tenant=tenant, external_id="m-1", referral_code="M1")
    program = old.get_model("loyalty", "Program").objects.create(
        tenant=tenant, code="club", name="Club", currency="EUR"
    )
    account = old.get_model("rewards", "Account").objects.create(
        tenant=tenant, member=member, program=program, balance=25
    )
    old.get_model("rewards", "LedgerEntry").objects.create(
        tenant=tenant, account=account, kind="earn", points=25, balance_after=25, reason="old order"
    )
    old.get_model("loyalty", "Integration").objects.create(tenant=tenant, name="web-shop")
    old_types = old.get_model("contenttypes", "ContentType").objects
    account_type = old_types.get_or_create(app_label="rewards", model="account")[0]
    integration_type = old_types.get_or_create(app_label="loyalty", model="integration")[0]
    adjust = old.get_model("auth", "Permission").objects.get_or_create(
        content_type=account_type, codename="adjust_points", defaults={"name": "Can adjust points"}
    )[0]
    support = old.get_model("auth", "Group").objects.create(name="Old support")
    support.permissions.add(adjust)

    _migrate_to_latest()

    moved = Account.objects.get(member__external_id="m-1")
    assert moved.balance == 25
    assert LedgerEntry.objects.get(account=moved).reason == "old order"
    assert Integration.objects.get(tenant__slug="old").name == "web-shop"
    ContentType.objects.clear_cache()
    assert ContentType.objects.get_for_model(Account).pk == account_type.pk
    assert ContentType.objects.get_for_model(Integration).pk == integration_type.pk
    rights = {
        f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name="Old support").permissions.all()
    }
    assert rights == {"loyalty.adjust_points"}


@pytest.mark.django_db(transaction=True)
def test_the_move_goes_back_as_well():
    account_type = ContentType.objects.get_for_model(Account)
    try:
        _migrate(OLD_LAYOUT)
        assert set(ContentType.objects.filter(pk=account_type.pk).values_list("app_label", flat=True)) == {"rewards"}
    finally:
        _migrate_to_latest()
    assert set(ContentType.objects.filter(pk=account_type.pk).values_list("app_label", flat=True)) == {"loyalty"}
