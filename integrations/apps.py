from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"

    def ready(self):
        # Registers the webhook sink of `common.events`, and the Celery tasks of webhooks and idempotency records.
        import integrations.idempotency  # noqa: F401
        import integrations.webhooks  # noqa: F401
