"""What a redemption and an order cost the database in indexes and foreign key checks, held in place.

Every index of a table written on the hot path is one more index entry (and its WAL) per row; every database
foreign key is one more trigger per row, which share-locks the parent row (FOR KEY SHARE). The figures below
are the deliberate ones: a new index or foreign key on one of these tables fails here until it is added to
HOT_TABLES on purpose. And no index there may be a leading prefix of another one of the same table (the
longer one serves the same lookups), unless it is unique (a constraint) or the longer one is partial.
"""

import pytest
from django.db import connection
from django.db.models import ProtectedError

from integrations.models import Event
from rewards.models import EvaluationTrace
from tests.factories import TenantFactory

# table: (number of indexes, the columns with a database foreign key)
HOT_TABLES = {
    # a redemption
    "loyalty_idempotencyrecord": (3, {"integration_id"}),
    "rewards_redemption": (4, {"tenant_id", "member_id", "staff_user_id"}),
    "rewards_redemptioncode": (5, {"redemption_id", "campaign_id", "code_id"}),
    "rewards_giftcardtransaction": (4, {"tenant_id", "code_id", "redemption_id"}),
    "campaigns_campaign": (3, {"tenant_id", "owner_id"}),
    "campaigns_code": (5, {"campaign_id", "member_id"}),
    "campaigns_campaignusage": (2, {"campaign_id"}),
    "rewards_evaluationtrace": (4, set()),
    "loyalty_event": (3, set()),
    "loyalty_webhookdelivery": (6, {"event_id", "endpoint_id", "resent_from_id"}),
    # an order (and the points of a redemption)
    "loyalty_order": (4, {"tenant_id", "member_id", "program_id"}),
    "loyalty_orderitem": (2, {"order_id"}),
    "rewards_account": (4, {"tenant_id", "member_id", "program_id"}),
    "rewards_ledgerentry": (7, {"account_id", "reverses_id", "staff_user_id"}),
    "rewards_pointlot": (4, {"account_id", "entry_id"}),
    "rewards_lotconsumption": (3, {"lot_id", "entry_id"}),
    "rewards_pendingpoints": (5, {"account_id", "released_entry_id"}),
    "loyalty_earningcapusage": (4, {"tenant_id", "rule_id", "member_id"}),
    "loyalty_membertier": (5, {"tenant_id", "member_id", "program_id", "tier_id"}),
    "loyalty_tierchange": (7, {"tenant_id", "member_id", "program_id", "from_tier_id", "to_tier_id", "staff_user_id"}),
}


def _indexes() -> dict[str, list[dict]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.relname, i.relname, x.indisunique, x.indkey::int2[], x.indoption::int2[],
                   x.indexprs IS NOT NULL, pg_get_expr(x.indpred, x.indrelid), am.amname,
                   pg_get_indexdef(x.indexrelid)
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            JOIN pg_am am ON am.oid = i.relam
            WHERE t.relname = ANY(%s) AND t.relnamespace = current_schema()::regnamespace
            ORDER BY t.relname, i.relname
            """,
            [list(HOT_TABLES)],
        )
        found: dict[str, list[dict]] = {table: [] for table in HOT_TABLES}
        for table, name, unique, keys, options, expressions, predicate, method, definition in cursor.fetchall():
            found[table].append(
                {
                    "name": name,
                    "unique": unique,
                    "keys": list(keys),
                    "options": list(options),
                    "expressions": expressions,
                    "predicate": predicate,
                    "method": method,
                    "definition": definition,
                }
            )
        return found


def _foreign_key_columns() -> dict[str, set[str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.relname, a.attname
            FROM pg_constraint k
            JOIN pg_class t ON t.oid = k.conrelid
            JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY(k.conkey)
            WHERE k.contype = 'f' AND t.relname = ANY(%s) AND t.relnamespace = current_schema()::regnamespace
            """,
            [list(HOT_TABLES)],
        )
        found: dict[str, set[str]] = {table: set() for table in HOT_TABLES}
        for table, column in cursor.fetchall():
            found[table].add(column)
        return found


def covered_by(short: dict, long: dict) -> bool:
    """`short` serves nothing that `long` does not: its columns lead `long`'s, in the same order and direction
    (a single column is scanned either way), `long` holds every row `short` holds, and `short` is no
    constraint."""
    n = len(short["keys"])
    return (
        short is not long
        and not short["unique"]
        and not short["expressions"]
        and not long["expressions"]
        and short["method"] == long["method"] == "btree"
        and n <= len(long["keys"])
        and long["keys"][:n] == short["keys"]
        and (n == 1 or long["options"][:n] == short["options"])
        and long["predicate"] in (None, short["predicate"])
    )


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_hot_tables_have_the_indexes_and_foreign_keys_they_are_meant_to():
    indexes, foreign_keys = _indexes(), _foreign_key_columns()
    assert all(indexes.values()), f"a hot table is missing: {[t for t, found in indexes.items() if not found]}"
    counts = {table: len(found) for table, found in indexes.items()}
    expected = {table: count for table, (count, _) in HOT_TABLES.items()}
    assert counts == expected, "\n".join(
        f"{table}: {counts[table]} indexes, expected {expected[table]}:\n  "
        + "\n  ".join(i["definition"] for i in indexes[table])
        for table in HOT_TABLES
        if counts[table] != expected[table]
    )
    assert foreign_keys == {table: columns for table, (_, columns) in HOT_TABLES.items()}


@pytest.mark.postgres
@pytest.mark.django_db
def test_no_index_of_a_hot_table_is_a_leading_prefix_of_another():
    redundant = [
        f"{short['definition']}\n    is covered by {long['definition']}"
        for found in _indexes().values()
        for short in found
        for long in found
        if covered_by(short, long)
    ]
    assert redundant == []


def test_the_prefix_rule_itself():
    def index(keys, options=None, unique=False, predicate=None):
        return {
            "keys": keys,
            "options": options or [0] * len(keys),
            "unique": unique,
            "expressions": False,
            "predicate": predicate,
            "method": "btree",
        }

    tenant, tenant_order, member_time = index([2]), index([2, 5]), index([3, 7], options=[0, 3])
    assert covered_by(tenant, tenant_order)
    assert not covered_by(tenant_order, tenant)
    assert covered_by(index([3]), member_time)  # one column: scanned backwards as well
    assert not covered_by(index([3, 7]), member_time)  # (member, created_at) is not (member, created_at DESC)
    assert not covered_by(index([2], unique=True), tenant_order)  # a constraint stays
    assert not covered_by(index([2]), index([2, 5], predicate="(remaining > 0)"))  # the partial one lacks rows
    assert covered_by(index([2], predicate="(x IS NOT NULL)"), tenant_order)


@pytest.mark.django_db
@pytest.mark.parametrize("model", [Event, EvaluationTrace])
def test_a_tenant_with_rows_behind_an_unchecked_foreign_key_still_cannot_be_deleted(model):
    """db_constraint=False drops the database check only: Django still applies on_delete=PROTECT."""
    tenant = TenantFactory()
    if model is Event:
        Event.objects.create(tenant=tenant, type="member.created", data={})
    else:
        EvaluationTrace.objects.create(tenant=tenant, kind="validation", succeeded=True, document={})
    with pytest.raises(ProtectedError):
        tenant.delete()
