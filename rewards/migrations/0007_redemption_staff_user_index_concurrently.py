"""The partial index `redemption_staff_user` (staff_user_id where set), built without blocking writes to `rewards_redemption`.

CREATE INDEX CONCURRENTLY on PostgreSQL (outside a transaction, so this migration is not atomic); a plain
CREATE INDEX elsewhere. The state is the AddIndex makemigrations generates.
"""

from django.db import migrations, models

from common.migration_ops import index_where_set_concurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("rewards", "0006_gift_card_history_prune_covered_index")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="redemption",
                    index=models.Index(
                        condition=models.Q(("staff_user__isnull", False)), fields=["staff_user"], name="redemption_staff_user"
                    ),
                ),
            ],
            database_operations=[index_where_set_concurrently(table="rewards_redemption", name="redemption_staff_user", column="staff_user_id")],
        ),
    ]
