from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"

    def ready(self):
        # Campaign triggers listen to the events of members and loyalty (which cannot import campaigns).
        from campaigns import triggers

        triggers.register()
