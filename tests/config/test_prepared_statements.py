"""Prepared statements on PostgreSQL: the hot path's statements are parsed and planned once per connection."""

import pytest
from django.db import connection

from members.models import Tenant

pytestmark = pytest.mark.postgres


@pytest.mark.django_db
def test_a_statement_run_again_is_prepared_on_the_connection(tenant, settings):
    threshold = settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"]
    for _ in range(threshold + 1):
        assert Tenant.objects.filter(pk=tenant.pk, frozen=False).exists()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s AND statement LIKE %s",
            ["%members_tenant%", "%frozen%"],
        )
        assert cursor.fetchone()[0] == 1


@pytest.mark.django_db(transaction=True)
def test_the_idempotency_claim_is_one_statement_a_prepared_statement_can_carry(tenant, settings):
    """The claim relaxes its own commit through set_config in RETURNING (a second statement in the same
    execute, as `SET LOCAL ...; INSERT`, cannot be prepared)."""
    from django.utils import timezone

    from integrations.models import IdempotencyRecord
    from integrations.sql import idempotency_claim
    from tests.factories import api_key_for

    api_key, _ = api_key_for(tenant)
    now = timezone.now()
    for n in range(settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"] + 1):
        record = IdempotencyRecord(
            tenant_id=tenant.pk,
            integration=api_key.integration,
            key=f"k-{n}",
            method="POST",
            path="/api/v1/redemptions",
            request_hash="h",
            created_at=now,
            locked_until=now,
        )
        assert connection.get_autocommit()  # the claim's own transaction, with its relaxed commit
        assert idempotency_claim(record) is True
    assert IdempotencyRecord.objects.filter(integration=api_key.integration).count() == n + 1
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%loyalty_idempotencyrecord%"]
        )
        assert cursor.fetchone()[0] >= 1
