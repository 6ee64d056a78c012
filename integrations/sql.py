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

from collections.abc import Callable
from functools import cache

from django.db import connection

from common.plain_sql import batched, batching, insert_values, instance, instances, select_list, width, write_later
from integrations.idempotency import retention
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


def _claim_sql(record: IdempotencyRecord, returning: str) -> tuple[str, list]:
    """The claim's INSERT. A completed record (a deferred claim's, `api.idempotency`) also takes over a row of
    the same key past retention that the purge has not deleted yet: such a row answers nobody any more."""
    head, params = insert_values(IdempotencyRecord, [record])
    quote = connection.ops.quote_name
    on_conflict = f"ON CONFLICT ({quote('integration_id')}, {quote('key')})"
    if record.state != IdempotencyRecord.State.COMPLETED:
        return f"{head} {on_conflict} DO NOTHING RETURNING {returning}", params
    table = quote(IdempotencyRecord._meta.db_table)
    columns = [quote(f.column) for f in IdempotencyRecord._meta.concrete_fields if not f.primary_key]
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
    cutoff = connection.ops.adapt_datetimefield_value(record.created_at - retention())
    sql = f"{head} {on_conflict} DO UPDATE SET {sets} WHERE {table}.{quote('created_at')} < %s RETURNING {returning}"
    return sql, [*params, cutoff]


def _claimed(record: IdempotencyRecord, pk) -> None:
    record.pk = pk
    record._state.adding = False
    record._state.db = connection.alias


def idempotency_claim(record: IdempotencyRecord) -> bool:
    """Insert `record` unless its (integration, key) is taken: True (and its id set) when this call claimed it.

    One INSERT ... ON CONFLICT DO NOTHING: the unique constraint decides between concurrent twins (a twin's
    uncommitted INSERT makes this one wait for its outcome); no exception, so no savepoint is needed.
    """
    returning = connection.ops.quote_name("id")
    # In autocommit, the claim commits without waiting for the disk: every later commit of this request
    # (its effects, its stored answer) flushes the write-ahead log up to there, the claim included, so a
    # crash can only lose a claim that nothing depends on yet (a retry then claims and runs it anew).
    # Twins see it at once either way. Inside a caller's transaction the claim shares that transaction.
    # `set_config(..., true)` in RETURNING sets it for this statement's own transaction, in one statement (a
    # prepared statement cannot carry a second one); a conflict inserts nothing, so has nothing to commit.
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        returning += ", set_config('synchronous_commit', 'off', true)"
    sql, params = _claim_sql(record, returning)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    _claimed(record, row[0])
    return True


def idempotency_claim_then(record: IdempotencyRecord, claimed: Callable[[bool], None]) -> None:
    """`claimed(idempotency_claim(record))`, the INSERT joining the open batch of writes when there is one
    (`common.plain_sql.batched`: the stored answer of a redemption goes with its counters)."""
    if not batching():
        claimed(idempotency_claim(record))
        return
    sql, params = _claim_sql(record, f"{connection.ops.quote_name('id')} AS r")

    def returned(ids: list) -> None:
        if ids:
            _claimed(record, ids[0])
        claimed(bool(ids))

    write_later(sql, params, returned=returned)


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


def event_record(event: Event, delivered: Callable[[list[int]], None]) -> None:
    """Write the outbox row `event` and one pending delivery per endpoint of its tenant that wants its type, and
    call `delivered(ids)` with the deliveries' ids. One statement on PostgreSQL (joining the open batch, if any:
    `common.plain_sql.batched`); two on SQLite (no data-modifying CTEs), the same texts."""
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
    if connection.vendor == "postgresql":
        # The deliveries' foreign key to the event is checked at the end of the statement, when both are in.
        with batched():
            write_later(head, event_params)
            write_later(f"{deliveries} RETURNING id AS r", params, returned=delivered)
        return
    with connection.cursor() as cursor:
        cursor.execute(head, event_params)
        if connection.features.can_return_rows_from_bulk_insert:
            cursor.execute(f"{deliveries} RETURNING id", params)
        else:  # SQLite before 3.35: no RETURNING
            cursor.execute(deliveries, params)
            cursor.execute(f"SELECT id FROM {WebhookDelivery._meta.db_table} WHERE event_id = %s", [event_id])
        delivered([row[0] for row in cursor.fetchall()])
