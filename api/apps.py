from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The touchpoint REST API: no models, only views over the services of the apps below it."""

    name = "api"
