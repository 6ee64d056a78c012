"""The partial index `redemption_staff_user` (staff_user_id where set), built without blocking writes to `rewards_redemption`.

CREATE INDEX CONCURRENTLY on PostgreSQL (outside a transaction, so this migration is not atomic); a plain
CREATE INDEX elsewhere. The state is the AddIndex makemigrations generates.
"""

from django.db import migrations, models

INDEX = "redemption_staff_user"
CREATE = 'CREATE INDEX {how} "redemption_staff_user" ON "rewards_redemption" ("staff_user_id") WHERE "staff_user_id" IS NOT NULL'


def forward(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    schema_editor.execute(CREATE.format(how="CONCURRENTLY IF NOT EXISTS" if postgres else "IF NOT EXISTS"), params=None)


def backward(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    schema_editor.execute(f'DROP INDEX {"CONCURRENTLY " if postgres else ""}IF EXISTS "{INDEX}"', params=None)


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
            database_operations=[migrations.RunPython(forward, backward, elidable=False)],
        ),
    ]
