from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"

    def ready(self):
        # Registers the webhook sink of `common.events`, the Celery tasks of webhooks and idempotency records,
        # and the erasure hook of `members.erasure`.
        import integrations.erasure  # noqa: F401
        import integrations.idempotency  # noqa: F401
        import integrations.webhooks  # noqa: F401
