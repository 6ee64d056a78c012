"""Services for integrations and their API keys (used by the admin and `create_api_key`)."""

from django.db import transaction

from integrations.models import API_SCOPES, Integration, IntegrationAPIKey
from members.models import Tenant


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
    return api_key
