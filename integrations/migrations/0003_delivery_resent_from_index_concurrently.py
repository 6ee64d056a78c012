"""The partial index `delivery_resent_from` (resent_from_id where set), built without blocking writes to `loyalty_webhookdelivery`.

CREATE INDEX CONCURRENTLY on PostgreSQL (outside a transaction, so this migration is not atomic); a plain
CREATE INDEX elsewhere. The state is the AddIndex makemigrations generates.
"""

from django.db import migrations, models

from common.migration_ops import index_where_set_concurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("integrations", "0002_hot_path_prune_indexes_and_tenant_checks")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="webhookdelivery",
                    index=models.Index(
                        condition=models.Q(("resent_from__isnull", False)), fields=["resent_from"], name="delivery_resent_from"
                    ),
                ),
            ],
            database_operations=[index_where_set_concurrently(table="loyalty_webhookdelivery", name="delivery_resent_from", column="resent_from_id")],
        ),
    ]
