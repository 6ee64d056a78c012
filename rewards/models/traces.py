"""Evaluation traces: what the engine saw and decided on each validation and redemption attempt.

One row per attempt, compact (the decision as JSON), written in the attempt's own transaction (a refused
redemption writes it with the failure count, after the refused work rolled back). Support reads them on the
"Explain" page; a task prunes them after `TRACE_RETENTION_DAYS`.
"""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.models import Tenant, TenantOwned

__all__ = ["EvaluationTrace"]


class EvaluationTrace(TenantOwned):
    class Kind(models.TextChoices):
        VALIDATION = "validation", _("Validation")
        REDEMPTION = "redemption", _("Redemption")

    # No database foreign key check for the tenant either (nor a single-column index: trace_recent and
    # trace_order lead with it): it is the tenant of the request, read from the integration (or the staff
    # user's tenant) whose own row is checked, and a tenant is never deleted (on_delete=PROTECT still refuses
    # an ORM delete). A refused redemption writes the trace alone, so the check would lock the tenant row
    # for nothing.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    succeeded = models.BooleanField()
    # Plain ids, not foreign keys: an append-only log on the hot path, read by tenant and time or order id.
    member_id = models.BigIntegerField(null=True, blank=True)
    member_external_id = models.CharField(max_length=100, blank=True)
    order_id = models.CharField(max_length=100, blank=True)
    redemption_id = models.BigIntegerField(null=True, blank=True)
    codes = models.JSONField(default=list, help_text=_("The codes as presented."))
    reasons = models.JSONField(default=list, help_text=_("The refusal reasons, one per refused code or points."))
    channel = models.CharField(max_length=50, blank=True)
    integration_name = models.CharField(max_length=200, blank=True)
    document = models.JSONField(help_text=_("Input, per-code decisions in order, counters as read, the answer."))
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="trace_recent"),
            models.Index(fields=["tenant", "order_id"], name="trace_order"),
            models.Index(fields=["member_id", "-created_at"], name="trace_member"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.order_id or '-'} ({'ok' if self.succeeded else 'refused'})"
