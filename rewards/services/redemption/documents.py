"""The redemption in the contract's shape (the answer of `POST /api/v1/redemptions`, stored with the row)."""

from __future__ import annotations

from campaigns import engine
from common.money import money_str
from rewards.models import Redemption


def redemption_document(redemption: Redemption, *, lines=None, evaluation: engine.Evaluation | None = None) -> dict:
    """The contract's redemption body (`POST /api/v1/redemptions` 201)."""
    if lines is None:
        lines = list(redemption.lines.select_related("code", "campaign"))
    member = redemption.member
    return {
        "id": str(redemption.pk),
        "order_id": redemption.order_id,
        "member": member.external_id if member else None,
        "status": str(redemption.status),
        "codes": [
            {
                "code": line.code.code if line.code_id else None,
                "campaign": str(line.campaign_id),
                "kind": str(line.kind),
                "discount": money_str(line.discount),
                "redemption_id": str(line.pk),
            }
            for line in lines
        ],
        "order": {
            "amount": money_str(redemption.order_amount),
            "discount": money_str(redemption.discount),
            "gift_cards": money_str(redemption.gift_cards),
            "points_value": money_str(redemption.points_value),
            "total": money_str(redemption.total),
        },
        "points": {"used": redemption.points_used, "value": money_str(redemption.points_value)},
        "created_at": redemption.created_at.isoformat(),
    }
