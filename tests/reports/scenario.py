"""One tenant's March 2026 (Europe/Berlin), with rows on both sides of every boundary of the range."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from members.models import Segment, SegmentMember
from tests.factories import TierFactory
from tests.reports.history import History

BERLIN = ZoneInfo("Europe/Berlin")
FIRST, LAST = dt.date(2026, 3, 1), dt.date(2026, 3, 31)
START = dt.datetime(2026, 3, 1, tzinfo=BERLIN)
END = dt.datetime(2026, 4, 1, tzinfo=BERLIN)
NOW = dt.datetime(2026, 4, 10, 12, tzinfo=dt.UTC)


def at(month: int, day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=BERLIN)


def in_range(moment: dt.datetime) -> bool:
    return START <= moment < END


def build(tenant) -> tuple[History, dict]:
    h = History(tenant)
    a, b, c, d = h.member(), h.member(), h.member(), h.member()
    k = h.campaign(name="K")
    g = h.campaign(name="G", type="gift_card", discount={}, gift_card_amount="50.00")
    k1, k2, k3 = h.code(k, member=a), h.code(k, member=b), h.code(k, member=c)

    # Orders: 00:30 on March 1 in Berlin is still February in UTC; a late order arrives on March 20.
    o_a1 = h.order(a, "100.00", at(3, 1, 0, 30))
    o_a2 = h.order(a, "50.00", at(3, 10))
    h.order(a, "40.00", at(3, 2), created_at=at(3, 20))
    o_b = h.order(b, "80.00", at(3, 15), location="berlin")
    o_c = h.order(c, "30.00", at(2, 28, 23, 30))
    h.order(c, "20.00", at(4, 1, 0, 10))
    h.order(d, "15.00", at(2, 10))
    h.order_return(o_b, "20.00", at(3, 16))
    h.order_return(o_c, "5.00", at(3, 2))
    h.order_return(o_a1, "10.00", at(4, 2))

    # Redemptions: a code on A's first order (through the web shop), points on A's second, a rolled-back
    # promotion on B's order, a gift card spend by B, a gift card spend by A rolled back, and B's code in April.
    h.redemption(a, o_a1.order_id, at(3, 1, 0, 30), lines=[(k, k1, "10.00", "code")], integration="web-shop")
    h.redemption(a, o_a2.order_id, at(3, 10), points_used=200)
    promo = h.redemption(b, o_b.order_id, at(3, 15), lines=[(k, None, "5.00", "promotion")])
    h.rollback(promo, at(3, 16))
    g1, g2 = h.gift_card(g, "50.00", at(3, 5)), h.gift_card(g, "30.00", at(2, 1))
    h.redemption(b, o_b.order_id, at(3, 15, 13), lines=[(g, g1, "20.00", "gift_card")])
    spend = h.redemption(a, o_a2.order_id, at(3, 12), lines=[(g, g2, "10.00", "gift_card")])
    h.rollback(spend, at(3, 13))
    h.redemption(b, "o-april", at(4, 5), lines=[(k, k2, "3.00", "code")])

    # Publications: k1 (at 00:00 Berlin on March 1) and k2 in range, k3 the day before.
    h.publication(k, k1, a, at(3, 1, 0, 0))
    h.publication(k, k2, b, at(3, 3))
    h.publication(k, k3, c, at(2, 28, 23, 59))

    h.refused(["code_expired"], at(3, 2), member=a, integration="web-shop")
    h.refused(["rule_not_met", "code_expired"], at(3, 3), member=b)
    h.refused(["rule_not_met"], at(2, 27), member=b)
    h.reward_purchase(c, at(3, 25))

    # Ledger entries.
    earn_a = h.entry(a, "earn", 100, at(3, 1))
    h.entry(a, "earn", 50, at(3, 10))
    earn_b = h.entry(b, "earn", 80, at(3, 15))
    h.entry(a, "redeem", -30, at(3, 11))
    h.entry(c, "expire", -10, at(3, 20))
    h.entry(b, "reverse", -20, at(3, 21))
    h.entry(a, "reverse", 30, at(3, 22))
    h.entry(a, "adjust", -5, at(3, 23))
    h.entry(b, "adjust", 15, at(3, 24))
    earn_c = h.entry(c, "earn", 40, at(2, 20))
    h.entry(a, "earn", 7, at(4, 2))

    # Lots, relative to NOW: 20 within 30 days, 30 within 60, 40 within 90, and three that do not count.
    h.lot(a, earn_a, 20, NOW + dt.timedelta(days=10))
    h.lot(b, earn_b, 30, NOW + dt.timedelta(days=45))
    h.lot(c, earn_c, 40, NOW + dt.timedelta(days=80))
    h.lot(a, earn_a, 99, NOW + dt.timedelta(days=100))
    h.lot(b, earn_b, 5, NOW - dt.timedelta(days=1))
    h.lot(a, earn_a, 0, NOW + dt.timedelta(days=5))

    bronze = TierFactory(program=h.program, code="bronze", name="Bronze", rank=0)
    silver = TierFactory(program=h.program, code="silver", name="Silver", rank=1, threshold=100)
    gold = TierFactory(program=h.program, code="gold", name="Gold", rank=2, threshold=500)
    h.member_tier(a, gold)
    h.member_tier(b, silver)
    h.member_tier(c, bronze)
    h.member_tier(d, bronze)
    h.tier_change(a, silver, gold, at(3, 5))
    h.tier_change(b, gold, silver, at(3, 6))
    h.tier_change(c, None, bronze, at(3, 7))
    h.tier_change(d, bronze, silver, at(2, 1))

    segment = Segment.objects.create(tenant=tenant, code="vip", name="VIP", kind=Segment.Kind.STATIC)
    SegmentMember.objects.create(segment=segment, member=b)
    names = dict(a=a, b=b, c=c, d=d, k=k, g=g, segment=segment, tiers=(bronze, silver, gold))
    return h, names


def expected_orders(h: History, keep=lambda order: True) -> dict:
    """The contract's order figures, from the rows the history wrote."""
    orders = [o for o in h.orders if in_range(o.occurred_at) and keep(o)]
    ids = {o.order_id for o in orders}
    discount_of = {}
    for r in h.redemptions:
        if r.status == "succeeded" and r.order_id in ids:
            discount_of[r.order_id] = discount_of.get(r.order_id, Decimal(0)) + r.discount
    value = sum((o.amount for o in orders), Decimal(0))
    discount = sum(discount_of.values(), Decimal(0))
    discounted = [o for o in orders if discount_of.get(o.order_id, 0) > 0]
    full = [o for o in orders if discount_of.get(o.order_id, 0) == 0]

    def avg(rows):
        if not rows:
            return "0.00"
        return str((sum((o.amount for o in rows), Decimal(0)) / len(rows)).quantize(Decimal("0.01"), "ROUND_HALF_UP"))

    returned = sum(
        (r.amount for r in h.returns if in_range(r.created_at) and keep(r.order)),
        Decimal(0),
    )
    return {
        "count": len(orders),
        "value": f"{value:.2f}",
        "discount": f"{discount:.2f}",
        "net": f"{value - discount:.2f}",
        "returned": f"{returned:.2f}",
        "aov": avg(orders),
        "aov_discounted": avg(discounted),
        "aov_full_price": avg(full),
    }


def expected_points(h: History, keep=lambda entry: True) -> dict:
    entries = [e for e in h.entries if keep(e)]
    ranged = [e for e in entries if in_range(e.created_at)]

    def total(kind):
        return sum(e.points for e in ranged if e.kind == kind)

    outstanding = sum(e.points for e in entries if e.created_at < END)
    return {
        "issued": total("earn"),
        "spent": -total("redeem"),
        "expired": -total("expire"),
        "reversed": sum(abs(e.points) for e in ranged if e.kind == "reverse"),
        "adjusted": total("adjust"),
        "outstanding": outstanding,
        "outstanding_value": f"{Decimal(outstanding) / 100:.2f}",
    }
