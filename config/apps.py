from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_roles_after_migrate(sender, apps=None, **kwargs):
    # Infrastructure seeding: runs once, after the last app with models has had its permissions created.
    from django.apps import apps as global_apps

    from config.roles import sync_roles

    last = [config for config in global_apps.get_app_configs() if config.models_module is not None][-1]
    if sender.label == last.label:
        sync_roles()


class ConfigConfig(AppConfig):
    name = "config"
    verbose_name = "Project"

    def ready(self):
        post_migrate.connect(_sync_roles_after_migrate, dispatch_uid="config.sync_roles")
