"""The demo's past: 18 months of a shop's life replayed through the services, in time order.

A plan (a sorted list of dated steps) is drawn from a seeded generator, so the same members, orders, codes
and dates come out every time; then each step runs with the clock set to its date. The services take "now"
from `timezone.now()` (ledger entries, redemptions, returns, traces, tier moves are stamped with it), so the
clock is moved with time-machine rather than by writing dates into rows: every row is written by the same
service the API uses, and the ledger, the counters and the rollups stay what they would be in production.

Idempotent: the past ends where the first load found the clock (the demo tenant's creation), so every load
plans the same steps. An order step is skipped when its order id exists, a member step when the member does,
and every other step dated up to the latest row the history wrote (order, entry, redemption, rollback, trace,
event, publication, tier move, segment) is skipped too. A run that crashed resumes from there; a step dated
before that row that wrote nothing (a purchase the balance did not allow) is not retried, which is harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.db.models import Max, Q

from campaigns.models import Campaign, CampaignType, Code, Publication
from campaigns.services import apology_code_give, publication_create
from common.errors import ApplicationError
from loyalty.ledger.jobs import points_expire_due
from loyalty.ledger.selectors import member_account
from loyalty.models import LedgerEntry, Order, OrderReturn, Program, TierChange
from loyalty.services.earning import custom_event_record
from loyalty.services.returns import order_return
from loyalty.services.tiers import tiers_reevaluate
from members.models import CustomEvent, Member, Segment, Tenant
from members.services import member_upsert, segment_declare, segment_upload_static
from rewards.models import EvaluationTrace, Redemption, RedemptionCode, RedemptionRollback, Reward
from rewards.services.catalog import reward_purchase
from rewards.services.checkout import order_checkout
from rewards.services.redemption import redeem
from rewards.services.redemption.rollback import redemption_rollback

logger = logging.getLogger("config.demo")

FIRST_NAMES = ["Ada", "Ben", "Chloe", "Dev", "Elif", "Finn", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca"]
LAST_NAMES = ["Lovelace", "Novak", "Schmidt", "Rossi", "Dubois", "Kowalski", "Okafor", "Larsen", "Garcia", "Yilmaz"]
COUNTRIES = ["DE", "DE", "DE", "AT", "GB", "FR", "NL"]
CITIES = ["Berlin", "Hamburg", "Munich", "Vienna", "London", "Paris", "Utrecht"]
CATALOG = [
    ("Apparel", "TSHIRT", Decimal("25.00")),
    ("Apparel", "HOODIE", Decimal("59.00")),
    ("Shoes", "SNEAKER", Decimal("89.00")),
    ("Accessories", "CAP", Decimal("19.00")),
    ("Accessories", "SOCKS", Decimal("9.00")),
]
LOCATIONS = ["web", "web", "berlin-01", "hamburg-02"]
# How busy each month is compared with an ordinary one: the December peak, the summer dip.
SEASON = {1: 0.8, 2: 0.75, 3: 0.9, 4: 1.0, 5: 1.0, 6: 0.85, 7: 0.6, 8: 0.6, 9: 1.0, 10: 1.1, 11: 1.4, 12: 2.2}
# Personas: share of members, mean days between orders, basket size (items, max quantity), months they stay.
PERSONAS = {
    "loyal": (0.22, 16, (2, 3), None),
    "big_spender": (0.05, 12, (3, 3), None),
    "lapsed": (0.13, 18, (2, 2), 8),
    "regular": (0.3, 70, (2, 2), None),
    "one_off": (0.3, None, (1, 2), None),
}
RETURN_SHARE = 0.06
ROLLBACK_SHARE = 0.1
ROLLBACK_REASONS = ["order cancelled at the till", "payment failed after redemption", "duplicate order"]
APOLOGY_REASONS = ["parcel arrived late", "wrong size shipped", "long wait at the hotline"]


@dataclass(order=True)
class Step:
    at: dt.datetime
    seq: int
    kind: str = field(compare=False)
    data: dict = field(compare=False, default_factory=dict)


@dataclass
class DemoMember:
    n: int
    external_id: str
    fields: dict
    persona: str
    joined: dt.datetime


@dataclass
class Window:
    """The history's dates, all derived from one `end` (the real now at the first load, rounded)."""

    end: dt.datetime
    months: int

    @property
    def start(self) -> dt.datetime:
        return self.end - dt.timedelta(days=round(self.months * 30.44))

    def local(self, day: dt.date, hour: int = 9, tz: str = "Europe/Berlin") -> dt.datetime:
        return dt.datetime.combine(day, dt.time(hour), tzinfo=ZoneInfo(tz)).astimezone(dt.UTC)

    def last_winter(self) -> tuple[dt.datetime, dt.datetime]:
        """The last full November 20 to December 31 sale window inside the history."""
        year = self.end.year - 1 if self.end.month < 12 or self.end.day < 31 else self.end.year
        return self.local(dt.date(year, 11, 20), 0), self.local(dt.date(year, 12, 31), 23)

    def last_summer(self) -> tuple[dt.datetime, dt.datetime]:
        """The last July 1 to August 31 inside the history (code expiry: August 31)."""
        year = self.end.year if self.end.month >= 9 else self.end.year - 1
        return self.local(dt.date(year, 7, 1), 0), self.local(dt.date(year, 8, 31), 23)


def history_campaigns(w: Window) -> list[dict]:
    """The campaigns that ran in the past (created at the history's start, so they can be redeemed then)."""
    winter_from, winter_to = w.last_winter()
    summer_from, summer_to = w.last_summer()
    return [
        {
            "name": "Winter sale 20",
            "type": "discount",
            "discount": {"type": "percent", "value": "20", "max_amount": "40.00"},
            "starts_at": winter_from.isoformat(),
            "ends_at": winter_to.isoformat(),
            "rule": "order.amount >= 60",
            "limits": {"redemptions_per_member": 1, "discount_total": "20000.00"},
            "stacking": {"category": "seasonal", "combinable_with": ["gift_card", "loyalty"]},
            "codes": {"code": "WINTER20"},
        },
        {
            "name": "Summer 10",
            "type": "discount",
            "discount": {"type": "amount", "value": "10.00"},
            "starts_at": summer_from.isoformat(),
            "ends_at": (w.end + dt.timedelta(days=60)).isoformat(),
            "rule": "order.amount >= 35",
            "limits": {"redemptions_per_member": 1},
            "stacking": {"category": "seasonal", "combinable_with": ["gift_card", "loyalty"]},
            "codes": {"count": 150, "pattern": "SUM-####-??", "expires_at": summer_to.isoformat()},
        },
        {
            "name": "Apology 10 EUR",
            "type": "discount",
            "discount": {"type": "amount", "value": "10.00"},
            "starts_at": w.start.isoformat(),
            "ends_at": (w.end + dt.timedelta(days=365)).isoformat(),
            "limits": {"redemptions_per_member": 3},
            "stacking": {"category": "apology", "combinable_with": ["seasonal", "gift_card", "loyalty"]},
            "codes": {"count": 60, "pattern": "SORRY-????-??"},
        },
    ]


def _season(at: dt.datetime) -> float:
    return SEASON[at.month]


def _basket(rng: random.Random, size: tuple[int, int]) -> list[dict]:
    items = []
    for category, sku, price in rng.sample(CATALOG, rng.randint(1, size[0])):
        items.append({"sku": sku, "category": category, "quantity": rng.randint(1, size[1]), "unit_price": str(price)})
    return items


def _amount(items: list[dict]) -> Decimal:
    return sum((Decimal(i["unit_price"]) * i["quantity"] for i in items), Decimal("0.00"))


def plan_members(rng: random.Random, count: int, w: Window) -> list[DemoMember]:
    """Who joins when, as whom: earlier members joined earlier (a referrer always joined before)."""
    span = (w.end - w.start).total_seconds()
    joins = sorted(rng.random() ** 1.3 * 0.9 for _ in range(count))  # more members early, none in the last weeks
    names, weights = zip(*((name, p[0]) for name, p in PERSONAS.items()), strict=True)
    members = []
    for n in range(1, count + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        fields = {
            "email": f"{first.lower()}.{last.lower()}.{n}@demo.example",
            "name": f"{first} {last}",
            "country": rng.choice(COUNTRIES),
            "city": rng.choice(CITIES),
            "marketing_consent": rng.random() < 0.6,
            "attributes": {"vip": rng.random() < 0.05},
        }
        if n > 10 and rng.random() < 0.1:
            fields["referred_by"] = f"demo-{rng.randint(1, n - 1):04d}"
        persona = rng.choices(names, weights)[0]
        joined = w.start + dt.timedelta(seconds=span * joins[n - 1], minutes=rng.randint(0, 600))
        members.append(DemoMember(n, f"demo-{n:04d}", fields, persona, joined))
    return members


def _order_times(rng: random.Random, member: DemoMember, w: Window) -> list[dt.datetime]:
    _share, mean_days, _size, stays_months = PERSONAS[member.persona]
    first = member.joined + dt.timedelta(hours=rng.randint(1, 72))
    if mean_days is None:  # one-off: one order, now and then a second one much later
        times = [first]
        if rng.random() < 0.2:
            times.append(first + dt.timedelta(days=rng.randint(60, 300)))
        return [t for t in times if t < w.end]
    stop = w.end if stays_months is None else min(w.end, first + dt.timedelta(days=30 * stays_months))
    times, at = [], first
    while at < stop:
        times.append(at)
        # Busy months bring the next order sooner (the rate scales with the season).
        at = at + dt.timedelta(days=rng.expovariate(1 / mean_days) / _season(at) + 0.5)
        at = at.replace(hour=rng.choice([8, 10, 11, 12, 13, 15, 16, 17, 18, 19, 20]), minute=rng.randint(0, 59))
    return times


def plan_history(rng: random.Random, members: list[DemoMember], w: Window) -> list[Step]:
    """Every dated step of the demo's past, sorted by time."""
    steps: list[Step] = []

    joined = {m.external_id: m.joined for m in members}

    def add(at: dt.datetime, kind: str, **data) -> None:
        if "member" in data and isinstance(data["member"], str):  # nobody acts before joining
            at = max(at, joined[data["member"]] + dt.timedelta(hours=1))
        if at < w.end:
            steps.append(Step(at, len(steps), kind, data))

    start = w.start
    add(start, "campaigns")
    winter_from, winter_to = w.last_winter()
    summer_from, summer_to = w.last_summer()
    spring_from = w.end - dt.timedelta(days=30)
    gift_card_holders = set(rng.sample([m.n for m in members], k=max(1, len(members) // 15)))
    summer_holders: list[DemoMember] = []
    for m in members:
        add(m.joined, "member", member=m)
        if rng.random() < 0.4:
            add(
                m.joined + dt.timedelta(days=rng.randint(0, 20), hours=2),
                "event",
                member=m.external_id,
                event="newsletter_subscribed",
                metadata={"source": rng.choice(["web", "shop"])},
            )
        if rng.random() < 0.25:
            at = m.joined + dt.timedelta(days=rng.randint(1, 30))
            while at < w.end:
                add(
                    at,
                    "event",
                    member=m.external_id,
                    event="social_liked",
                    metadata={"post": f"p{rng.randint(100, 999)}"},
                )
                at += dt.timedelta(days=rng.randint(5, 60))
        times = _order_times(rng, m, w)
        if m.joined < summer_from and len(times) > 2 and rng.random() < 0.5:
            summer_holders.append(m)
        size = PERSONAS[m.persona][2]
        used: set[str] = set()
        gift_uses = 0
        if m.n in gift_card_holders:
            add(m.joined + dt.timedelta(hours=1), "gift_card", member=m.external_id)
        for k, at in enumerate(times, start=1):
            items = _basket(rng, size)
            if at.month == 12:  # presents: one more item in December
                items += _basket(rng, (1, 1))
            amount = _amount(items)
            codes: list = []
            order_id = f"{m.external_id}-o{k}"
            if k > 1:  # a referred member's first order is plain: it rewards the referrer
                if winter_from <= at <= winter_to and "winter" not in used and amount >= 60 and rng.random() < 0.5:
                    codes.append("WINTER20")
                    used.add("winter")
                elif k == 2 and amount >= 40 and rng.random() < 0.6:
                    codes.append("WELCOME10")
                    used.add("welcome")
                elif summer_from <= at <= summer_to and m in summer_holders and "summer" not in used:
                    codes.append({"use": "Summer 10"})
                    used.add("summer")
                elif spring_from <= at and m.n <= 20 and "spring" not in used and amount >= 50:
                    codes.append({"use": "Spring 15"})
                    used.add("spring")
                if m.n in gift_card_holders and gift_uses < 2 and rng.random() < 0.5:
                    codes.append({"use": "Gift card 50", "amount": str(min(amount, Decimal(rng.choice([15, 20, 25]))))})
                    gift_uses += 1
                if rng.random() < 0.5:
                    codes.append({"use": "Club reward 5 EUR", "optional": True})
                    codes.append({"use": "Apology 10 EUR", "optional": True})
            add(
                at,
                "order",
                member=m.external_id,
                order_id=order_id,
                items=items,
                location=rng.choice(LOCATIONS),
                codes=codes,
            )
            if codes and rng.random() < ROLLBACK_SHARE:
                add(
                    at + dt.timedelta(hours=rng.randint(1, 48)),
                    "rollback",
                    order_id=order_id,
                    reason=rng.choice(ROLLBACK_REASONS),
                )
            if rng.random() < RETURN_SHARE:
                part = Decimal(rng.choice([25, 50, 100])) / 100
                add(
                    at + dt.timedelta(days=rng.randint(3, 25)),
                    "return",
                    order_id=order_id,
                    amount=str((amount * part).quantize(Decimal("0.01"))),
                )
            if m.persona in ("loyal", "big_spender") and k % 9 == 0:
                add(
                    at + dt.timedelta(days=1),
                    "purchase",
                    member=m.external_id,
                    reward=rng.choice(["5 EUR voucher", "5 EUR voucher", "Club tote bag"]),
                )
        # Failed attempts, each with a reason the engine surely gives at that time.
        if winter_to < w.end and rng.random() < 0.05:  # the sale is over
            add(
                winter_to + dt.timedelta(days=rng.randint(2, 20)),
                "attempt",
                member=m.external_id,
                codes=["WINTER20"],
                amount="80.00",
            )
        if winter_from < w.end and rng.random() < 0.05 and m.joined < winter_from:  # under the minimum
            add(
                winter_from + dt.timedelta(days=rng.randint(1, 30)),
                "attempt",
                member=m.external_id,
                codes=["WINTER20"],
                amount="35.00",
            )
        if rng.random() < 0.04 and m.joined < w.end - dt.timedelta(days=20):  # a mistyped code
            add(
                w.end - dt.timedelta(days=rng.randint(1, 80)),
                "attempt",
                member=m.external_id,
                codes=[rng.choice(["WINTR20", "WELCOME01", "SPRING15"])],
                amount="45.00",
            )
        if "welcome" in used and rng.random() < 0.3:  # once per member
            add(times[-1] + dt.timedelta(days=2), "attempt", member=m.external_id, codes=["WELCOME10"], amount="60.00")
    for m in summer_holders:
        add(summer_from + dt.timedelta(hours=rng.randint(1, 48)), "publish", member=m.external_id, campaign="Summer 10")
        if rng.random() < 0.3:  # found the code again in the autumn: expired on August 31
            add(
                summer_to + dt.timedelta(days=rng.randint(5, 70)),
                "attempt",
                member=m.external_id,
                codes=[{"use": "Summer 10"}],
                amount="50.00",
            )
    for m in members[:20]:
        add(spring_from + dt.timedelta(hours=1), "publish", member=m.external_id, campaign="Spring 15")
    no_emails = [m for m in members if not m.fields["marketing_consent"]]  # the demo sends no emails
    for m in rng.sample(no_emails, k=min(len(no_emails), max(1, len(members) // 15))):
        at = max(m.joined, start) + dt.timedelta(days=rng.randint(5, 200))
        if at < w.end:
            add(at, "apology", member=m.external_id, reason=rng.choice(APOLOGY_REASONS))
    # The scheduled jobs: expiry on the first of each month, tier evaluation each quarter.
    month = dt.date(start.year, start.month, 1)
    while True:
        month = (month + dt.timedelta(days=32)).replace(day=1)
        at = w.local(month, 1)
        if at >= w.end:
            break
        add(at, "expire")
        if month.month in (1, 4, 7, 10):
            add(at + dt.timedelta(minutes=30), "tiers")
    add(w.end - dt.timedelta(minutes=5), "segments")
    return sorted(steps)


RERUN_SAFE = ("order", "member", "campaigns")  # each checks for itself whether it was done


class Replay:
    """Runs the plan's steps against the database, each with the clock at its date."""

    def __init__(self, tenant: Tenant, w: Window, on_campaigns: Callable[[], None]):
        self.tenant = tenant
        self.w = w
        self.on_campaigns = on_campaigns
        self.members: dict[str, Member] = {}
        self.campaigns: dict[str, Campaign] = {}
        self.counts: dict[str, int] = defaultdict(int)

    def run(self, steps: list[Step]) -> dict[str, int]:
        import time_machine  # a dev dependency that `make demo` installs: the history moves the clock

        ids = [s.data["order_id"] for s in steps if s.kind == "order"]
        done = set(Order.objects.for_tenant(self.tenant).filter(order_id__in=ids).values_list("order_id", flat=True))
        resume_after = self._last_written()
        self.members = {m.external_id: m for m in Member.objects.for_tenant(self.tenant)}
        for step in steps:
            if step.kind == "order" and step.data["order_id"] in done:
                continue
            if step.kind == "member" and step.data["member"].external_id in self.members:
                continue
            if resume_after is not None and step.at <= resume_after and step.kind not in RERUN_SAFE:
                continue
            with time_machine.travel(step.at, tick=False):
                getattr(self, f"_{step.kind}")(**step.data)
            self.counts[step.kind] += 1
        return dict(self.counts)

    def _last_written(self) -> dt.datetime | None:
        """The latest time of anything a step writes: the steps up to it were replayed already."""
        t = self.tenant
        stamps = [
            (Order, "occurred_at"),
            (CustomEvent, "occurred_at"),
            (Publication, "published_at"),
            *((m, "created_at") for m in (LedgerEntry, OrderReturn, Redemption, RedemptionRollback, EvaluationTrace)),
            *((m, "created_at") for m in (TierChange, Segment)),
        ]
        times = [m.objects.filter(tenant_id=t.pk).aggregate(at=Max(f))["at"] for m, f in stamps]
        return max((at for at in times if at is not None), default=None)

    def _campaign(self, name: str) -> Campaign:
        if name not in self.campaigns:
            self.campaigns[name] = Campaign.objects.for_tenant(self.tenant).get(name=name)
        return self.campaigns[name]

    def _campaigns(self) -> None:
        self.on_campaigns()

    def _member(self, member: DemoMember) -> None:
        row, _ = member_upsert(tenant=self.tenant, external_id=member.external_id, **member.fields)
        self.members[row.external_id] = row

    def _event(self, member: str, event: str, metadata: dict) -> None:
        custom_event_record(tenant=self.tenant, member=self.members[member], event=event, metadata=metadata)

    def _held_code(self, campaign: str, member: Member) -> str | None:
        """The member's code of the campaign not used yet (a gift card: with a balance left), expired or not."""
        row = self._campaign(campaign)
        unused = Q(balance__gt=0) if row.type == CampaignType.GIFT_CARD else Q(redeemed_count=0)
        codes = Code.objects.filter(unused, campaign=row, member=member).order_by("pk")
        return codes.values_list("code", flat=True).first()

    def _codes(self, wanted: list, member: Member) -> list:
        out = []
        for entry in wanted:
            if isinstance(entry, str):
                out.append(entry)
                continue
            text = self._held_code(entry["use"], member)
            if text is None:
                continue
            out.append({"code": text, "amount": entry["amount"]} if "amount" in entry else text)
        return out

    def _order(self, member: str, order_id: str, items: list, location: str, codes: list) -> None:
        row = self.members[member]
        arguments = dict(
            tenant=self.tenant,
            member=row,
            order_id=order_id,
            amount=_amount(items),
            currency=self.tenant.currency,
            items=items,
            location=location,
        )
        texts = self._codes(codes, row)
        # A combination the plan could not foresee may be refused (stacking, a limit): then the first code
        # alone, then no code, as a shopper at the till would.
        for attempt in ([texts, texts[:1]] if len(texts) > 1 else [texts]) if texts else []:
            try:
                order_checkout(**arguments, codes=attempt)
                self.counts["orders_with_codes"] += 1
                return
            except ApplicationError as exc:
                if exc.code != "redemption_failed":
                    raise
        order_checkout(**arguments)

    def _rollback(self, order_id: str, reason: str) -> None:
        redemption = Redemption.objects.filter(
            tenant_id=self.tenant.pk, order_id=order_id, status=Redemption.Status.SUCCEEDED
        ).first()
        if redemption is not None:
            redemption_rollback(redemption=redemption, reason=reason)

    def _return(self, order_id: str, amount: str) -> None:
        if not OrderReturn.objects.filter(order__tenant=self.tenant, order__order_id=order_id).exists():
            order_return(tenant=self.tenant, order_id=order_id, amount=amount, return_id=f"{order_id}-r1")

    def _purchase(self, member: str, reward: str) -> None:
        row = self.members[member]
        reward_row = Reward.objects.for_tenant(self.tenant).get(name=reward)
        account = member_account(row)
        if account is None or account.balance < reward_row.points_cost:
            return
        try:
            reward_purchase(tenant=self.tenant, member=row, reward=reward_row)
        except ApplicationError as exc:  # out of stock, say: the member goes without
            logger.info("demo purchase refused: %s", exc.code)

    def _attempt(self, member: str, codes: list, amount: str) -> None:
        row = self.members[member]
        texts = self._codes(codes, row)
        if not texts:
            return
        if (
            texts == ["WELCOME10"]
            and not RedemptionCode.objects.filter(
                redemption__member=row,
                redemption__status=Redemption.Status.SUCCEEDED,
                campaign=self._campaign("Welcome 10"),
            ).exists()
        ):
            return  # only a member who used it already is surely refused
        self.counts["attempt_tries"] += 1
        try:
            redemption = redeem(
                tenant=self.tenant,
                member=row,
                order_id=f"{member}-try-{self.counts['attempt_tries']}",
                order={"amount": amount, "location": "web"},
                codes=texts,
            )
        except ApplicationError:
            return
        redemption_rollback(redemption=redemption, reason="demo: an attempt that was meant to fail")

    def _publish(self, member: str, campaign: str, channel: str = "email") -> None:
        try:
            publication_create(
                tenant=self.tenant, campaign=self._campaign(campaign), member=self.members[member], channel=channel
            )
        except ApplicationError as exc:  # no code left
            logger.info("demo publication refused: %s", exc.code)

    def _gift_card(self, member: str) -> None:
        self._publish(member, "Gift card 50", channel="api")

    def _apology(self, member: str, reason: str) -> None:
        row = self.members[member]
        row.refresh_from_db()
        if row.email_consent:  # the demo sends no emails while it loads
            return
        support = get_user_model().objects.get(username="support")
        try:
            apology_code_give(campaign=self._campaign("Apology 10 EUR"), member=row, staff_user=support, reason=reason)
        except ApplicationError as exc:  # over the agent's daily allowance
            logger.info("demo apology refused: %s", exc.code)

    def _expire(self) -> None:
        points_expire_due()

    def _tiers(self) -> None:
        for program in Program.objects.filter(tenant=self.tenant):
            tiers_reevaluate(program=program)

    def _segments(self) -> None:
        if Segment.objects.filter(tenant=self.tenant).exists():
            return
        segment_declare(
            tenant=self.tenant,
            code="big-spenders",
            name="Big spenders (500 EUR in 90 days)",
            criteria={"min_spend": "500", "spend_days": 90},
        )
        segment_declare(
            tenant=self.tenant,
            code="newsletter-readers",
            name="Newsletter readers",
            criteria={"event": {"name": "newsletter_subscribed", "days": 365}},
        )
        segment_declare(
            tenant=self.tenant,
            code="berlin-optin",
            name="Berlin, marketing opt-in",
            criteria={"city": ["Berlin"], "marketing_consent": True},
        )
        vip = segment_declare(tenant=self.tenant, code="vip-list", name="VIP list (uploaded)", kind="static")
        segment_upload_static(
            segment=vip,
            external_ids=[ext for ext, m in sorted(self.members.items()) if (m.attributes or {}).get("vip")],
        )
