"""Reports own no data of their own here but the rights to see them."""

from django.db import models


class AuditEntry(models.Model):
    """No table: carries the right to see the audit page (`reports.view_audit`), given to Admins and Analysts."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_audit", "Can see the audit page (who did what, sign-ins)")]

    def __str__(self) -> str:
        return "audit"
