"""The checkout endpoints run a constant, small number of queries."""

import json

import pytest

from rewards.models import Redemption
from rewards.services.redemption import redemption_document
from tests.api.test_redemptions_api import checkout, setup  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db

# Measured through the real URL conf and key authentication (inside the test transaction, so the service's
# durable block is a savepoint: +2). Validation: key, member, campaigns+kill switch, codes. Redemption: key,
# member (the idempotency claim reads nothing first), kill switch + live promotions + (there are none) the
# campaigns and codes locked, all in one statement, the redemption with its lines (one statement), then one
# statement for the counters, the evaluation trace, the event and its deliveries, and the idempotent answer
# (no usage counters are read: these campaigns have no usage limit). Both +1 here: the key's last-used time,
# written at most once a minute (this is the key's first call; later calls within API_KEY_CACHE_SECONDS do
# not read the key either). Validation also writes its evaluation trace (+1).
VALIDATION_QUERIES = 4 + 1 + 1
REDEMPTION_QUERIES = 5 + 2 + 1


def test_validation_is_a_constant_number_of_queries(api, setup, django_assert_num_queries):  # noqa: F811
    member, _code, _gift = setup
    with django_assert_num_queries(VALIDATION_QUERIES):
        response = api.post("/api/v1/validations", checkout(member, ["SPR-1"]), format="json")
    assert response.status_code == 200 and response.json()["valid"] is True


# PostgreSQL only: see tests/rewards/test_redemption.py (one-statement counter update).
@pytest.mark.postgres
def test_redemption_is_a_constant_number_of_queries_and_answers_what_the_rows_say(
    api,
    setup,  # noqa: F811
    django_assert_num_queries,
):
    from rewards.models import EvaluationTrace

    member, _code, _gift = setup
    body = checkout(member, ["SPR-1"], order_id="o-1")
    with django_assert_num_queries(REDEMPTION_QUERIES):
        response = api.post("/api/v1/redemptions", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 201, response.content
    redemption = Redemption.objects.get()
    # The answer is not stored with the row: it is the document built from the rows.
    assert response.json() == redemption_document(redemption)
    trace = EvaluationTrace.objects.get(redemption_id=redemption.pk)  # written within the counters' statement
    assert trace.succeeded and trace.codes == ["SPR-1"]
    assert trace.document["lines"][0]["counters"]["redemptions_count"] == 0  # as read, before this redemption


def test_the_idempotent_answer_is_stored_with_the_redemption(api, setup):  # noqa: F811
    from integrations.models import IdempotencyRecord

    member, _code, _gift = setup
    body = checkout(member, ["SPR-1"], order_id="o-1")
    first = api.post("/api/v1/redemptions", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    record = IdempotencyRecord.objects.get(key="k-1")
    assert record.state == IdempotencyRecord.State.COMPLETED and record.response_status == 201
    assert json.loads(record.response_body) == first.json()
    refused = api.post("/api/v1/redemptions", {**body, "order_id": "o-2"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert refused.status_code == 422  # the code is used up: the refusal is stored after the rollback
    record = IdempotencyRecord.objects.get(key="k-2")
    assert (record.state, record.response_status) == (IdempotencyRecord.State.COMPLETED, 422)
    assert json.loads(record.response_body) == refused.json()
    replay = api.post("/api/v1/redemptions", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert replay.json() == first.json() and replay["Idempotent-Replayed"] == "true"
