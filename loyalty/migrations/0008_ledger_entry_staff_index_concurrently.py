"""The partial index `ledger_entry_staff` (staff_user_id where set), built without blocking writes to `rewards_ledgerentry`.

CREATE INDEX CONCURRENTLY on PostgreSQL (outside a transaction, so this migration is not atomic); a plain
CREATE INDEX elsewhere. The state is the AddIndex makemigrations generates.
"""

from django.db import migrations, models

from common.migration_ops import index_where_set_concurrently


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
            database_operations=[index_where_set_concurrently(table="rewards_ledgerentry", name="ledger_entry_staff", column="staff_user_id")],
        ),
    ]
