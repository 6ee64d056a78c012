"""The daily rollups equal the raw sums: after random activity, folds in between, a fold run twice, late orders."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty.models import Order
from reports.models import DailyOrders, DailyPoints, PublicationFact, RollupWatermark
from reports.rollups import rollups_fold, rollups_recheck
from reports.selectors import Report, ReportFilters, ReportRange
from reports.tasks import fold_rollups, recheck_rollups
from tests.factories import TenantFactory, TierFactory
from tests.reports import scenario
from tests.reports.history import History

FIRST, LAST = dt.date(2026, 3, 1), dt.date(2026, 3, 31)
ZONES = ["Europe/Berlin", "America/New_York", "UTC"]

day = st.integers(min_value=-3, max_value=34)  # a few days either side of March
hour = st.integers(min_value=0, max_value=23)
member = st.integers(min_value=0, max_value=3)
operation = st.one_of(
    st.tuples(st.just("order"), member, st.integers(1, 50_000), day, hour, st.sampled_from(["", "berlin", "paris"])),
    st.tuples(st.just("late_order"), member, st.integers(1, 50_000), day, hour),
    st.tuples(st.just("return"), st.integers(0, 50), st.integers(1, 100)),
    st.tuples(
        st.just("redeem"),
        member,
        st.integers(0, 50),
        st.integers(0, 2_000),
        st.sampled_from(["", "pos"]),
        st.sampled_from(["promotion", "code"]),
        st.sampled_from([0, 0, 300]),
    ),
    st.tuples(st.just("reward"), member, day, hour),
    st.tuples(st.just("publish"), member, day, hour),
    st.tuples(st.just("rollback"), st.integers(0, 50)),
    st.tuples(st.just("entry"), member, st.sampled_from(["earn", "redeem", "adjust", "reverse"]), day, hour),
    st.tuples(st.just("expire"), member, day),
    st.tuples(st.just("campaign_entry"), member, st.integers(-30, 60).filter(bool), day, hour),
    st.tuples(
        st.just("refused"),
        member,
        day,
        hour,
        st.lists(st.sampled_from(["code_expired", "rule_not_met", "usage_limit_reached"]), min_size=1, max_size=3),
        st.sampled_from(["", "pos"]),
    ),
    st.tuples(
        st.just("fold"),
    ),
)


def when(tz, offset: int, at_hour: int) -> dt.datetime:
    return dt.datetime.combine(FIRST + dt.timedelta(days=offset), dt.time(at_hour), tzinfo=tz)


def play(h: History, members, ops):
    """Run the operations; returns the campaign they redeem and refuse."""
    tz = h.tenant.tz
    campaign = h.campaign()
    published = []
    for op in ops:
        kind = op[0]
        if kind == "order":
            _, m, cents, offset, at_hour, location = op
            h.order(members[m], Decimal(cents) / 100, when(tz, offset, at_hour), location=location)
        elif kind == "late_order":  # arrives at the end, about a day long past
            _, m, cents, offset, at_hour = op
            h.order(members[m], Decimal(cents) / 100, when(tz, offset, at_hour), created_at=when(tz, 40, 0))
        elif kind == "return" and h.orders:
            _, index, percent = op
            order = h.orders[index % len(h.orders)]
            amount = ((order.amount - order.returned_amount) * percent / 100).quantize(Decimal("0.01"))
            if amount > 0:
                h.order_return(order, amount, order.occurred_at + dt.timedelta(days=1))
        elif kind == "redeem" and h.orders:
            _, m, index, cents, integration, line_kind, points = op
            order = h.orders[index % len(h.orders)]
            code = None
            if line_kind == "code":  # a published code (redeemed by anyone), or one nobody was given
                code = published[index % len(published)] if published else h.code(campaign, usage_limit=None)
            lines = [(campaign, code, Decimal(cents) / 100, line_kind)] if cents else []
            h.redemption(
                members[m], order.order_id, order.occurred_at, lines=lines, integration=integration, points_used=points
            )
        elif kind == "publish":
            _, m, offset, at_hour = op
            code = h.code(campaign, usage_limit=None)
            h.publication(campaign, code, members[m], when(tz, offset, at_hour))
            published.append(code)
        elif kind == "reward":  # a catalog reward: an engaging act
            _, m, offset, at_hour = op
            h.reward_purchase(members[m], when(tz, offset, at_hour))
        elif kind == "rollback":
            live = [r for r in h.redemptions if r.status == "succeeded"]
            if live:
                h.rollback(live[op[1] % len(live)], live[op[1] % len(live)].created_at + dt.timedelta(hours=2))
        elif kind == "entry":
            _, m, entry_kind, offset, at_hour = op
            points = {"earn": 50, "redeem": -20, "adjust": -3, "reverse": 7}[entry_kind]
            h.entry(members[m], entry_kind, points, when(tz, offset, at_hour))
        elif kind == "expire":
            _, m, offset = op
            h.entry(members[m], "expire", -5, when(tz, offset, 23))
        elif kind == "campaign_entry":  # points naming the campaign (a bonus, or its correction)
            _, m, points, offset, at_hour = op
            h.entry(
                members[m],
                "earn" if points > 0 else "adjust",
                points,
                when(tz, offset, at_hour),
                campaign_id=campaign.pk,
            )
        elif kind == "refused":  # the campaign's code refused for the first reasons, another reason besides
            _, m, offset, at_hour, reasons, integration = op
            lines = [(campaign, r) for r in reasons[:2]]
            h.refused(reasons, when(tz, offset, at_hour), member=members[m], integration=integration, lines=lines)
        elif kind == "fold":
            rollups_fold(settle_seconds=0)
    return campaign


def figures(tenant, **filters):
    rng = ReportRange(tenant, FIRST, LAST)
    served = Report(rng, ReportFilters(**filters)).summary(now=when(tenant.tz, 40, 0))
    raw = Report(rng, ReportFilters(**filters), rollups=False).summary(now=when(tenant.tz, 40, 0))
    return served, raw


@pytest.mark.django_db
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, max_size=40), zone=st.sampled_from(ZONES))
def test_rollups_equal_raw_sums_after_random_activity(ops, zone):
    with transaction.atomic():
        tenant = TenantFactory(time_zone=zone)
        h = History(tenant)
        gold = TierFactory(program=h.program, code="gold")
        members = [h.member() for _ in range(4)]
        for m in members[:2]:  # the tier filter narrows the per-member rollups' rows to these two
            h.member_tier(m, gold)
        campaign = play(h, members, ops)
        # Before the last fold (served from the rollups plus the raw tail) and after it, once and twice.
        for _ in range(3):
            for filters in (
                {},
                {"location": "berlin"},
                {"integration": "pos"},
                {"campaign_id": campaign.pk},
                {"tier_code": "gold"},
            ):
                served, raw = figures(tenant, **filters)
                assert served == raw, filters
                rng = ReportRange(tenant, FIRST, LAST)
                assert (
                    Report(rng, ReportFilters(**filters)).daily()
                    == Report(rng, ReportFilters(**filters), rollups=False).daily()
                )
            rollups_fold(settle_seconds=0)
        assert rollups_recheck(days=4000) == 0
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_a_late_order_lands_in_its_own_day(tenant):
    h = History(tenant)
    m = h.member()
    h.order(m, "10.00", scenario.at(3, 5))
    rollups_fold(settle_seconds=0)
    h.order(m, "7.00", scenario.at(3, 2, 0, 15), created_at=scenario.at(3, 30))  # reported four weeks late
    assert fold_rollups()["folded"]["order"] == 1  # the task, as beat runs it
    rows = {r.day: (r.orders, r.value) for r in DailyOrders.objects.filter(tenant=tenant)}
    assert rows == {dt.date(2026, 3, 5): (1, Decimal("10.00")), dt.date(2026, 3, 2): (1, Decimal("7.00"))}


@pytest.mark.django_db
def test_folding_twice_changes_nothing(tenant):
    h, _ = scenario.build(tenant)
    first = rollups_fold(settle_seconds=0)
    assert first["order"] == len(h.orders) and first["ledger_entry"] == len(h.entries)
    snapshot = sorted(DailyPoints.objects.values_list("tenant_id", "day", "kind", "points"))
    assert rollups_fold(settle_seconds=0) == dict.fromkeys(first, 0)
    assert sorted(DailyPoints.objects.values_list("tenant_id", "day", "kind", "points")) == snapshot


@pytest.mark.django_db
def test_recheck_repairs_and_reports_drift(tenant, caplog):
    h = History(tenant)
    m = h.member()
    h.order(m, "10.00", scenario.at(3, 5))
    rollups_fold(settle_seconds=0)
    # A row that committed after the fold had passed its id: the watermark is above it, the rollup lacks it.
    missed = h.order(m, "4.00", scenario.at(3, 5, 18))
    RollupWatermark.objects.filter(source="order").update(last_id=missed.pk)
    DailyPoints.objects.create(tenant=tenant, day=dt.date(2026, 3, 9), kind="earn", points=99, abs_points=99)
    with caplog.at_level("WARNING", logger="reports"):
        assert rollups_recheck(days=4000) == 2
    assert "rollup drift" in caplog.text
    assert DailyOrders.objects.get(tenant=tenant, day=dt.date(2026, 3, 5)).value == Decimal("14.00")
    assert not DailyPoints.objects.filter(tenant=tenant).exists()
    served, raw = figures(tenant)
    assert served == raw
    assert recheck_rollups(days=4000) == {"drifted": 0}


@pytest.mark.django_db
def test_the_fold_waits_for_young_rows(tenant):
    h = History(tenant)
    m = h.member()
    old = h.order(m, "10.00", scenario.at(3, 5), created_at=dt.datetime(2026, 3, 5, tzinfo=dt.UTC))
    young = Order.objects.create(
        tenant=tenant, member=m, order_id="young", amount=Decimal("1.00"), currency="EUR", occurred_at=old.occurred_at
    )
    assert rollups_fold(settle_seconds=60)["order"] == 1
    assert RollupWatermark.objects.get(source="order").last_id == young.pk - 1
    served, raw = figures(tenant)
    assert served == raw  # the young order is read from the raw tail


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_folds_at_once_fold_every_row_once():
    tenant = TenantFactory()
    h, _ = scenario.build(tenant)
    errors = []

    def fold():
        try:
            rollups_fold(settle_seconds=0)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=fold) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    served, raw = figures(tenant)
    assert served == raw
    assert sum(DailyOrders.objects.filter(tenant=tenant).values_list("orders", flat=True)) == len(h.orders)
    assert rollups_recheck(days=4000) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("fold_between", [False, True])
def test_the_members_figures_follow_engaging_acts_and_their_rollbacks(tenant, fold_between):
    """Code lines, points paid and catalog rewards make a member engaged; a rollback takes its redemption's acts
    back out (folded before or after it); the figures equal the raw ones and the hand-counted ones."""
    h = History(tenant)
    ada, bob, cem = h.member(), h.member(), h.member()
    campaign = h.campaign()
    at = when(tenant.tz, 4, 10)
    for m, amount in ((ada, "30.00"), (ada, "20.00"), (bob, "50.00"), (cem, "5.00")):
        h.order(m, amount, at)
    code_line = [(campaign, h.code(campaign, usage_limit=None), Decimal("3.00"), "code")]
    h.redemption(ada, h.orders[0].order_id, at, lines=code_line)
    paid = h.redemption(bob, h.orders[2].order_id, at, points_used=300)
    h.reward_purchase(cem, at)
    if fold_between:
        rollups_fold(settle_seconds=0)
    h.rollback(paid, at + dt.timedelta(hours=1))
    h.entry(bob, "earn", 10, when(tenant.tz, 20, 9))
    for fold in (False, True):
        if fold:
            rollups_fold(settle_seconds=0)
        served, raw = figures(tenant)
        assert served["members"] == raw["members"]
        assert served["members"] == {
            "with_orders": 3,
            "active_30d": 3,  # the window ends on 31 March: the orders of 5 March and bob's entry of the 21st
            "active_90d": 3,
            "repeat_purchase_rate": "0.3333",
            "engaged": 2,  # ada (her code) and cem (his reward); bob's points payment was rolled back
            "engaged_revenue": "55.00",
            "regular_revenue": "50.00",
        }


@pytest.mark.django_db
def test_publication_facts_follow_redemptions_and_rollbacks_of_their_codes(tenant):
    """Published and redeemed by the end of the range, from the facts: a code redeemed after its publication was
    folded, a redemption rolled back after that, one redeemed after the range, and publications not folded yet."""
    h = History(tenant)
    ada, bob = h.member(), h.member()
    campaign = h.campaign()
    codes = [h.code(campaign, usage_limit=None) for _ in range(4)]
    for code, member in zip(codes, (ada, ada, bob, bob), strict=True):
        h.publication(campaign, code, member, when(tenant.tz, 2, 9))
    rollups_fold(settle_seconds=0)
    h.order(ada, "40.00", when(tenant.tz, 5, 9))
    first = h.redemption(ada, h.orders[0].order_id, when(tenant.tz, 5, 9), lines=[(campaign, codes[0], "4.00", "code")])
    second = h.redemption(bob, "o-x", when(tenant.tz, 6, 9), lines=[(campaign, codes[2], "4.00", "code")])
    h.redemption(bob, "o-late", when(tenant.tz, 31, 9), lines=[(campaign, codes[3], "4.00", "code")])  # in April
    expected = {"published": 4, "redeemed": 2, "engaged_published": 4, "engaged_redeemed": 2}

    def counts():
        served, raw = figures(tenant)
        assert served["campaigns"] == raw["campaigns"]
        return {k: served["campaigns"][k] for k in expected}

    assert counts() == expected  # the lines above the watermark: their codes from raw rows
    rollups_fold(settle_seconds=0)
    assert counts() == expected
    assert PublicationFact.objects.filter(redeemed_day__isnull=False).count() == 3
    h.rollback(second, when(tenant.tz, 7, 9))
    expected.update(redeemed=1, engaged_published=2, engaged_redeemed=1)  # bob is no longer engaged in March
    assert counts() == expected
    rollups_fold(settle_seconds=0)
    assert counts() == expected
    h.publication(campaign, h.code(campaign), bob, when(tenant.tz, 8, 9))  # not folded yet
    expected["published"] = 5
    assert counts() == expected
    assert first.status == "succeeded"
    rollups_fold(settle_seconds=0)
    assert counts() == expected
    assert rollups_recheck(days=4000) == 0
