from django.db import transaction

from members.models import Tenant


def tenant_create(
    *, slug: str, name: str, currency: str, time_zone: str = "UTC", locale: str = "en"
) -> tuple[Tenant, bool]:
    """Create a tenant, or return the existing one with that slug unchanged (idempotent)."""
    existing = Tenant.objects.filter(slug=slug).first()
    if existing:
        return existing, False
    tenant = Tenant(slug=slug, name=name, currency=currency.upper(), time_zone=time_zone, locale=locale)
    tenant.full_clean()
    with transaction.atomic():
        tenant._change_reason = "created"
        tenant.save()
    return tenant, True


def tenant_set_frozen(*, tenant: Tenant, frozen: bool, reason: str = "") -> Tenant:
    """The tenant-wide kill switch: freezes (or thaws) every redemption and earning at once."""
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        tenant.frozen = frozen
        tenant.frozen_reason = reason if frozen else ""
        tenant._change_reason = f"{'frozen' if frozen else 'unfrozen'}: {reason}".strip(": ")
        tenant.save(update_fields=["frozen", "frozen_reason"])
    return tenant
