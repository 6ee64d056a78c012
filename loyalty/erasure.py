"""What this app holds of an erased member beyond sums (`members.erasure`): an order's stored first answer names
the member's external id. Rewritten when it became a pseudonym, so that a replayed answer never names the next
member who takes the id. Found through the (member, occurred_at) index."""

from loyalty.models import Order
from members.erasure import Erased, register


def member_copies_erase(erased: Erased) -> None:
    if not erased.external_id_changed:
        return
    orders = Order.objects.filter(member_id=erased.member_id, result__member=erased.external_id_before)
    changed = []
    for order in orders.only("id", "result").iterator(chunk_size=1000):
        order.result = {**order.result, "member": erased.external_id}
        changed.append(order)
    Order.objects.bulk_update(changed, ["result"], batch_size=1000)


register(member_copies_erase)
