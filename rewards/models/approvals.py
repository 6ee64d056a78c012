"""Four eyes: a support change above the agent's own limit waits for a second person.

Two kinds: a points adjustment (`points`) and an apology coupon (a code of `campaign`).

The request holds who asked, what and why; an approver (another person with the approve right and access to
the tenant) approves or rejects it. Approval executes the change through the same service, once: the state
moves by a conditional UPDATE, and the database refuses a decision by the requester.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns.models import Campaign
from members.models import Member, TenantOwned

__all__ = ["ApprovalRequest"]


class ApprovalRequest(TenantOwned):
    class Kind(models.TextChoices):
        ADJUSTMENT = "adjustment", _("Points adjustment")
        APOLOGY = "apology", _("Apology coupon")

    class State(models.TextChoices):
        PENDING = "pending", _("Waiting for approval")
        APPROVED = "approved", _("Approved and carried out")
        REJECTED = "rejected", _("Rejected")
        FAILED = "failed", _("Approved, but the change was refused")

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="approval_requests")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.ADJUSTMENT)
    points = models.IntegerField(default=0)
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=300)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.CharField(max_length=300, blank=True)
    ledger_entry_id = models.BigIntegerField(null=True, blank=True)
    publication_id = models.BigIntegerField(null=True, blank=True)  # the apology coupon given on approval
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        permissions = [("approve_approvalrequest", "Can approve support requests above an agent's limit")]
        constraints = [
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
                name="approval_not_by_requester",
            ),
            models.CheckConstraint(
                condition=(Q(kind="adjustment") & ~Q(points=0) & Q(campaign__isnull=True))
                | (Q(kind="apology") & Q(points=0) & Q(campaign__isnull=False)),
                name="approval_names_its_change",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "state", "requested_at"], name="approval_pending")]

    def __str__(self) -> str:
        return f"{self.change} for {self.member_id} ({self.state})"

    @property
    def change(self) -> str:
        """What would be carried out, in a few words (lists, the decision page, the approvers' email)."""
        if self.kind == self.Kind.APOLOGY:
            return _("apology coupon of %(campaign)s") % {"campaign": self.campaign.name if self.campaign else "?"}
        return _("%(points)+d points") % {"points": self.points}
