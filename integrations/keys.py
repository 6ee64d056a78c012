"""Services for integrations and their API keys (used by the admin and `create_api_key`), and the key lookup.

Each worker process keeps what it read of a key for `API_KEY_CACHE_SECONDS` (default 5; 0 turns it off), so
the API's hot path does not read the same three rows (key, integration, tenant) on every request; the hash
is still checked on every request. A revoked, expired or changed key is therefore seen within that many
seconds on every worker (at once on the worker that revoked it), and so are the tenant's settings (time
zone, currency). The kill switch is not cached: redemption and earning read the tenant's `frozen` flag in
their own transactions.
"""

import threading
import time

from django.conf import settings
from django.db import transaction

from integrations.models import API_SCOPES, Integration, IntegrationAPIKey
from integrations.sql import unrevoked_key
from members.models import Tenant

_CACHE_MAX = 1000  # keys per worker; past it the cache starts afresh (an integration has a handful)
_cache: dict[str, tuple[float, IntegrationAPIKey | None]] = {}
_cache_lock = threading.Lock()
_clock = time.monotonic  # a test moves it


def key_by_prefix(prefix: str) -> IntegrationAPIKey | None:
    """`integrations.sql.unrevoked_key(prefix)`, as this process read it at most `API_KEY_CACHE_SECONDS` ago."""
    ttl = getattr(settings, "API_KEY_CACHE_SECONDS", 5)
    if ttl <= 0:
        return unrevoked_key(prefix)
    now = _clock()
    hit = _cache.get(prefix)
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    api_key = unrevoked_key(prefix)
    with _cache_lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[prefix] = (now, api_key)
    return api_key


def forget_cached_keys() -> None:
    """Drop what this process cached of keys (after a revocation here; the tests between cases)."""
    with _cache_lock:
        _cache.clear()


def integration_get_or_create(*, tenant: Tenant, name: str, description: str = "") -> tuple[Integration, bool]:
    with transaction.atomic():
        return Integration.objects.get_or_create(tenant=tenant, name=name, defaults={"description": description})


def api_key_create(
    *,
    integration: Integration,
    name: str = "",
    scopes: list[str] | None = None,
    expiry_date=None,
    throttle_rate: str = "",
) -> tuple[IntegrationAPIKey, str]:
    """A new key of `integration`: returns the model (hash only) and the raw key, shown this once."""
    api_key = IntegrationAPIKey(
        integration=integration,
        name=(name or integration.name)[:50],
        scopes=list(scopes) if scopes is not None else list(API_SCOPES),
        expiry_date=expiry_date,
        throttle_rate=throttle_rate,
    )
    raw_key = IntegrationAPIKey.objects.assign_key(api_key)
    api_key.full_clean(exclude=["id", "prefix", "hashed_key"])
    with transaction.atomic():
        api_key._change_reason = "created"
        api_key.save()
    return api_key, raw_key


def api_key_revoke(*, api_key: IntegrationAPIKey) -> IntegrationAPIKey:
    """Revoke for good: the key answers 401 from now on."""
    with transaction.atomic():
        api_key = IntegrationAPIKey.objects.select_for_update().get(pk=api_key.pk)
        if not api_key.revoked:
            api_key.revoked = True
            api_key._change_reason = "revoked"
            api_key.save(update_fields=["revoked"])
        # This process refuses it at once (now, and again once committed, past any read in between).
        forget_cached_keys()
        transaction.on_commit(forget_cached_keys)
    return api_key
