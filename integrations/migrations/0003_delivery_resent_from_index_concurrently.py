"""The partial index `delivery_resent_from` (resent_from_id where set), built without blocking writes to `loyalty_webhookdelivery`.

CREATE INDEX CONCURRENTLY on PostgreSQL (outside a transaction, so this migration is not atomic); a plain
CREATE INDEX elsewhere. The state is the AddIndex makemigrations generates.
"""

from django.db import migrations, models

INDEX = "delivery_resent_from"
CREATE = 'CREATE INDEX {how} "delivery_resent_from" ON "loyalty_webhookdelivery" ("resent_from_id") WHERE "resent_from_id" IS NOT NULL'


def forward(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    schema_editor.execute(CREATE.format(how="CONCURRENTLY IF NOT EXISTS" if postgres else "IF NOT EXISTS"), params=None)


def backward(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    schema_editor.execute(f'DROP INDEX {"CONCURRENTLY " if postgres else ""}IF EXISTS "{INDEX}"', params=None)


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
            database_operations=[migrations.RunPython(forward, backward, elidable=False)],
        ),
    ]
