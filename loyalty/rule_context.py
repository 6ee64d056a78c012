"""The one context of the rule language (`loyalty.rules.SCHEMA`), for earning rules and campaign rules alike.

Earning rules (`loyalty.services.earning`, orders and custom events) and campaign validation rules (the
redemption engine of `rewards`, and the console's "Test rule" page) all read the document `build_rule_context`
makes, so one rule text means one thing wherever it is written.

Conventions (what a marketer writing `member.orders_count == 3` or `now.hour >= 18` expects):

- Time: every datetime is aware and in the tenant's time zone: `now.hour` is the shop's hour, `now.day` the
  shop's day, and so are the parts of `created_at`, `birth_date` and the events' `occurred_at`. Datetime
  literals written without an offset (`d"2026-11-27"`) are read in the same zone (`loyalty.rules.rule_matches`).
- Numbers are exact: a count, a rank, points or an age is an `int`, an amount of money is a `Decimal` with
  two places; never a float. `rule-engine` holds every number as a Decimal, so `3`, `3.0` and `3.00` as
  literals all compare equal to them, `0.1 + 0.2 == 0.3` holds, and `member.orders_count.to_str` is `'3'`.
- Missing is null: an empty text (no country, no phone, an item without a category), an unknown birth date,
  no tier, no member (a validation without one), no order (an event rule) or no event (an order rule) is
  `null`, so `member.country == null` and `not member.country` both say "no country", and comparing a
  null with `==` is simply false (a rule that reads through a null does not hold, it never fails the call).
- History: `events` and `redemptions` are the member's last 400 days, newest first, at most 500 rows each.

Every name (`SCHEMA` in `loyalty.rules` lists the same ones), its type in the context, its meaning:

    member                  mapping | null  the member; null when a campaign validation names none
      .external_id          string          the member's id in the tenant's systems
      .email .name .phone   string | null   as stored; null when empty
      .country .city        string | null   as stored (country: ISO 3166 alpha-2); null when empty
      .referral_code        string | null   the member's own referral code
      .birth_date           datetime | null midnight of the birth day, tenant zone
      .age                  int | null      whole years on the tenant's current date
      .attributes           mapping         free-form (`member.attributes['vip']`); {} when none
      .marketing_consent    boolean
      .tier                 mapping | null  {code, name, rank}: the member's current tier in the tenant's default
                                            program (the one earning and points payments use); rank is an int,
                                            higher is better; null without a tier
      .points_balance       int             spendable points in the default program, before this order's points;
                                            0 without an account
      .segments             array of string codes of every segment the member is in: static lists and dynamic
                                            criteria alike (`members.selectors.member_segments`)
      .lifetime_spend       Decimal         net spend (amount minus returns) of the member's recorded orders; the
                                            order being evaluated is not recorded yet, so it is not counted
      .spend_30d .spend_90d .spend_365d
                            Decimal         the same, of the orders placed in the last 30, 90, 365 days
      .orders_count         int             the member's recorded orders (returned ones too), not this one
      .created_at           datetime        when the member joined, tenant zone
    order                   mapping | null  the order; null for event rules
      .order_id             string | null   null when a validation gives none
      .amount               Decimal         earning: what was paid, after discounts; campaigns: the order's amount
                                            before discounts (the items' sum when the request gives only items)
      .currency .location .channel
                            string | null   as given; null when not given
      .items                array           of {sku, category: string | null; quantity: int; unit_price: Decimal}
      .quantity             int             the items' quantities summed
    event                   mapping | null  the custom event being recorded: {name: string, metadata: mapping,
                                            occurred_at: datetime}; null for order rules and campaign rules
    events                  array           the member's custom events {name, metadata, occurred_at} (history
                                            window above); for an event rule, the event being recorded among them
    redemptions             array           the member's redemptions not rolled back (history window above):
                                            {campaign: the id as text, campaign_id: int, campaign_name,
                                            campaign_type, code: string | null, discount: Decimal, created_at};
                                            filled by the redemption engine (`rewards` passes a loader in, loyalty
                                            cannot read them); always empty for earning rules
    now                     datetime        the time of the evaluation, tenant zone

What it costs: the member row, the order, the event, the tier and balance on the earning path (read under the
account lock) and `now` are given by the caller: no query. Each of these facts costs queries only when a rule
names one of its names, whatever the number of rules:

    spend        lifetime_spend, spend_30d, spend_90d, spend_365d, orders_count   1 aggregate query
    standing     tier, points_balance (campaign rules; earning passes them in)    1 query
    segments     segments                                                          1, or 2 with dynamic segments
    events       events                                                            1 query
    redemptions  redemptions                                                       1 query (the caller's loader)

A fact is named when one of its names appears as a word anywhere in the rules' text (`facts_named`; inside a
string literal too, which only costs a query). A fact no rule names cannot change a verdict, so it is not read
and stands as null in the context. Without rule texts (the console's "Test rule" page, which shows the whole
context) every fact is read.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from loyalty.models import Account, MemberTier, Order, Program, Tier
from members.models import CustomEvent, Member
from members.selectors import member_segments

HISTORY_DAYS = 400  # `events` and `redemptions` cover the member's last 400 days...
HISTORY_MAX = 500  # ...newest first, at most this many rows each
SPEND_NAMES = ("lifetime_spend", "spend_30d", "spend_90d", "spend_365d", "orders_count")
_ZERO = Value(Decimal("0.00"), output_field=DecimalField(max_digits=14, decimal_places=2))

# The facts that cost a query, and the names that make a rule need them.
_FACT_NAMES = {
    "spend": SPEND_NAMES,
    "standing": ("tier", "points_balance"),
    "segments": ("segments",),
    "events": ("events",),
    "redemptions": ("redemptions",),
}
FACTS = frozenset(_FACT_NAMES)
_NAMED = {fact: re.compile(r"\b(?:" + "|".join(names) + r")\b") for fact, names in _FACT_NAMES.items()}


def facts_named(rules: Iterable[str | None] | None) -> frozenset[str]:
    """The facts (`FACTS`) the rule texts read, so that only those are queried; None means all of them."""
    if rules is None:
        return FACTS
    text = "\n".join(r for r in rules if r)
    return frozenset(fact for fact, pattern in _NAMED.items() if pattern.search(text))


@dataclass(frozen=True)
class Standing:
    """The member's tier (`{code, name, rank}` or None) and points balance in the default program."""

    tier: dict[str, Any] | None
    points_balance: int

    @classmethod
    def of(cls, tier: Tier | None, points_balance: int) -> Standing:
        """From what the earning path holds under the account lock (no query)."""
        document = {"code": tier.code, "name": tier.name, "rank": int(tier.rank)} if tier else None
        return cls(tier=document, points_balance=int(points_balance))


def member_standing(member: Member) -> Standing:
    """Tier and balance in the tenant's default program (its active program with the lowest id): one query."""
    in_program = {"program": OuterRef("pk"), "member": member}
    tier = MemberTier.objects.filter(**in_program, tier__isnull=False)
    row = (
        Program.objects.for_tenant(member.tenant_id)
        .filter(active=True)
        .order_by("pk")
        .annotate(
            member_balance=Subquery(Account.objects.filter(**in_program).values("balance")[:1]),
            tier_code=Subquery(tier.values("tier__code")[:1]),
            tier_name=Subquery(tier.values("tier__name")[:1]),
            tier_rank=Subquery(tier.values("tier__rank")[:1]),
        )
        .values("member_balance", "tier_code", "tier_name", "tier_rank")
        .first()
    )
    if row is None:
        return Standing(tier=None, points_balance=0)
    document = None
    if row["tier_code"] is not None:
        document = {"code": row["tier_code"], "name": row["tier_name"], "rank": int(row["tier_rank"])}
    return Standing(tier=document, points_balance=int(row["member_balance"] or 0))


def spend_summary(member: Member, now: dt.datetime) -> dict[str, Any]:
    """Lifetime and 30/90/365-day net spend (Decimal) and order count (int): one aggregate query."""
    net = F("amount") - F("returned_amount")

    def window(days: int):
        return Coalesce(Sum(net, filter=Q(occurred_at__gte=now - dt.timedelta(days=days))), _ZERO)

    return Order.objects.filter(tenant_id=member.tenant_id, member=member).aggregate(
        lifetime_spend=Coalesce(Sum(net), _ZERO),
        spend_30d=window(30),
        spend_90d=window(90),
        spend_365d=window(365),
        orders_count=Count("pk"),
    )


def recent_events(member: Member, now: dt.datetime) -> list[dict[str, Any]]:
    """The member's custom events of the last `HISTORY_DAYS`, newest first, at most `HISTORY_MAX`: one query."""
    rows = CustomEvent.objects.filter(
        tenant_id=member.tenant_id, member=member, occurred_at__gte=now - dt.timedelta(days=HISTORY_DAYS)
    ).order_by("-occurred_at", "-pk")
    return list(rows.values("name", "metadata", "occurred_at")[:HISTORY_MAX])


def _text(value: Any) -> str | None:
    """A text, or None when it is missing or empty (the context's one way to say "not known")."""
    return str(value) if value not in (None, "") else None


def _local(value: Any, tz: dt.tzinfo) -> Any:
    return value.astimezone(tz) if isinstance(value, dt.datetime) else value


def _age(birth: dt.date | None, today: dt.date) -> int | None:
    if not birth:
        return None
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def member_context(
    member: Member,
    *,
    now: dt.datetime,
    spend: Mapping[str, Any] | None = None,
    standing: Standing | None = None,
    segments: list[str] | None = None,
) -> dict[str, Any]:
    """The `member` object (`now` in the tenant's zone); facts not given (not read) are None."""
    tz = now.tzinfo
    birth = member.birth_date
    return {
        "external_id": member.external_id,
        "email": _text(member.email),
        "name": _text(member.name),
        "phone": _text(member.phone),
        "country": _text(member.country),
        "city": _text(member.city),
        "birth_date": dt.datetime(birth.year, birth.month, birth.day, tzinfo=tz) if birth else None,
        "age": _age(birth, now.date()),
        "attributes": member.attributes or {},
        "marketing_consent": member.marketing_consent,
        "tier": standing.tier if standing else None,
        "segments": segments,
        "lifetime_spend": spend["lifetime_spend"] if spend else None,
        "spend_30d": spend["spend_30d"] if spend else None,
        "spend_90d": spend["spend_90d"] if spend else None,
        "spend_365d": spend["spend_365d"] if spend else None,
        "orders_count": int(spend["orders_count"]) if spend else None,
        "points_balance": standing.points_balance if standing else None,
        "created_at": _local(member.created_at, tz),
        "referral_code": _text(member.referral_code),
    }


def order_context(
    *,
    order_id: str | None = None,
    amount: Decimal | str | None = None,
    currency: str | None = None,
    location: str | None = None,
    channel: str | None = None,
    items: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The `order` object, from a checked order (`order_clean`'s, or the redemption engine's `parse_request`).

    Without an amount (a validation may give only items), the amount is the items' sum, as the engine prices it.
    """
    lines = [
        {
            "sku": _text(i.get("sku")),
            "category": _text(i.get("category")),
            "quantity": int(i.get("quantity", 1)),
            "unit_price": Decimal(str(i.get("unit_price", "0"))),
        }
        for i in items
    ]
    total = (
        Decimal(str(amount))
        if amount is not None
        else sum((i["unit_price"] * i["quantity"] for i in lines), Decimal("0.00"))
    )
    return {
        "order_id": _text(order_id),
        "amount": total,
        "currency": _text(currency),
        "location": _text(location),
        "channel": _text(channel),
        "items": lines,
        "quantity": sum(i["quantity"] for i in lines),
    }


def build_rule_context(
    *,
    member: Member | None,
    tz: dt.tzinfo,
    now: dt.datetime,
    rules: Iterable[str | None] | None = None,
    order: dict[str, Any] | None = None,
    event: Mapping[str, Any] | None = None,
    standing: Standing | None = None,
    redemptions: Callable[[], list[dict[str, Any]]] | None = None,
    spend: Mapping[str, Any] | None = None,
    segments: list[str] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The whole context for `rules` (None: for any rule), reading only the facts they name.

    `tz` is the tenant's zone; `order` comes from `order_context`; `event` is `{name, metadata, occurred_at}`.
    `standing` is the tier and balance the caller already holds (the earning path, under the account lock);
    without it they are read when named. `redemptions` loads the member's past redemptions (the redemption
    engine's; loyalty cannot read them), called only when a rule names them. At most six queries, each only when
    named: spend (1), standing (1), segments (1 or 2), events (1), redemptions (1).

    `spend`, `segments` and `history` (the `events` array, `occurred_at` aware) are facts the caller already
    holds, read instead of the database: the public calculator (`loyalty.forecast`) gives them for a visitor who
    is no stored member (an unsaved `Member`), so that its synthetic year costs no query.
    """
    named = facts_named(rules)
    local_now = now.astimezone(tz)
    document = None
    if member is not None:
        if standing is None and "standing" in named:
            standing = member_standing(member)
        document = member_context(
            member,
            now=local_now,
            spend=spend if spend is not None or "spend" not in named else spend_summary(member, now),
            standing=standing,
            segments=segments if segments is not None or "segments" not in named else member_segments(member, now),
        )
    events = None
    if "events" in named:
        rows = history if history is not None else recent_events(member, now) if member else []
        events = [{**e, "occurred_at": _local(e["occurred_at"], tz)} for e in rows]
    past = None
    if "redemptions" in named:
        past = [{k: _local(v, tz) for k, v in r.items()} for r in redemptions()] if redemptions else []
    return {
        "member": document,
        "order": order,
        "event": (
            {
                "name": event["name"],
                "metadata": event.get("metadata") or {},
                "occurred_at": _local(event["occurred_at"], tz),
            }
            if event is not None
            else None
        ),
        "events": events,
        "redemptions": past,
        "now": local_now,
    }
