"""The integrations app's plain SQL, all of it: API key lookup, idempotency claims, the webhook outbox write.

Why plain SQL: every API request looks its key up, every idempotent POST claims and stores, and every hot
write (a redemption, an order) records an event; compiling the querysets cost more CPU than the database
spends answering them (see `common.plain_sql`).

The rule of webhook routing is written once, `_wants()`: an endpoint gets a delivery of an event when it is
the event's tenant's, enabled, and the event's type is among its `event_types`. PostgreSQL asks the jsonb
array with `@>`; SQLite has no jsonb operators and asks `json_each` the same question, in the same statement
otherwise. The webhook tests run on both vendors, so each half is exercised.
"""

from __future__ import annotations

from functools import cache

from django.db import connection

from common.plain_sql import insert_values, instance, instances, select_list, width
from integrations.models import (
    Event,
    IdempotencyRecord,
    Integration,
    IntegrationAPIKey,
    WebhookDelivery,
    WebhookEndpoint,
)
from members.models import Tenant

# --- API keys -------------------------------------------------------------------------------------------


@cache
def _key_sql() -> str:
    return (
        f"SELECT {select_list(IntegrationAPIKey, 'k')}, {select_list(Integration, 'i')}, "
        f"{select_list(Tenant, 't')} FROM {IntegrationAPIKey._meta.db_table} k "
        f"JOIN {Integration._meta.db_table} i ON i.id = k.integration_id "
        f"JOIN {Tenant._meta.db_table} t ON t.id = i.tenant_id "
        "WHERE k.prefix = %s AND k.revoked = %s"
    )


def unrevoked_key(prefix: str) -> IntegrationAPIKey | None:
    """The key with this prefix unless revoked, with its integration and tenant, in one query (the caller
    verifies the hash and the expiry)."""
    with connection.cursor() as cursor:
        cursor.execute(_key_sql(), [prefix, False])
        row = cursor.fetchone()
    if row is None:
        return None
    n_key, n_integration = width(IntegrationAPIKey), width(Integration)
    api_key = instance(IntegrationAPIKey, "k", row[:n_key])
    integration = instance(Integration, "i", row[n_key : n_key + n_integration])
    integration.tenant = instance(Tenant, "t", row[n_key + n_integration :])
    api_key.integration = integration
    return api_key


# --- idempotency records -------------------------------------------------------------------------------


def idempotency_claim(record: IdempotencyRecord) -> bool:
    """Insert `record` unless its (integration, key) is taken: True (and its id set) when this call claimed it.

    One INSERT ... ON CONFLICT DO NOTHING: the unique constraint decides between concurrent twins (a twin's
    uncommitted INSERT makes this one wait for its outcome); no exception, so no savepoint is needed.
    """
    head, params = insert_values(IdempotencyRecord, [record])
    quote = connection.ops.quote_name
    returning = quote("id")
    # In autocommit, the claim commits without waiting for the disk: every later commit of this request
    # (its effects, its stored answer) flushes the write-ahead log up to there, the claim included, so a
    # crash can only lose a claim that nothing depends on yet (a retry then claims and runs it anew).
    # Twins see it at once either way. Inside a caller's transaction the claim shares that transaction.
    # `set_config(..., true)` in RETURNING sets it for this statement's own transaction, in one statement (a
    # prepared statement cannot carry a second one); a conflict inserts nothing, so has nothing to commit.
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        returning += ", set_config('synchronous_commit', 'off', true)"
    sql = f"{head} ON CONFLICT ({quote('integration_id')}, {quote('key')}) DO NOTHING RETURNING {returning}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    record.pk = row[0]
    record._state.adding = False
    record._state.db = connection.alias
    return True


def idempotency_record(integration_id: int, key: str) -> IdempotencyRecord | None:
    """The record of (integration, key), if any: one indexed read (the unique constraint's index)."""
    rows = instances(
        IdempotencyRecord,
        f"FROM {IdempotencyRecord._meta.db_table} t WHERE t.integration_id = %s AND t.key = %s",
        [integration_id, key],
    )
    return rows[0] if rows else None


def idempotency_store(record_id: int, status: int, body: str) -> None:
    """The record's answer: completed, with the response's status and body."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {IdempotencyRecord._meta.db_table} SET state = %s, response_status = %s, response_body = %s "
            "WHERE id = %s",
            [str(IdempotencyRecord.State.COMPLETED), status, body, record_id],
        )


# --- webhook outbox ------------------------------------------------------------------------------------


def _wants(endpoint: str) -> str:
    """The endpoint `endpoint` wants the event type given by the second parameter (the first is True):
    enabled, and the type among its `event_types`."""
    if connection.vendor == "postgresql":
        among = f"{endpoint}.event_types @> jsonb_build_array(%s::text)"
    else:  # SQLite: no jsonb operators; the same question of the JSON array
        among = f"EXISTS (SELECT 1 FROM json_each({endpoint}.event_types) WHERE json_each.value = %s)"
    return f"{endpoint}.enabled = %s AND {among}"


def event_record(event: Event) -> list[int]:
    """Write the outbox row `event` and one pending delivery per endpoint of its tenant that wants its type:
    the deliveries' ids. One statement on PostgreSQL; two on SQLite (no data-modifying CTEs), the same texts."""
    head, event_params = insert_values(Event, [event])
    now = connection.ops.adapt_datetimefield_value(event.created_at)
    event_id = WebhookDelivery._meta.get_field("event").get_db_prep_value(event.pk, connection)
    deliveries = (
        f"INSERT INTO {WebhookDelivery._meta.db_table} (tenant_id, event_id, endpoint_id, status, attempts,"
        " next_attempt_at, locked_until, last_status_code, last_error, resent_from_id, created_at, succeeded_at)"
        " SELECT e.tenant_id, %s, e.id, %s, 0, %s, NULL, NULL, '', NULL, %s, NULL"
        f" FROM {WebhookEndpoint._meta.db_table} e WHERE e.tenant_id = %s AND {_wants('e')}"
    )
    params = [event_id, str(WebhookDelivery.Status.PENDING), now, now, event.tenant_id, True, event.type]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"WITH event AS ({head}) {deliveries} RETURNING id", [*event_params, *params])
            return [row[0] for row in cursor.fetchall()]
        cursor.execute(head, event_params)
        if connection.features.can_return_rows_from_bulk_insert:
            cursor.execute(f"{deliveries} RETURNING id", params)
            return [row[0] for row in cursor.fetchall()]
        cursor.execute(deliveries, params)  # SQLite before 3.35: no RETURNING
        cursor.execute(f"SELECT id FROM {WebhookDelivery._meta.db_table} WHERE event_id = %s", [event_id])
        return [row[0] for row in cursor.fetchall()]
