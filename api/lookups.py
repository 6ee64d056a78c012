"""Tenant-scoped lookups of the objects named in API paths and bodies: another tenant's is a 404."""

from campaigns.selectors import campaign_get
from common.errors import NotFound
from loyalty.models import Program
from members.models import Member
from members.selectors import member_for
from rewards.models import Reward
from rewards.selectors import redemption_get


def member_or_404(tenant, external_id: str) -> Member:
    return member_for(tenant, external_id)  # the services' own lookup (plain SQL, 404 member_not_found)


def member_or_none(tenant, external_id: str | None) -> Member | None:
    return member_or_404(tenant, external_id) if external_id else None


def campaign_or_404(tenant, campaign_id):
    campaign = campaign_get(tenant=tenant, campaign_id=campaign_id)
    if campaign is None:
        raise NotFound("campaign_not_found", "No such campaign.", {"campaign": str(campaign_id)})
    return campaign


def redemption_or_404(tenant, redemption_id):
    redemption = redemption_get(tenant=tenant, redemption_id=redemption_id)
    if redemption is None:
        raise NotFound("redemption_not_found", "No such redemption.", {"id": str(redemption_id)})
    return redemption


def reward_or_404(tenant, reward_id) -> Reward:
    try:
        reward = Reward.objects.for_tenant(tenant).filter(pk=int(reward_id), active=True).first()
    except (TypeError, ValueError):
        reward = None
    if reward is None:
        raise NotFound("reward_not_found", "No such reward.", {"reward": str(reward_id)})
    return reward


def program_or_404(tenant, code: str) -> Program:
    program = Program.objects.for_tenant(tenant).filter(code=code).first()
    if program is None:
        raise NotFound("program_not_found", "No such program.", {"program": code})
    return program
