"""The ledger is append-only in the database itself (house rule 3), not only in `AppendOnlyQuerySet`.

PostgreSQL triggers refuse, whatever the code path (raw SQL, a forgotten `QuerySet.update()`, a shell):

- `rewards_ledgerentry` (entries) and `rewards_lotconsumption` (which entry took how much from which lot):
  every UPDATE and DELETE. Nothing in the code changes or removes them; a correction is a new entry.
- `rewards_pointlot` (lots): every DELETE, and an UPDATE that changes what the lot *is* (id, tenant, account,
  the entry that credited it, its points, earning time, inactivity flag, order). Two columns stay writable
  because the ledger legitimately moves them: `remaining` (spending, expiry and reversals take from and put
  back into lots; each such move is recorded as an append-only `LotConsumption`, and the lot constraints keep
  0 <= remaining <= points) and `expires_at` (under an `inactivity` expiry policy every earning or spending
  pushes the expiry of the live lots forward, `loyalty.ledger.posting._touch_activity`).

The refusal is SQLSTATE 23001 (`restrict_violation`), an integrity constraint violation, so Django raises
`IntegrityError` like for the other constraints.

TRUNCATE is left alone: it fires no row triggers, and the test suite's flush (`TransactionTestCase`) uses it
on PostgreSQL. Keeping TRUNCATE and `ALTER TABLE ... DISABLE TRIGGER` away from the application is a matter of
privileges (run the application as a role that does not own the tables).

SQLite: nothing. The triggers would be possible there, but Django flushes SQLite with DELETE (the transactional
tests would fail at teardown), and SQLite is the development database, not the one that holds money.
"""

from django.db import migrations

APPEND_ONLY = ("rewards_ledgerentry", "rewards_lotconsumption")
LOT_IMMUTABLE = ("id", "tenant_id", "account_id", "entry_id", "points", "earned_at", "inactivity", "order_id")

FORWARD = [
    """
    CREATE OR REPLACE FUNCTION loyalty_ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the ledger is append-only: % on % is refused (post a correcting entry instead)',
            TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation', HINT = 'Post a correcting entry instead.';
    END
    $$
    """,
    *(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}"
        " FOR EACH ROW EXECUTE FUNCTION loyalty_ledger_refuse_change()"
        for table in APPEND_ONLY
    ),
    "CREATE TRIGGER rewards_pointlot_no_delete BEFORE DELETE ON rewards_pointlot"
    " FOR EACH ROW EXECUTE FUNCTION loyalty_ledger_refuse_change()",
    "CREATE TRIGGER rewards_pointlot_history_fixed BEFORE UPDATE ON rewards_pointlot FOR EACH ROW WHEN ("
    + " OR ".join(f"OLD.{column} IS DISTINCT FROM NEW.{column}" for column in LOT_IMMUTABLE)
    + ") EXECUTE FUNCTION loyalty_ledger_refuse_change()",
]

BACKWARD = [
    *(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}" for table in APPEND_ONLY),
    "DROP TRIGGER IF EXISTS rewards_pointlot_no_delete ON rewards_pointlot",
    "DROP TRIGGER IF EXISTS rewards_pointlot_history_fixed ON rewards_pointlot",
    "DROP FUNCTION IF EXISTS loyalty_ledger_refuse_change()",
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in FORWARD:
            schema_editor.execute(statement, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in BACKWARD:
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0005_manual_tier")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
