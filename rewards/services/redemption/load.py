"""What an evaluation reads: campaigns and codes of the request, live promotions, usage, the rule context."""

from __future__ import annotations

import datetime as dt
from typing import Any

from campaigns import engine
from campaigns import sql as campaigns_sql
from campaigns.models import Campaign, Code
from common.errors import ApplicationError
from loyalty.ledger import default_program
from loyalty.models import Account
from loyalty.rule_context import HISTORY_DAYS, HISTORY_MAX, build_rule_context, facts_named, order_context
from members.models import Member
from rewards.models import RedemptionCode


def campaigns_and_frozen(tenant, texts, now) -> tuple[bool, list[Campaign], list[Campaign]]:
    """One query (unlocked): the tenant's kill switch, the campaigns of the codes `texts`, the live promotions
    (by the one rule of `campaigns.sql.live`; active hours are the engine's)."""
    return campaigns_sql.campaigns_and_frozen(tenant.pk, texts, now)


def codes_by_text(tenant, texts, *, campaign_ids=None) -> list[Code]:
    """The tenant's codes named `texts` (optionally only of `campaign_ids`), in primary key order, unlocked:
    the statement `campaigns.lock_objects.codes_named_for_update` runs locked when redeeming."""
    return campaigns_sql.codes_by_text(tenant.pk, texts, campaign_ids=campaign_ids, lock=False)


def usage_counts(campaigns: list[Campaign], member_id, now, tz) -> dict[tuple[int, str], int]:
    return campaigns_sql.usage_counts(engine.wanted_usage_keys(campaigns, member_id, now, tz))


def member_redemptions(member: Member, now) -> list[dict[str, Any]]:
    """The member's past redemptions as the rule language sees them (`redemptions`): one query.

    The window of the context's history (`loyalty.rule_context`): the last `HISTORY_DAYS`, newest first, at most
    `HISTORY_MAX` rows, like `events`.
    """
    rows = (
        RedemptionCode.objects.filter(
            tenant_id=member.tenant_id,
            member=member,
            rolled_back=False,
            created_at__gte=now - dt.timedelta(days=HISTORY_DAYS),
        )
        .order_by("-created_at", "-pk")
        .values("campaign_id", "campaign__name", "campaign__type", "code__code", "discount", "created_at")[:HISTORY_MAX]
    )
    return [
        {
            "campaign": str(r["campaign_id"]),
            "campaign_id": r["campaign_id"],
            "campaign_name": r["campaign__name"],
            "campaign_type": r["campaign__type"],
            "code": r["code__code"],
            "discount": r["discount"],
            "created_at": r["created_at"],
        }
        for r in rows
    ]


def rule_context_for(tenant, member, order, now, rules=None) -> dict[str, Any]:
    """The rule context (`loyalty.rule_context`) of a checked order (`parse_request`), with the member's past
    redemptions; only the facts `rules` name are read (None: all of them)."""
    return build_rule_context(
        member=member,
        tz=tenant.tz,
        now=now,
        rules=rules,
        order=order_context(
            order_id=order.get("order_id"),
            amount=order.get("amount"),
            currency=order.get("currency"),
            location=order.get("location"),
            channel=order.get("channel"),
            items=order.get("items") or (),
        ),
        redemptions=(lambda: member_redemptions(member, now)) if member else None,
    )


def context_loader(tenant, member, order, now, rules):
    """The rule context, built on first use with only the member facts the rules read.

    `load.rules` may grow after the first use (the redemption learns its codes' rules from the locked read,
    after the promotions were judged): the next use then reads the facts the added rules name, if any more.
    """
    cache: dict[str, Any] = {}
    rules = list(rules)

    def load() -> dict[str, Any]:
        if cache.get("rules") != len(rules):
            named = facts_named(rules)
            if "ctx" not in cache or not named <= cache["named"]:
                cache["ctx"] = rule_context_for(tenant, member, order, now, rules)
                cache["named"] = named
            cache["rules"] = len(rules)
        return cache["ctx"]

    load.rules = rules
    return load


def points_request_for(tenant, member, points: int):
    """(PointsRequest, account or None) for `points` requested; reads only (no account is created here)."""
    if points <= 0:
        return None, None
    if member is None:
        return engine.PointsRequest(requested=points, balance=None, member_present=False), None

    program = default_program(tenant)
    if program is None:
        return engine.PointsRequest(requested=points, balance=0), None
    account = Account.objects.filter(tenant=tenant, member=member, program=program).first()
    return (
        engine.PointsRequest(
            requested=points,
            balance=account.balance if account else 0,
            points_per=program.points_value_points,
            amount_per=program.points_value_amount,
        ),
        account,
    )


def check_member(tenant, member):
    if member is not None and member.tenant_id != tenant.pk:
        raise ApplicationError("member_not_found", "No such member.", status=404)
