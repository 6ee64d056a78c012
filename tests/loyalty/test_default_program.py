"""The tenant's default program (its active program with the lowest id) is one rule, `loyalty.sql.default_program_id`:
the ledger, the earning lock, the member's points summary and tier, and points as payment all pick the same
program and account."""

import pytest

from loyalty import ledger
from loyalty.ledger.selectors import member_points_summary
from loyalty.models import MemberTier
from loyalty.selectors import member_tier
from rewards.services.checkout import order_checkout
from rewards.services.redemption import validate
from tests.factories import EarningRuleFactory, MemberFactory, ProgramFactory, TierFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def programs(tenant):
    """An inactive program (lowest id), then the default one, then another active one."""
    inactive = ProgramFactory(tenant=tenant, active=False)
    default = ProgramFactory(tenant=tenant)
    later = ProgramFactory(tenant=tenant)
    for program in (inactive, default, later):
        EarningRuleFactory(program=program)
    return inactive, default, later


def test_every_reader_picks_the_same_default_program_and_account(tenant, other_tenant, programs):
    _, default, later = programs
    ProgramFactory(tenant=other_tenant)  # another tenant's programs never count
    member = MemberFactory(tenant=tenant)
    # Points in the later program only: they are not the default program's.
    ledger.points_adjust(points=70, reason="gift", staff_user=UserFactory(), member=member, program=later)
    later_tier = TierFactory(program=later, code="later-gold")
    MemberTier.objects.create(tenant=tenant, member=member, program=later, tier=later_tier)

    assert ledger.default_program(tenant) == default == ledger.default_program(tenant.pk)
    assert member_points_summary(member)["balance"] == 0
    assert member_tier(member) is None
    assert (
        validate(tenant=tenant, member=member, order={"amount": "10"}, codes=[], points=50).as_dict()["points"][
            "reason"
        ]
        == "points_insufficient"
    )

    order_checkout(tenant=tenant, member=member, order_id="o-1", amount="30.00", currency="EUR", items=[])
    locked = ledger.default_account_locked(member=member)
    assert locked.program == default and locked.balance == 30
    assert ledger.account_for(member=member) == locked
    assert member_points_summary(member)["balance"] == 30
    assert (
        validate(tenant=tenant, member=member, order={"amount": "10"}, codes=[], points=20).as_dict()["points"]["used"]
        == 20
    )

    default_tier = TierFactory(program=default, code="default-silver")
    MemberTier.objects.create(tenant=tenant, member=member, program=default, tier=default_tier)
    assert member_tier(member) == default_tier


def test_when_the_default_program_is_deactivated_the_next_one_is_the_default(tenant, programs):
    _, default, later = programs
    member = MemberFactory(tenant=tenant)
    default.active = False
    default.save(update_fields=["active"])
    order_checkout(tenant=tenant, member=member, order_id="o-1", amount="12.00", currency="EUR", items=[])
    assert ledger.default_program(tenant) == later
    assert ledger.default_account_locked(member=member).program == later
    assert member_points_summary(member)["balance"] == 12


def test_a_tenant_without_an_active_program_has_no_default(tenant):
    ProgramFactory(tenant=tenant, active=False)
    member = MemberFactory(tenant=tenant)
    assert ledger.default_program(tenant) is None
    assert ledger.default_account_locked(member=member) is None
    assert member_points_summary(member)["balance"] == 0
