"""Database steps the apps' migrations share, written once (the hot tables' pruning, partial indexes).

Each returns a reversible `RunPython` for a `SeparateDatabaseAndState`'s database side, whose state side is the
operation makemigrations generated.
"""

from django.db import migrations


def prune_indexes_and_foreign_keys(*, indexes: list[tuple], foreign_keys: list[tuple]) -> migrations.RunPython:
    """Drop single-column `indexes` ((table, index, column)) and, on PostgreSQL, the constraints of
    `foreign_keys` ((table, constraint, column, referenced table)) left unchecked (`db_constraint=False`).

    Only what changes: Django's own step for such a field drops and re-creates its foreign key (a validating
    scan under a lock that blocks writes) and drops every index of the column not named in `Meta.indexes`
    (a partial unique one included). SQLite keeps its REFERENCES clauses until a table rebuild; it is the
    development database. Backwards re-creates both.
    """

    def forward(apps, schema_editor):
        quote = schema_editor.quote_name
        if schema_editor.connection.vendor == "postgresql":
            for table, name, _column, _target in foreign_keys:
                schema_editor.execute(f"SET CONSTRAINTS {quote(name)} IMMEDIATE", params=None)
                schema_editor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}", params=None)
        for _table, name, _column in indexes:
            schema_editor.execute(f"DROP INDEX IF EXISTS {quote(name)}", params=None)

    def backward(apps, schema_editor):
        quote = schema_editor.quote_name
        for table, name, column in indexes:
            schema_editor.execute(f"CREATE INDEX {quote(name)} ON {quote(table)} ({quote(column)})", params=None)
        if schema_editor.connection.vendor == "postgresql":
            for table, name, column, target in foreign_keys:
                schema_editor.execute(
                    f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} FOREIGN KEY ({quote(column)})"
                    f" REFERENCES {quote(target)} ({quote('id')}) DEFERRABLE INITIALLY DEFERRED",
                    params=None,
                )

    return migrations.RunPython(forward, backward, elidable=False)


def index_where_set_concurrently(*, table: str, name: str, column: str) -> migrations.RunPython:
    """The partial index `name` on `table` (`column` where not null), built without blocking writes: CREATE
    INDEX CONCURRENTLY on PostgreSQL (the migration must be `atomic = False`), a plain one elsewhere."""

    def forward(apps, schema_editor):
        quote = schema_editor.quote_name
        how = "CONCURRENTLY IF NOT EXISTS" if schema_editor.connection.vendor == "postgresql" else "IF NOT EXISTS"
        schema_editor.execute(
            f"CREATE INDEX {how} {quote(name)} ON {quote(table)} ({quote(column)}) WHERE {quote(column)} IS NOT NULL",
            params=None,
        )

    def backward(apps, schema_editor):
        how = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
        schema_editor.execute(f"DROP INDEX {how}IF EXISTS {schema_editor.quote_name(name)}", params=None)

    return migrations.RunPython(forward, backward, elidable=False)
