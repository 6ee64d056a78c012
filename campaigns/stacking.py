"""Stacking: which incentives may share an order, and the order in which they apply.

Order of application (documented in API.md terms):
  1. promotions (no code, applied automatically), by campaign priority then id;
  2. percent/amount and other discounts (codes), by campaign priority, then the order given;
  3. gift cards, in the order given (each debits what is left to pay);
  4. points as payment.
Each step sees what is left to pay after the steps before it, so the total never goes below zero.

Conflicts: an `exclusive` campaign shares an order with nothing else. A campaign whose
`combinable_with` is a list shares an order only with campaigns whose category is in that list (and
the other side's list, if it has one, must name it back); `combinable_with` left empty (null) means
"any category". A campaign's category is its `stacking_category`, or its type when none is set
(`gift_card` for gift cards). Codes are accepted greedily in the order given; a refused code names
what it conflicts with. Promotions never push a code out: a promotion that conflicts with an accepted
code is simply not applied. Points as payment combine with everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

STAGE_PROMOTION = 0
STAGE_DISCOUNT = 1
STAGE_GIFT_CARD = 2
STAGE_POINTS = 3

DEFAULT_MAX_CODES_PER_ORDER = 5


@dataclass(frozen=True)
class Stackable:
    key: str  # the code (or `promotion:<id>`), reported in `conflicts_with`
    category: str
    exclusive: bool = False
    combinable_with: tuple[str, ...] | None = None
    max_codes: int | None = None


def conflicts(a: Stackable, b: Stackable) -> bool:
    if a.exclusive or b.exclusive:
        return True
    if a.combinable_with is not None and b.category not in a.combinable_with:
        return True
    if b.combinable_with is not None and a.category not in b.combinable_with:
        return True
    return False


def conflicting(candidate: Stackable, accepted: Iterable[Stackable]) -> list[str]:
    return [other.key for other in accepted if conflicts(candidate, other)]


@dataclass
class StackingOutcome:
    accepted: list[Stackable]
    refused: dict[int, dict]  # index in the input -> details ({"conflicts_with": [...]} ...)


def select(candidates: Sequence[Stackable], *, default_max: int = DEFAULT_MAX_CODES_PER_ORDER) -> StackingOutcome:
    """Accept codes greedily in the order given; refuse those that conflict or exceed the maximum.

    The maximum number of codes in one order is the smallest `max_codes` among the accepted
    campaigns (or `default_max`).
    """
    accepted: list[Stackable] = []
    refused: dict[int, dict] = {}
    seen: set[str] = set()
    for index, candidate in enumerate(candidates):
        if candidate.key in seen:
            refused[index] = {"conflicts_with": [candidate.key], "duplicate": True}
            continue
        limit = min([default_max] + [c.max_codes for c in [*accepted, candidate] if c.max_codes])
        if len(accepted) + 1 > limit:
            refused[index] = {"conflicts_with": [c.key for c in accepted], "max_codes_per_order": limit}
            continue
        clash = conflicting(candidate, accepted)
        if clash:
            refused[index] = {"conflicts_with": clash}
            continue
        accepted.append(candidate)
        seen.add(candidate.key)
    return StackingOutcome(accepted=accepted, refused=refused)
