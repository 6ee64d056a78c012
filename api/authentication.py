"""`Authorization: Api-Key <key>`: resolves the key's integration and tenant for the whole request.

djangorestframework-api-key ships a permission class; a DRF *authentication* class is used instead so
that a missing or bad key is a 401 (with `WWW-Authenticate`) and a missing scope a 403. The key is
parsed and verified by the library (prefix lookup, SHA-512 hash compared in constant time).

Each worker process keeps what it read of a key for `API_KEY_CACHE_SECONDS` (`integrations.keys.key_by_prefix`).
"""

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework_api_key.permissions import KeyParser

from integrations.keys import key_by_prefix
from integrations.models import IntegrationAPIKey

# `last_used_at` is written at most this often per key, so the hot path rarely writes.
LAST_USED_GRANULARITY = timedelta(seconds=60)


class ApiKeyPrincipal:
    """`request.user` of an API call: the integration, not a person."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, api_key: IntegrationAPIKey):
        self.api_key = api_key
        self.integration = api_key.integration
        self.tenant = api_key.integration.tenant

    def __str__(self) -> str:
        return f"integration {self.integration.name} of {self.tenant.slug}"

    def has_perm(self, perm, obj=None) -> bool:
        return False


def resolve_key(raw_key: str) -> IntegrationAPIKey | None:
    """The usable (not revoked, not expired) key matching `raw_key`, with its integration and tenant.

    One query (the key, its integration and tenant joined, by the key's unique prefix), or none when this
    worker read it in the last `API_KEY_CACHE_SECONDS`; the library verifies the hash and the expiry.
    """
    prefix, dot, _ = raw_key.partition(".")
    if not dot or not prefix or len(raw_key) > 200:
        return None
    api_key = key_by_prefix(prefix)
    if api_key is None or api_key.has_expired or not api_key.is_valid(raw_key):
        return None
    return api_key


def touch_last_used(api_key: IntegrationAPIKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_GRANULARITY:
        # Bookkeeping, not a domain write: a plain UPDATE, no history row.
        IntegrationAPIKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"
    key_parser = KeyParser()

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        raw_key = self.key_parser.get(request)
        if not raw_key:
            raise exceptions.AuthenticationFailed("Use the header `Authorization: Api-Key <key>`.")
        api_key = resolve_key(raw_key.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed("The API key is not valid, revoked or expired.")
        touch_last_used(api_key)
        return ApiKeyPrincipal(api_key), api_key

    def authenticate_header(self, request):
        return self.keyword
