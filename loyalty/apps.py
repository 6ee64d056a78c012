from django.apps import AppConfig


class LoyaltyConfig(AppConfig):
    name = "loyalty"

    def ready(self):
        import loyalty.erasure  # noqa: F401  (registers its hook of `members.erasure`)
