"""Campaign events: one small function per event type (stable names of the contract).

Each runs inside the caller's transaction; `common.events.publish` writes the event row there and
schedules delivery after commit.
"""

from common.events import publish
from common.money import money_str

CAMPAIGN_CREATED = "campaign.created"
CAMPAIGN_ENABLED = "campaign.enabled"
CAMPAIGN_DISABLED = "campaign.disabled"
CAMPAIGN_BUDGET_EXHAUSTED = "campaign.budget_exhausted"
CODE_PUBLISHED = "code.published"


def _campaign_ref(campaign) -> dict:
    return {"id": str(campaign.pk), "name": campaign.name, "type": campaign.type}


def campaign_created(campaign) -> None:
    publish(campaign.tenant, CAMPAIGN_CREATED, {"campaign": _campaign_ref(campaign)})


def campaign_enabled(campaign, *, user=None) -> None:
    publish(
        campaign.tenant, CAMPAIGN_ENABLED, {"campaign": _campaign_ref(campaign), "by": getattr(user, "username", None)}
    )


def campaign_disabled(campaign, *, reason: str = "", user=None, automatic: bool = False) -> None:
    publish(
        campaign.tenant,
        CAMPAIGN_DISABLED,
        {
            "campaign": _campaign_ref(campaign),
            "reason": reason,
            "automatic": automatic,
            "by": getattr(user, "username", None),
        },
    )


def campaign_budget_exhausted(campaign, *, limit: str) -> None:
    publish(
        campaign.tenant,
        CAMPAIGN_BUDGET_EXHAUSTED,
        {
            "campaign": _campaign_ref(campaign),
            "limit": limit,
            "redemptions": campaign.redemptions_count,
            "discount_used": money_str(campaign.discount_used),
            "order_value_used": money_str(campaign.order_value_used),
        },
    )


def code_published(publication) -> None:
    publish(
        publication.tenant,
        CODE_PUBLISHED,
        {
            "code": publication.code.code,
            "campaign": str(publication.campaign_id),
            "member": publication.member.external_id,
            "channel": publication.channel,
            "published_at": publication.published_at.isoformat(),
        },
    )
