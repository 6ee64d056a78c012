"""`redeem_in_transaction`: the same redemption inside the caller's transaction (for checkout compositions)."""

from decimal import Decimal as D

import pytest
from django.db import transaction

from campaigns.models import Campaign, CampaignUsage, Code
from common import events
from common.errors import ApplicationError
from rewards.models import Redemption
from rewards.services.redemption import redeem, redeem_in_transaction
from tests.factories import CodeFactory, EngineMemberFactory

ORDER = {"amount": "100.00", "items": [{"sku": "TSHIRT", "category": "apparel", "quantity": 2, "unit_price": "50.00"}]}


@pytest.fixture
def published(monkeypatch):
    seen: list[tuple[str, dict]] = []
    monkeypatch.setattr(events, "_sinks", [*events._sinks, lambda tenant, kind, data: seen.append((kind, data))])
    return seen


@pytest.fixture
def member(tenant):
    return EngineMemberFactory(tenant=tenant)


@pytest.mark.django_db
def test_redeems_inside_the_callers_transaction_like_redeem(tenant, member, published):
    code = CodeFactory(campaign__tenant=tenant, campaign__discount={"type": "percent", "value": "15"})
    twin = CodeFactory(campaign__tenant=tenant, campaign__discount={"type": "percent", "value": "15"})
    with transaction.atomic():
        inside = redeem_in_transaction(
            tenant=tenant, member=member, order_id="o-1", order=ORDER, codes=[code.code], channel="pos"
        )
    outside = redeem(tenant=tenant, member=member, order_id="o-2", order=ORDER, codes=[twin.code], channel="pos")
    assert (inside.discount, inside.total, inside.channel) == (D("15.00"), D("85.00"), "pos")
    # The same answer as `redeem` (ids aside) and the same counters.
    strip = {"id", "order_id", "created_at", "codes"}
    assert {k: v for k, v in inside.result.items() if k not in strip} == {
        k: v for k, v in outside.result.items() if k not in strip
    }
    assert inside.result["codes"][0]["discount"] == outside.result["codes"][0]["discount"] == "15.00"
    code.refresh_from_db()
    assert code.redeemed_count == 1 and Campaign.objects.get(pk=code.campaign_id).redemptions_count == 1
    assert CampaignUsage.objects.filter(campaign_id=code.campaign_id, key=f"m:{member.pk}").get().count == 1
    assert [k for k, _ in published] == ["redemption.succeeded", "redemption.succeeded"]


@pytest.mark.django_db
def test_the_callers_rollback_undoes_the_redemption(tenant, member):
    code = CodeFactory(campaign__tenant=tenant)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        redeem_in_transaction(tenant=tenant, member=member, order_id="o-1", order=ORDER, codes=[code.code])
        assert Redemption.objects.count() == 1
        raise Abort
    code.refresh_from_db()
    assert code.redeemed_count == 0 and not Redemption.objects.exists() and not CampaignUsage.objects.exists()
    assert Campaign.objects.get(pk=code.campaign_id).redemptions_count == 0


@pytest.mark.django_db
def test_a_refusal_rolls_back_only_its_own_writes_and_records_no_failure(tenant, member, published):
    good = CodeFactory(campaign__tenant=tenant)
    with transaction.atomic():
        Campaign.objects.filter(pk=good.campaign_id).update(description="written by the caller")
        with pytest.raises(ApplicationError) as caught:
            redeem_in_transaction(
                tenant=tenant, member=member, order_id="o-1", order=ORDER, codes=[good.code, "MISSING-1"]
            )
        # The caller's transaction is still usable and keeps its own write.
        assert Campaign.objects.get(pk=good.campaign_id).description == "written by the caller"
    assert caught.value.code == "redemption_failed" and caught.value.status == 422
    assert [c.get("reason") for c in caught.value.details["codes"]] == [None, "code_not_found"]
    assert not caught.value.evaluation.valid
    good.refresh_from_db()
    assert good.redeemed_count == 0 and not Redemption.objects.exists()
    assert Campaign.objects.get(pk=good.campaign_id).redemptions_failed == 0  # left to the caller
    assert published == []


@pytest.mark.django_db
def test_input_errors_are_the_same_as_redeem(tenant, member):
    with transaction.atomic(), pytest.raises(ApplicationError) as caught:
        redeem_in_transaction(tenant=tenant, member=member, order_id="", order=ORDER, codes=["X"])
    assert caught.value.code == "validation_error" and "order_id" in caught.value.details


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_it_refuses_to_run_without_the_callers_transaction(tenant, member):
    code = CodeFactory(campaign__tenant=tenant)
    with pytest.raises(transaction.TransactionManagementError):
        redeem_in_transaction(tenant=tenant, member=member, order_id="o-1", order=ORDER, codes=[code.code])
    assert Code.objects.get(pk=code.pk).redeemed_count == 0


@pytest.mark.django_db
def test_redeem_with_answer_calls_back_inside_the_transaction_only_on_success(tenant, member, published):
    from django.db import connection

    from rewards.services.redemption import redeem_with_answer

    code = CodeFactory(campaign__tenant=tenant)
    seen = []

    def answer(redemption):
        seen.append((redemption.pk, redemption.result["order_id"], connection.in_atomic_block))

    redemption = redeem_with_answer(
        answer=answer, tenant=tenant, member=member, order_id="o-1", order=ORDER, codes=[code.code]
    )
    assert seen == [(redemption.pk, "o-1", True)]
    with pytest.raises(ApplicationError):
        redeem_with_answer(answer=answer, tenant=tenant, member=member, order_id="o-2", order=ORDER, codes=[code.code])
    assert len(seen) == 1  # refused (the code is used up): no answer, the failure recorded as `redeem` does
    assert [k for k, _ in published] == ["redemption.succeeded", "redemption.failed"]
