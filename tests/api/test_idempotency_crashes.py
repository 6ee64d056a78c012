"""Exactly once across crashes: every idempotent write endpoint, killed between its effect and its answer.

Each write endpoint is run with an `Idempotency-Key` while the database connection serving the request is
killed (`pg_terminate_backend` from a second connection) at one of two points:

- `before_commit`: inside the service's transaction, after the effects were written, at the moment the
  answer is stored (`api.idempotency.store_in_transaction`): nothing commits, neither effects nor answer.
- `after_commit`: after the service's transaction committed, when the view is done and the answer would be
  stored after the effects (`api.idempotency.complete`), which is where the answer used to be stored: a
  crash there left effects committed and the claim unanswered.

The retry with the same key comes after the claim's lock has expired (the clock moved past
`IDEMPOTENCY_LOCK_SECONDS`), so a claim left unanswered would be taken over and the write run again. The
effects must then exist exactly once, and the retry (and any later one) answer the one answer.
Real PostgreSQL, real commits (transactional tests), no database mocks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from api import idempotency
from campaigns.models import Campaign, Code, Publication
from integrations.models import Event, IdempotencyRecord
from loyalty.models import LedgerEntry, Order, OrderReturn, Program
from members.models import CustomEvent, Member
from members.services import tenant_set_frozen
from rewards.models import Redemption, RedemptionRollback, RewardPurchase
from rewards.services.checkout import order_checkout
from rewards.services.redemption import redeem
from tests.api.conftest import client_for
from tests.factories import (
    CampaignFactory,
    CodeFactory,
    EarningRuleFactory,
    MemberFactory,
    RewardFactory,
    api_key_for,
    earning_setup,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@dataclass
class Write:
    method: str
    path: str
    body: dict
    effects: Callable[[], tuple]  # what the write changes, counted in the database
    once: tuple  # those counts after the write ran exactly once
    status: int | None = None  # the answer's status when not a 2xx (a refusal that writes)

    def answered(self, response) -> bool:
        return response.status_code == self.status if self.status else 200 <= response.status_code < 300


def _events(tenant, kind):
    return Event.objects.filter(tenant=tenant, type=kind).count()


def _custom_event(tenant):
    program, _, member = earning_setup(tenant)
    EarningRuleFactory(program=program, code="news", trigger="event", event_name="newsletter_subscribed", points=50)
    return Write(
        "post",
        "/api/v1/events",
        {"member": member.external_id, "event": "newsletter_subscribed"},
        lambda: (CustomEvent.objects.filter(member=member).count(), LedgerEntry.objects.filter(tenant=tenant).count()),
        (1, 1),
    )


def _paid(tenant, member, order_id="o-1", amount="100.00"):
    return order_checkout(tenant=tenant, member=member, order_id=order_id, amount=amount, currency="EUR")


def _order(tenant):
    _, _, member = earning_setup(tenant)
    body = {"order_id": "o-9", "member": member.external_id, "amount": "40.00", "currency": "EUR"}
    return Write(
        "post",
        "/api/v1/orders",
        body,
        lambda: (Order.objects.filter(tenant=tenant).count(), LedgerEntry.objects.filter(tenant=tenant).count()),
        (1, 1),
    )


def _return_without_return_id(tenant):
    _, _, member = earning_setup(tenant)
    _paid(tenant, member)
    return Write(
        "post",
        "/api/v1/orders/o-1/returns",
        {"amount": "10.00"},
        lambda: (
            OrderReturn.objects.filter(tenant=tenant).count(),
            LedgerEntry.objects.filter(tenant=tenant, kind="reverse").count(),
        ),
        (1, 1),
    )


def _publication(tenant):
    member = MemberFactory(tenant=tenant)
    campaign = CampaignFactory(tenant=tenant)
    CodeFactory(campaign=campaign, tenant=tenant)
    CodeFactory(campaign=campaign, tenant=tenant)
    return Write(
        "post",
        "/api/v1/publications",
        {"campaign": str(campaign.pk), "member": member.external_id},
        lambda: (Publication.objects.filter(tenant=tenant).count(), _events(tenant, "code.published")),
        (1, 1),
    )


def _reward_purchase(tenant):
    _, _, member = earning_setup(tenant)
    _paid(tenant, member)  # 100 points
    reward = RewardFactory(tenant=tenant, points_cost=30)
    return Write(
        "post",
        f"/api/v1/members/{member.external_id}/reward-redemptions",
        {"reward": str(reward.pk)},
        lambda: (
            RewardPurchase.objects.filter(tenant=tenant).count(),
            LedgerEntry.objects.filter(tenant=tenant, kind="redeem").count(),
        ),
        (1, 1),
    )


def _campaign_create(tenant):
    body = {"name": "Welcome", "type": "discount", "discount": {"type": "percent", "value": "10"}}
    return Write(
        "post",
        "/api/v1/campaigns",
        {**body, "codes": {"code": "WELCOME10"}},
        lambda: (Campaign.objects.filter(tenant=tenant).count(), _events(tenant, "campaign.created")),
        (1, 1),
    )


def _campaign_update(tenant):
    campaign = CampaignFactory(tenant=tenant)
    return Write(
        "patch",
        f"/api/v1/campaigns/{campaign.pk}",
        {"name": "Renamed", "codes": {"count": 3, "pattern": "PX-####"}},
        lambda: (
            Code.objects.filter(campaign=campaign).count(),
            Campaign.objects.get(pk=campaign.pk).name,
        ),
        (3, "Renamed"),
    )


def _campaign_enable(tenant):
    campaign = CampaignFactory(tenant=tenant, enabled=False)
    return Write(
        "post",
        f"/api/v1/campaigns/{campaign.pk}/enable",
        {},
        lambda: (_events(tenant, "campaign.enabled"), campaign.history.count()),
        (1, campaign.history.count() + 1),
    )


def _campaign_disable(tenant):
    campaign = CampaignFactory(tenant=tenant)
    return Write(
        "post",
        f"/api/v1/campaigns/{campaign.pk}/disable",
        {"reason": "leak"},
        lambda: (_events(tenant, "campaign.disabled"), campaign.history.count()),
        (1, campaign.history.count() + 1),
    )


def _member_upsert(tenant):
    return Write(
        "put",
        "/api/v1/members/crm-1",
        {"email": "ada@example.com", "name": "Ada"},
        lambda: (Member.objects.filter(tenant=tenant).count(), _events(tenant, "member.created")),
        (1, 1),
    )


def _program_declare(tenant):
    document = {
        "name": "Club",
        "currency": "EUR",
        "earning_rules": [{"code": "spend", "trigger": "order_paid", "points_per_unit": "1", "unit_amount": "1.00"}],
    }
    return Write(
        "put",
        "/api/v1/programs/club",
        document,
        lambda: (Program.objects.filter(tenant=tenant).count(), Program.history.filter(tenant=tenant).count()),
        (1, 1),
    )


def _tenant_freeze(tenant):
    return Write(
        "post",
        "/api/v1/tenant/freeze",
        {"reason": "fraud"},
        lambda: (tenant.history.count(),),
        (tenant.history.count() + 1,),
    )


def _tenant_unfreeze(tenant):
    tenant_set_frozen(tenant=tenant, frozen=True, reason="fraud")
    return Write(
        "post", "/api/v1/tenant/unfreeze", {}, lambda: (tenant.history.count(),), (tenant.history.count() + 1,)
    )


def _redemption(tenant):
    member = MemberFactory(tenant=tenant)
    CodeFactory(campaign=CampaignFactory(tenant=tenant), tenant=tenant, code="SPR-1", usage_limit=5)
    body = {"member": member.external_id, "order_id": "r-1", "order": {"amount": "100.00"}, "codes": ["SPR-1"]}
    return Write(
        "post",
        "/api/v1/redemptions",
        body,
        lambda: (Redemption.objects.filter(tenant=tenant).count(), Code.objects.get(code="SPR-1").redeemed_count),
        (1, 1),
    )


def _redemption_rollback(tenant):
    member = MemberFactory(tenant=tenant)
    CodeFactory(campaign=CampaignFactory(tenant=tenant), tenant=tenant, code="SPR-1", usage_limit=5)
    redemption = redeem(tenant=tenant, member=member, order_id="r-1", order={"amount": "100.00"}, codes=["SPR-1"])
    return Write(
        "post",
        f"/api/v1/redemptions/{redemption.pk}/rollback",
        {"reason": "cancelled"},
        lambda: (
            RedemptionRollback.objects.filter(tenant_id=tenant.pk).count(),
            _events(tenant, "redemption.rolled_back"),
        ),
        (1, 1),
    )


def _redemption_refused(tenant):
    """A refusal writes too: the failure counted on the campaign, `redemption.failed`."""
    member = MemberFactory(tenant=tenant)
    campaign = CampaignFactory(tenant=tenant)
    CodeFactory(campaign=campaign, tenant=tenant, code="SPR-1", usage_limit=1)
    redeem(tenant=tenant, member=member, order_id="r-1", order={"amount": "100.00"}, codes=["SPR-1"])
    body = {"member": member.external_id, "order_id": "r-2", "order": {"amount": "100.00"}, "codes": ["SPR-1"]}
    return Write(
        "post",
        "/api/v1/redemptions",
        body,
        lambda: (Campaign.objects.get(pk=campaign.pk).redemptions_failed, _events(tenant, "redemption.failed")),
        (1, 1),
        status=422,
    )


WRITES = {
    "custom_event": _custom_event,
    "order": _order,
    "return_without_return_id": _return_without_return_id,
    "publication": _publication,
    "reward_purchase": _reward_purchase,
    "campaign_create": _campaign_create,
    "campaign_update": _campaign_update,
    "campaign_enable": _campaign_enable,
    "campaign_disable": _campaign_disable,
    "member_upsert": _member_upsert,
    "program_declare": _program_declare,
    "tenant_freeze": _tenant_freeze,
    "tenant_unfreeze": _tenant_unfreeze,
    "redemption": _redemption,
    "redemption_refused": _redemption_refused,
    "redemption_rollback": _redemption_rollback,
}


def kill_this_connection() -> None:
    """Terminate the PostgreSQL backend of Django's connection from another connection, as a crash would."""
    pid = connection.connection.info.backend_pid
    params = connection.settings_dict
    with psycopg.connect(
        dbname=params["NAME"],
        user=params["USER"] or None,
        password=params["PASSWORD"] or None,
        host=params["HOST"] or None,
        port=params["PORT"] or None,
        autocommit=True,
    ) as other:
        # With a timeout, PostgreSQL waits until the backend is gone: no race with the next statement.
        assert other.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()[0] is True


@pytest.fixture
def crash_at(monkeypatch):
    """`crash_at(point)` arms a one-shot kill at `before_commit` or `after_commit`; returns the shots fired."""
    fired = []

    def arm(point):
        name = {"before_commit": "store_in_transaction", "after_commit": "complete"}[point]
        real = getattr(idempotency, name)

        def crashing(*args, **kwargs):
            if not fired:
                fired.append(point)
                kill_this_connection()
            return real(*args, **kwargs)

        monkeypatch.setattr(idempotency, name, crashing)
        return fired

    return arm


def send(client, write: Write, key: str):
    return getattr(client, write.method)(write.path, write.body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
@pytest.mark.parametrize("endpoint", list(WRITES))
def test_a_write_killed_between_its_effect_and_its_answer_applies_once_and_answers_once(
    tenant, endpoint, point, crash_at
):
    write = WRITES[endpoint](tenant)
    client = client_for(api_key_for(tenant)[1])
    client.raise_request_exception = False  # a crashed request is a 500, as a client would see it
    before = write.effects()
    fired = crash_at(point)

    first = send(client, write, "crash-1")
    connection.close()  # the killed connection: the next use opens a new one
    assert fired == [point], "the fault was not injected: the answer is not stored at that point"
    if point == "before_commit":
        assert first.status_code == 500
        assert write.effects() == before, "the effects committed without their answer"
    lock = dt.timedelta(seconds=getattr(idempotency.settings, "IDEMPOTENCY_LOCK_SECONDS", 60))
    with time_machine.travel(timezone.now() + lock + dt.timedelta(seconds=30), tick=True):
        retry = send(client, write, "crash-1")
        again = send(client, write, "crash-1")
    assert write.answered(retry), retry.content
    assert write.effects() == write.once
    if point == "after_commit":  # the first request answered: the retry replays that answer
        assert write.answered(first), first.content
        assert (retry.status_code, retry.content) == (first.status_code, first.content)
        assert retry["Idempotent-Replayed"] == "true"
    assert (again.status_code, again.content) == (retry.status_code, retry.content)
    assert again["Idempotent-Replayed"] == "true"
    record = IdempotencyRecord.objects.get(key="crash-1")
    assert record.state == IdempotencyRecord.State.COMPLETED and record.response_status == retry.status_code
