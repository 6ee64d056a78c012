"""How far a staff user may move points on their own: limits per action and per day, and what was used.

Limits belong to a role (a group) or to one user (a user's own limit replaces their roles'). Staff span
tenants, so neither is tenant-owned. The day's usage is one counter row per user and day, raised by a
conditional UPDATE in the adjustment's transaction, so two adjustments at once cannot pass the day's limit.
"""

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

__all__ = ["AdjustmentLimit", "AdjustmentUsage"]


class AdjustmentLimit(models.Model):
    group = models.OneToOneField(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="adjustment_limit", verbose_name=_("role")
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="adjustment_limit"
    )
    per_action = models.PositiveIntegerField(help_text=_("Most points one adjustment may add or remove."))
    per_day = models.PositiveIntegerField(help_text=_("Most points (added plus removed) per calendar day."))
    apologies_per_day = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Most apology coupons per calendar day; beyond it a second person approves. Empty: no limit."),
    )

    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(group__isnull=True, user__isnull=False) | Q(group__isnull=False, user__isnull=True),
                name="adjustment_limit_role_or_user",
            ),
        ]

    def __str__(self) -> str:
        who = self.user or self.group
        text = f"{who}: {self.per_action} per action, {self.per_day} per day"
        if self.apologies_per_day is not None:
            text += f", {self.apologies_per_day} apology coupons per day"
        return text


class AdjustmentUsage(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    points = models.PositiveIntegerField(default=0)
    apologies = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "day"], name="adjustment_usage_one_per_user_day")]

    def __str__(self) -> str:
        return f"{self.user_id} on {self.day}: {self.points}"
