"""The partial index `ledger_entry_staff` (staff_user_id where set), built without blocking writes to `rewards_ledgerentry`.

CREATE INDEX CONCURRENTLY on PostgreSQL (outside a transaction, so this migration is not atomic); a plain
CREATE INDEX elsewhere. The state is the AddIndex makemigrations generates.
"""

from django.db import migrations, models

INDEX = "ledger_entry_staff"
CREATE = 'CREATE INDEX {how} "ledger_entry_staff" ON "rewards_ledgerentry" ("staff_user_id") WHERE "staff_user_id" IS NOT NULL'


def forward(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    schema_editor.execute(CREATE.format(how="CONCURRENTLY IF NOT EXISTS" if postgres else "IF NOT EXISTS"), params=None)


def backward(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    schema_editor.execute(f'DROP INDEX {"CONCURRENTLY " if postgres else ""}IF EXISTS "{INDEX}"', params=None)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("loyalty", "0007_hot_path_prune_indexes_and_tenant_checks")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="ledgerentry",
                    index=models.Index(
                        condition=models.Q(("staff_user__isnull", False)), fields=["staff_user"], name="ledger_entry_staff"
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(forward, backward, elidable=False)],
        ),
    ]
