"""Concurrency through the real API on PostgreSQL (real threads), and the API's constant query cost."""

import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.models import Code
from rewards.models import Redemption
from tests.api.conftest import client_for
from tests.factories import CampaignFactory, CodeFactory, MemberFactory, api_key_for


def _run_threads(count, target):
    barrier = threading.Barrier(count)
    results = []
    lock = threading.Lock()

    def worker(index):
        try:
            barrier.wait()
            outcome = target(index)
            with lock:
                results.append(outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_redemptions_of_a_code_with_one_use_left_give_exactly_one_201(tenant):
    _, raw = api_key_for(tenant, throttle_rate="100000/min")
    code = CodeFactory(campaign=CampaignFactory(tenant=tenant), code="LAST-1", usage_limit=1)

    def redeem(index):
        body = {"order_id": f"o-{index}", "order": {"amount": "50.00"}, "codes": ["LAST-1"]}
        response = client_for(raw).post("/api/v1/redemptions", body, format="json")
        return response.status_code, response.json()

    results = _run_threads(16, redeem)
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [422] * 15, statuses
    refused = [body for status, body in results if status == 422]
    assert all(body["error"]["code"] == "redemption_failed" for body in refused)
    assert Code.objects.get(pk=code.pk).redeemed_count == 1
    assert Redemption.objects.filter(tenant=tenant).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_redemption_with_one_idempotency_key_redeem_once(tenant):
    _, raw = api_key_for(tenant, throttle_rate="100000/min")
    code = CodeFactory(campaign=CampaignFactory(tenant=tenant), code="MULTI-1", usage_limit=100)
    body = {"order_id": "o-1", "order": {"amount": "50.00"}, "codes": ["MULTI-1"]}

    def retry(_):
        response = client_for(raw).post("/api/v1/redemptions", body, format="json", HTTP_IDEMPOTENCY_KEY="checkout-1")
        return response.status_code, response.content

    results = _run_threads(8, retry)
    assert {status for status, _ in results} == {201}
    assert len({content for _, content in results}) == 1
    assert Code.objects.get(pk=code.pk).redeemed_count == 1
    assert Redemption.objects.filter(tenant=tenant).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twins_of_a_single_use_code_all_get_the_first_answer_and_count_no_failure(tenant):
    """The key's record is written with the answer (a deferred claim): a twin that waited on the code's lock is
    refused, meets the first answer when it stores its refusal, rolls that back and replays the first."""
    _, raw = api_key_for(tenant, throttle_rate="100000/min")
    campaign = CampaignFactory(tenant=tenant)
    code = CodeFactory(campaign=campaign, code="ONCE-1", usage_limit=1)
    body = {"order_id": "o-1", "order": {"amount": "50.00"}, "codes": ["ONCE-1"]}

    def retry(_):
        response = client_for(raw).post("/api/v1/redemptions", body, format="json", HTTP_IDEMPOTENCY_KEY="twin-1")
        return response.status_code, response.content

    results = _run_threads(8, retry)
    assert {status for status, _ in results} == {201}, results
    assert len({content for _, content in results}) == 1
    assert Code.objects.get(pk=code.pk).redeemed_count == 1
    campaign.refresh_from_db()
    assert (campaign.redemptions_count, campaign.redemptions_failed) == (1, 0)
    assert Redemption.objects.filter(tenant=tenant).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twins_of_an_order_with_one_key_earn_once_and_all_get_the_first_answer(tenant):
    from loyalty.models import Order
    from tests.factories import earning_setup

    _, _, member = earning_setup(tenant)
    _, raw = api_key_for(tenant, throttle_rate="100000/min")
    body = {"order_id": "o-1", "member": member.external_id, "amount": "40.00", "currency": "EUR"}

    def retry(_):
        response = client_for(raw).post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="order-twin")
        return response.status_code, response.content

    results = _run_threads(8, retry)
    assert {status for status, _ in results} == {201}, results
    assert len({content for _, content in results}) == 1
    assert Order.objects.filter(tenant=tenant, order_id="o-1").count() == 1


@pytest.mark.django_db
def test_the_api_adds_a_constant_number_of_queries_whatever_the_codes(api, tenant):
    """Validation with 1 or 6 codes costs the same queries (the key lookup is one; the engine is constant)."""
    member = MemberFactory(tenant=tenant)
    campaign = CampaignFactory(tenant=tenant)
    codes = [CodeFactory(campaign=campaign, usage_limit=10).code for _ in range(6)]
    counts = []
    for batch in (codes[:1], codes):
        body = {"member": member.external_id, "order": {"amount": "100.00"}, "codes": batch}
        api.post("/api/v1/validations", body, format="json")  # warm: last_used_at is written once a minute
        with CaptureQueriesContext(connection) as queries:
            assert api.post("/api/v1/validations", body, format="json").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 12, counts
