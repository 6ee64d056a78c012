import zoneinfo

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(_("%(value)s is not a known time zone."), params={"value": value})


class Tenant(models.Model):
    """A brand or a country: every domain row belongs to exactly one.

    It lives in `members`, the lowest domain app, because every other app references it; placing it in
    `loyalty` (as the first map of the apps had it) would make members depend on loyalty and close a cycle.
    """

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    currency = models.CharField(
        max_length=3, validators=[RegexValidator(r"^[A-Z]{3}$", _("An ISO 4217 code such as EUR."))]
    )
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    locale = models.CharField(max_length=16, default="en")
    frozen = models.BooleanField(
        default=False, help_text=_("Kill switch: refuses every redemption and earning of this tenant at once.")
    )
    frozen_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["slug"]
        permissions = [("access_tenant", "Can work with this tenant's data")]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class TenantQuerySet(models.QuerySet):
    def for_tenant(self, tenant: Tenant | int) -> "TenantQuerySet":
        return self.filter(tenant=tenant)


class TenantOwned(models.Model):
    """Base of every tenant-owned model: queries go through `Model.objects.for_tenant(tenant)`."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True
