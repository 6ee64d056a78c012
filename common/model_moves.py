"""Moving models between apps without touching their tables: the content types follow.

Used by the migrations that move models (`SeparateDatabaseAndState`, tables kept by `Meta.db_table`). Renaming
the content type row, rather than letting Django create a new one, keeps its id: permissions, group rights,
per-object rights (django-guardian) and admin log entries point at it and so follow the model.
"""

from django.db import migrations


def move_content_types(*, old: str, new: str, models: list[str]) -> migrations.RunPython:
    """A reversible RunPython that moves the content types of `models` from app `old` to app `new`."""

    def move(apps, source: str, target: str) -> None:
        content_types = apps.get_model("contenttypes", "ContentType").objects
        for model in models:
            if not content_types.filter(app_label=target, model=model).exists():
                content_types.filter(app_label=source, model=model).update(app_label=target)

    return migrations.RunPython(
        lambda apps, schema_editor: move(apps, old, new), lambda apps, schema_editor: move(apps, new, old)
    )
