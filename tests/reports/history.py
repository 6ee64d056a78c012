"""A hand-made history for the report tests: rows written as the services leave them, with chosen times.

The report reads rows, whatever wrote them; writing them here (rather than through the services) lets a test
place each row at an exact instant (late orders, day boundaries in the tenant's zone). Each helper also keeps
what it wrote in plain Python lists, from which the tests compute the expected figures by the contract's
definitions.
"""

import datetime as dt
import itertools
from decimal import Decimal

from campaigns.models import Publication
from loyalty.models import Account, LedgerEntry, MemberTier, Order, OrderReturn, PointLot, TierChange
from rewards.models import (
    EvaluationTrace,
    GiftCardTransaction,
    Redemption,
    RedemptionCode,
    RedemptionRollback,
    RewardPurchase,
)
from tests.factories import CampaignFactory, CodeFactory, MemberFactory, ProgramFactory, RewardFactory

_ids = itertools.count(1)


class History:
    def __init__(self, tenant):
        self.tenant = tenant
        self.program = ProgramFactory(tenant=tenant, points_value_points=100, points_value_amount=Decimal("1.00"))
        self.orders: list[Order] = []
        self.returns: list[OrderReturn] = []
        self.redemptions: list[Redemption] = []
        self.entries: list[LedgerEntry] = []
        self.accounts: dict[int, Account] = {}

    def member(self, **kwargs):
        return MemberFactory(tenant=self.tenant, **kwargs)

    def account(self, member) -> Account:
        if member.pk not in self.accounts:
            self.accounts[member.pk] = Account.objects.create(tenant=self.tenant, member=member, program=self.program)
        return self.accounts[member.pk]

    def order(self, member, amount, at: dt.datetime, *, location: str = "", created_at=None) -> Order:
        order = Order.objects.create(
            tenant=self.tenant,
            member=member,
            order_id=f"o-{next(_ids)}",
            amount=Decimal(amount),
            currency=self.tenant.currency,
            location=location,
            occurred_at=at,
            created_at=created_at or at,
        )
        self.orders.append(order)
        return order

    def order_return(self, order, amount, at: dt.datetime) -> OrderReturn:
        ret = OrderReturn.objects.create(
            tenant=self.tenant, order=order, return_id=f"r-{next(_ids)}", amount=Decimal(amount), created_at=at
        )
        Order.objects.filter(pk=order.pk).update(returned_amount=order.returned_amount + Decimal(amount))
        order.returned_amount += Decimal(amount)
        self.returns.append(ret)
        return ret

    def redemption(
        self,
        member,
        order_id: str,
        at: dt.datetime,
        *,
        lines=(),
        points_used: int = 0,
        integration: str = "",
    ) -> Redemption:
        """`lines`: (campaign, code or None, discount, kind) applied; the redemption's discount is their sum."""
        discount = sum((Decimal(line[2]) for line in lines if line[3] != "gift_card"), Decimal("0"))
        redemption = Redemption.objects.create(
            tenant=self.tenant,
            member=member,
            order_id=order_id,
            order_amount=Decimal("100.00"),
            discount=discount,
            points_used=points_used,
            total=Decimal("100.00") - discount,
            integration_name=integration,
            created_at=at,
        )
        for campaign, code, line_discount, kind in lines:
            RedemptionCode.objects.create(
                tenant=self.tenant,
                redemption=redemption,
                campaign=campaign,
                code=code,
                member=member,
                kind=kind,
                discount=Decimal(line_discount),
                order_amount=Decimal("100.00"),
                created_at=at,
            )
            if kind == "gift_card":
                code.balance -= Decimal(line_discount)
                code.save(update_fields=["balance"])
                GiftCardTransaction.objects.create(
                    tenant=self.tenant,
                    code=code,
                    redemption=redemption,
                    kind="debit",
                    amount=-Decimal(line_discount),
                    balance_after=code.balance,
                    created_at=at,
                )
        self.redemptions.append(redemption)
        return redemption

    def rollback(self, redemption: Redemption, at: dt.datetime) -> None:
        Redemption.objects.filter(pk=redemption.pk).update(status=Redemption.Status.ROLLED_BACK)
        redemption.status = Redemption.Status.ROLLED_BACK
        RedemptionCode.objects.filter(redemption=redemption).update(rolled_back=True)
        for line in RedemptionCode.objects.filter(redemption=redemption, kind="gift_card").select_related("code"):
            code = line.code
            code.balance += line.discount
            code.save(update_fields=["balance"])
            GiftCardTransaction.objects.create(
                tenant=self.tenant,
                code=code,
                redemption=redemption,
                kind="rollback",
                amount=line.discount,
                balance_after=code.balance,
                created_at=at,
            )
        RedemptionRollback.objects.create(tenant=self.tenant, redemption=redemption, created_at=at)

    def entry(self, member, kind: str, points: int, at: dt.datetime, *, campaign_id=None) -> LedgerEntry:
        entry = LedgerEntry.objects.create(
            tenant=self.tenant,
            account=self.account(member),
            kind=kind,
            points=points,
            balance_after=0,
            reason="test",
            campaign_id=campaign_id,
            created_at=at,
        )
        self.entries.append(entry)
        return entry

    def lot(self, member, entry, remaining: int, expires_at: dt.datetime) -> PointLot:
        return PointLot.objects.create(
            tenant=self.tenant,
            account=self.account(member),
            entry=entry,
            points=max(remaining, 1),
            remaining=remaining,
            earned_at=entry.created_at,
            expires_at=expires_at,
        )

    def campaign(self, **kwargs):
        return CampaignFactory(tenant=self.tenant, **kwargs)

    def code(self, campaign, **kwargs):
        return CodeFactory(campaign=campaign, tenant=self.tenant, **kwargs)

    def gift_card(self, campaign, amount, at: dt.datetime):
        code = CodeFactory(
            campaign=campaign,
            tenant=self.tenant,
            usage_limit=None,
            initial_balance=Decimal(amount),
            balance=Decimal(amount),
        )
        type(code).objects.filter(pk=code.pk).update(created_at=at)
        code.created_at = at
        return code

    def publication(self, campaign, code, member, at: dt.datetime) -> Publication:
        return Publication.objects.create(
            tenant=self.tenant, campaign=campaign, code=code, member=member, published_at=at
        )

    def refused(
        self, reasons: list[str], at: dt.datetime, *, member=None, integration: str = "", lines=()
    ) -> EvaluationTrace:
        """`lines`: (campaign, reason) of the refused codes, as the trace's document records them."""
        document = {"lines": [{"valid": False, "reason": r, "campaign": str(c.pk)} for c, r in lines]}
        return EvaluationTrace.objects.create(
            tenant=self.tenant,
            kind=EvaluationTrace.Kind.REDEMPTION,
            succeeded=False,
            member_id=member.pk if member else None,
            reasons=reasons,
            integration_name=integration,
            document=document,
            created_at=at,
        )

    def reward_purchase(self, member, at: dt.datetime) -> RewardPurchase:
        reward = RewardFactory(tenant=self.tenant)
        return RewardPurchase.objects.create(
            tenant=self.tenant, member=member, reward=reward, points=500, created_at=at
        )

    def member_tier(self, member, tier) -> MemberTier:
        return MemberTier.objects.create(tenant=self.tenant, member=member, program=self.program, tier=tier)

    def tier_change(self, member, from_tier, to_tier, at: dt.datetime) -> TierChange:
        return TierChange.objects.create(
            tenant=self.tenant,
            member=member,
            program=self.program,
            from_tier=from_tier,
            to_tier=to_tier,
            reason="test",
            created_at=at,
        )
