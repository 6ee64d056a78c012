"""Orders reported by the touchpoints (paid orders, returns): the base of earning and spend rules.

"One earn per order" rests on the unique (tenant, order_id) constraint: the order row is written in the same
transaction as its ledger entries, so a retried order finds the first one and returns its stored result.
Spend windows for rules (`member.spend_30d`, ...) are indexed aggregates over (member, occurred_at).
"""

from decimal import Decimal

from django.db import models
from django.utils import timezone

from members.models import Member, Tenant, TenantOwned

__all__ = ["Order", "OrderItem", "OrderReturn"]


class Order(TenantOwned):
    # Written on every recorded order: no single-column index that another one leads (tenant: the unique
    # (tenant, order_id); member: (member, occurred_at)). The foreign keys stay enforced: this row is the root
    # of the order's writes.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="orders", db_index=False)
    program = models.ForeignKey("loyalty.Program", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    order_id = models.CharField(max_length=100)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    returned_amount = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    currency = models.CharField(max_length=3)
    location = models.CharField(max_length=100, blank=True)
    channel = models.CharField(max_length=50, blank=True)
    occurred_at = models.DateTimeField()
    # Every point this order granted (pending or not) and how many returns have taken back (cancelled or reversed).
    points_total = models.IntegerField(default=0)
    points_taken_back = models.IntegerField(default=0)
    result = models.JSONField(default=dict, blank=True, help_text="The first answer, returned again on a retry.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "order_id"], name="order_one_earn_per_order"),
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="order_amount_not_negative"),
            models.CheckConstraint(
                condition=models.Q(returned_amount__lte=models.F("amount")), name="order_returned_within_amount"
            ),
            models.CheckConstraint(
                condition=models.Q(points_taken_back__lte=models.F("points_total")), name="order_points_taken_back_le"
            ),
        ]
        indexes = [models.Index(fields=["member", "occurred_at"])]

    def __str__(self) -> str:
        return self.order_id

    @property
    def net_amount(self) -> Decimal:
        return self.amount - self.returned_amount


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    sku = models.CharField(max_length=100, blank=True)
    category = models.CharField(max_length=100, blank=True)
    quantity = models.PositiveIntegerField(default=1)
    unit_price = models.DecimalField(max_digits=14, decimal_places=2)
    returned_quantity = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(returned_quantity__lte=models.F("quantity")), name="order_item_returned_le_quantity"
            )
        ]

    def __str__(self) -> str:
        return f"{self.sku} x{self.quantity}"


class OrderReturn(TenantOwned):
    """A (partial) return; `return_id` makes it idempotent. `debt_points` could not be reversed (already spent)."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="returns")
    return_id = models.CharField(max_length=100, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    items = models.JSONField(default=list, blank=True)
    points_cancelled = models.IntegerField(default=0)
    points_reversed = models.IntegerField(default=0)
    debt_points = models.IntegerField(default=0)
    points_forgiven = models.IntegerField(default=0, help_text="Points of the order that had expired already.")
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["order", "return_id"], condition=~models.Q(return_id=""), name="order_return_id_unique"
            )
        ]

    def __str__(self) -> str:
        return f"return {self.return_id or self.pk} of {self.order_id}"
