from django.apps import AppConfig


class RewardsConfig(AppConfig):
    name = "rewards"

    def ready(self):
        import rewards.erasure  # noqa: F401  (registers its hook of `members.erasure`)
