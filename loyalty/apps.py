from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_roles_after_migrate(sender, apps=None, **kwargs):
    # Infrastructure seeding: runs once, after the last app with models has had its permissions created.
    from django.apps import apps as global_apps

    last = [config for config in global_apps.get_app_configs() if config.models_module is not None][-1]
    if sender.label != last.label:
        return
    from loyalty.roles import sync_roles

    sync_roles()


class LoyaltyConfig(AppConfig):
    name = "loyalty"

    def ready(self):
        post_migrate.connect(_sync_roles_after_migrate, dispatch_uid="loyalty.sync_roles")
        # Registers the webhook sink of common.events and the Celery tasks of webhooks and idempotency.
        import loyalty.api.idempotency  # noqa: F401
        import loyalty.webhooks  # noqa: F401
