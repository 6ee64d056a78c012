"""The member's rewards and the reward catalog are real cursor pages: every item once, in order, any page size."""

import base64
import datetime as dt
import json
from decimal import Decimal as D
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine

from campaigns.models import Publication
from loyalty.ledger import points_adjust
from loyalty.models import MemberTier
from rewards.selectors import member_rewards
from rewards.services.redemption import redeem, redemption_rollback
from tests.api.conftest import assert_error, client_for
from tests.factories import (
    CampaignFactory,
    CodeFactory,
    MemberFactory,
    ProgramFactory,
    RewardFactory,
    TierFactory,
    UserFactory,
    api_key_for,
    earning_setup,
)

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
PAST = NOW - dt.timedelta(days=1)


@pytest.fixture
def frozen():
    # Frozen: the redemption lines share one `created_at`, so their order rests on the primary key tie-breaker.
    with time_machine.travel(NOW, tick=False):
        yield


def _publish(member, campaign, **code_fields):
    code = CodeFactory(campaign=campaign, member=member, **code_fields)
    Publication.objects.create(
        tenant=member.tenant, campaign=campaign, code=code, member=member, channel="email", published_at=NOW
    )
    return code


@pytest.fixture
def holdings(tenant, frozen):
    """A member with something in every section, and the identifiers each list must answer, in order."""
    program = ProgramFactory(tenant=tenant)
    member = MemberFactory(tenant=tenant)
    points_adjust(points=1000, reason="welcome", staff_user=UserFactory(), member=member, program=program)
    MemberTier.objects.create(
        tenant=tenant, member=member, program=program, tier=TierFactory(program=program, code="gold")
    )

    discount = CampaignFactory(tenant=tenant, discount={"type": "percent", "value": "10"})
    fresh = [_publish(member, discount) for _ in range(3)]
    gift = _publish(
        member,
        CampaignFactory(tenant=tenant, type="gift_card", discount={}, gift_card_amount=D("50.00")),
        balance=D("20.00"),
        initial_balance=D("50.00"),
        usage_limit=None,
    )
    held = _publish(member, CampaignFactory(tenant=tenant, enabled=False))  # campaign disabled: only "published"
    used = [_publish(member, discount) for _ in range(3)]
    late = [_publish(member, discount, expires_at=PAST) for _ in range(2)]
    ended = _publish(member, CampaignFactory(tenant=tenant, ends_at=PAST))

    redemptions = [
        redeem(tenant=tenant, member=member, order_id=f"o-{n}", order={"amount": "40"}, codes=[code.code])
        for n, code in enumerate(used)
    ]
    redemption_rollback(redemption=redemptions[1], reason="returned")  # its line no longer counts as redeemed

    promotions = [
        CampaignFactory(tenant=tenant, type="promotion", discount={"type": "amount", "value": "1.00"}) for _ in range(2)
    ]
    CampaignFactory(tenant=tenant, type="promotion", enabled=False)
    CampaignFactory(tenant=tenant, type="promotion", ends_at=PAST)

    cheap = [RewardFactory(tenant=tenant, points_cost=100) for _ in range(3)]  # a tie across a page boundary
    no_stock = RewardFactory(tenant=tenant, points_cost=200, stock=0)
    gold_only = RewardFactory(tenant=tenant, points_cost=300, tier_codes=["gold", "vip"])
    platinum_only = RewardFactory(tenant=tenant, points_cost=400, tier_codes=["platinum"])
    too_dear = RewardFactory(tenant=tenant, points_cost=5000)
    RewardFactory(tenant=tenant, points_cost=50, active=False)
    RewardFactory(tenant=MemberFactory().tenant, points_cost=10)  # another tenant's

    # The rolled-back code is usable again: it is among the available codes, newest publication first.
    available = [
        *(c.code for c in sorted([*fresh, gift, used[1]], key=_publication_pk, reverse=True)),
        *(("promotion", str(p.pk)) for p in promotions),
        *(("reward", str(r.pk)) for r in [*cheap, gold_only]),
    ]
    redeemed = [used[2].code, used[0].code]  # newest first (same time: higher id first)
    expired = [c.code for c in sorted([*late, ended], key=_publication_pk, reverse=True)]
    published = [c.code for c in sorted([*fresh, gift, held, *used, *late, ended], key=_publication_pk, reverse=True)]
    catalog = [cheap[0], cheap[1], cheap[2], no_stock, gold_only, platinum_only, too_dear]
    return {
        "member": member,
        "lists": {
            None: available + redeemed + expired,
            "available": available,
            "published": published,
            "redeemed": redeemed,
            "expired": expired,
        },
        "catalog": catalog,
        "platinum_only": platinum_only,
    }


def _publication_pk(code):
    return Publication.objects.get(code=code).pk


def _ident(item):
    if item["code"] is not None:
        return item["code"]
    if item["type"] == "promotion":
        return ("promotion", item["campaign"])
    return ("reward", item["id"])


def walk(api, url, params):
    """Every page from the first to the one whose `next` is null: (items, pages)."""
    pages = [api.get(url, params)]
    while True:
        assert pages[-1].status_code == 200, pages[-1].content
        body = pages[-1].json()
        assert set(body) == {"results", "next"}
        if body["next"] is None:
            break
        pages.append(api.get(body["next"]))
        assert len(pages) < 100
    bodies = [page.json() for page in pages]
    return [item for body in bodies for item in body["results"]], bodies


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 50])
@pytest.mark.parametrize("status", [None, "available", "published", "redeemed", "expired"])
def test_walking_the_members_rewards_answers_each_item_once_in_order(api, holdings, limit, status):
    member = holdings["member"]
    params = {"limit": limit} | ({"status": status} if status else {})
    items, bodies = walk(api, f"/api/v1/members/{member.external_id}/rewards", params)
    expected = holdings["lists"][status]
    assert [_ident(i) for i in items] == expected
    assert len(set(map(str, expected))) == len(expected)  # each once
    # Every page but the last is full, and the last one is not empty (unless the whole list is).
    assert all(len(b["results"]) == limit for b in bodies[:-1])
    assert bodies[-1]["results"] or len(bodies) == 1
    for body in bodies[:-1]:
        assert f"limit={limit}" in body["next"] and (status is None or f"status={status}" in body["next"])
    # The pages are the unpaged selector's list, field for field.
    assert [_ident(i) for i in member_rewards(tenant=member.tenant, member=member, status=status)] == expected


def test_member_reward_items_keep_their_fields_and_statuses(api, holdings):
    member = holdings["member"]
    items, _ = walk(api, f"/api/v1/members/{member.external_id}/rewards", {"status": "published", "limit": 4})
    statuses = [i["status"] for i in items]
    assert statuses.count("available") == 5 and statuses.count("published") == 1
    assert statuses.count("redeemed") == 2 and statuses.count("expired") == 3
    items, _ = walk(api, f"/api/v1/members/{member.external_id}/rewards", {"limit": 2})
    gift = next(i for i in items if i["type"] == "gift_card")
    assert gift["value"] == "20.00" and gift["status"] == "available"
    rewards = [i for i in items if i["code"] is None and i["type"] != "promotion"]
    assert {(r["points_cost"], r["status"]) for r in rewards} == {(100, "available"), (300, "available")}
    assert all(r["id"] for r in rewards)
    redeemed = [i for i in items if i["status"] == "redeemed"]
    assert [(r["discount"], bool(r["redeemed_at"])) for r in redeemed] == [("4.00", True), ("4.00", True)]
    expired = [i for i in items if i["status"] == "expired"]
    assert all(i["expires_at"] for i in expired)


def test_a_member_with_nothing_gets_one_empty_page(api, tenant):
    member = MemberFactory(tenant=tenant)
    response = api.get(f"/api/v1/members/{member.external_id}/rewards", {"limit": 1})
    assert response.json() == {"results": [], "next": None}


@pytest.mark.parametrize("limit", [1, 2, 4, 50])
def test_walking_the_catalog_answers_each_reward_once_cheapest_first(api, holdings, limit):
    member = holdings["member"]
    items, bodies = walk(api, "/api/v1/rewards", {"member": member.external_id, "limit": limit})
    assert [i["id"] for i in items] == [str(r.pk) for r in holdings["catalog"]]
    assert all(len(b["results"]) == limit for b in bodies[:-1])
    assert all(f"member={member.external_id}" in b["next"] for b in bodies[:-1])
    flags = {i["id"]: (i["eligible"], i["affordable"], i["in_stock"]) for i in items}
    cheap0, _, _, no_stock, gold_only, platinum_only, too_dear = holdings["catalog"]
    assert flags[str(cheap0.pk)] == (True, True, True)
    assert flags[str(no_stock.pk)] == (True, True, False)
    assert flags[str(gold_only.pk)] == (True, True, True)
    assert flags[str(platinum_only.pk)] == (False, False, True)
    assert flags[str(too_dear.pk)] == (True, False, True)
    anonymous, _ = walk(api, "/api/v1/rewards", {"limit": limit})
    assert [i["id"] for i in anonymous] == [i["id"] for i in items]
    assert {(i["eligible"], i["affordable"]) for i in anonymous} == {(None, None)}


def _token(payload) -> str:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _drf_token(querystring: str) -> str:
    return base64.b64encode(querystring.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "%%%",
        _token(b"not json"),
        _token([1, 2]),
        _token({"s": "nowhere", "k": [1]}),
        _token({"s": "available_codes"}),
        _token({"s": "available_codes", "k": []}),
        _token({"s": "available_codes", "k": [1, 2]}),
        _token({"s": "available_codes", "k": "1"}),
        _token({"s": "available_codes", "k": ["abc"]}),
        _token({"s": "available_codes", "k": [None]}),
        _token({"s": "available_codes", "k": [{"a": 1}]}),
        _token({"s": "redeemed", "k": ["not a time", 1]}),
        _token({"s": "redeemed", "k": ["2026-01-01T00:00:00", 1]}),  # no offset: ambiguous
    ],
)
def test_a_bad_member_rewards_cursor_is_the_contracts_404(api, holdings, cursor):
    url = f"/api/v1/members/{holdings['member'].external_id}/rewards"
    error = assert_error(api.get(url, {"cursor": cursor}), 404, "not_found")
    assert error["message"] == "Invalid cursor"


def test_a_key_outside_the_databases_dates_is_no_500(api, holdings):
    url = f"/api/v1/members/{holdings['member'].external_id}/rewards"
    cursor = _token({"s": "redeemed", "k": ["0001-01-01T00:00:00+14:00", 1]})  # before year 1 in UTC
    response = api.get(url, {"status": "redeemed", "cursor": cursor})
    # PostgreSQL has such dates (nothing is older: an empty last page); SQLite's adapter cannot convert it.
    if response.status_code == 200:
        assert response.json() == {"results": [], "next": None}
    else:
        assert_error(response, 404, "not_found")


def test_a_cursor_is_bound_to_its_status_filter(api, holdings):
    url = f"/api/v1/members/{holdings['member'].external_id}/rewards"
    cursor = _cursor_of(api.get(url, {"status": "available", "limit": 1}))
    assert_error(api.get(url, {"status": "redeemed", "cursor": cursor}), 404, "not_found")
    assert api.get(url, {"status": "available", "cursor": cursor}).status_code == 200


def test_an_out_of_range_key_is_past_the_end_not_an_error(api, holdings):
    url = f"/api/v1/members/{holdings['member'].external_id}/rewards"
    response = api.get(url, {"status": "expired", "cursor": _token({"s": "expired_codes", "k": [-(10**30)]})})
    assert response.json() == {"results": [], "next": None}
    response = api.get(url, {"status": "expired", "cursor": _token({"s": "expired_codes", "k": [10**30]})})
    assert [_ident(i) for i in response.json()["results"]] == holdings["lists"]["expired"]


@pytest.mark.parametrize(
    "cursor",
    ["not a cursor", _drf_token("p=abc"), _drf_token("p="), _drf_token("o=1&p=1.5"), _drf_token("o=-1")],
)
def test_a_bad_catalog_or_ledger_cursor_is_the_contracts_404(api, tenant, cursor):
    RewardFactory(tenant=tenant)
    assert_error(api.get("/api/v1/rewards", {"cursor": cursor}), 404, "not_found")
    _, _, member = earning_setup(tenant)
    assert_error(api.get(f"/api/v1/members/{member.external_id}/ledger", {"cursor": cursor}), 404, "not_found")


def test_a_tampered_ledger_position_is_the_contracts_404(api, tenant):
    _, _, member = earning_setup(tenant)
    for position in ("abc", "2026-13-45 00:00:00+00:00", "2026-01-01 00:00:00"):
        response = api.get(f"/api/v1/members/{member.external_id}/ledger", {"cursor": _drf_token(f"p={position}")})
        assert_error(response, 404, "not_found")


def test_another_tenants_key_sees_nothing(holdings, other_tenant):
    theirs = client_for(api_key_for(other_tenant)[1])
    member = holdings["member"]
    assert theirs.get("/api/v1/rewards", {"limit": 2}).json() == {"results": [], "next": None}
    assert_error(theirs.get(f"/api/v1/members/{member.external_id}/rewards"), 404, "member_not_found")
    assert_error(theirs.get("/api/v1/rewards", {"member": member.external_id}), 404, "member_not_found")
    # Our cursors name only positions: replayed with their key, they page through their (empty) lists.
    ours = client_for(api_key_for(member.tenant)[1])
    catalog_next = ours.get("/api/v1/rewards", {"limit": 2}).json()["next"]
    assert theirs.get(catalog_next).json() == {"results": [], "next": None}
    their_member = MemberFactory(tenant=other_tenant)
    cursor = _cursor_of(ours.get(f"/api/v1/members/{member.external_id}/rewards", {"limit": 2}))
    response = theirs.get(f"/api/v1/members/{their_member.external_id}/rewards", {"cursor": cursor})
    assert response.json() == {"results": [], "next": None}


# Key lookup, member, available codes, promotions, balance, tiers, catalog, redeemed lines, expired codes,
# plus the key's last-used time (written at most once a minute; the first call of a fresh key writes it).
MEMBER_REWARDS_QUERIES = 9 + 1
# Key lookup, member, balance, tiers, the page, plus the key's last-used time.
CATALOG_QUERIES = 5 + 1


@pytest.mark.postgres
def test_a_page_is_a_constant_number_of_queries_whatever_its_size(
    holdings, tenant, frozen, django_assert_max_num_queries
):
    member = holdings["member"]
    discount = CampaignFactory(tenant=tenant)
    for _ in range(40):
        _publish(member, discount)
        _publish(member, discount, expires_at=PAST)
        RewardFactory(tenant=tenant, points_cost=100)
    url = f"/api/v1/members/{member.external_id}/rewards"
    for limit in (5, 100):  # 136 items in all
        client = client_for(api_key_for(tenant)[1])
        with django_assert_max_num_queries(MEMBER_REWARDS_QUERIES):
            response = client.get(url, {"limit": limit})
        assert response.status_code == 200 and len(response.json()["results"]) == limit
    # The last page walks through every section after the cursor's one: still one query per section.
    client = client_for(api_key_for(tenant)[1])
    with django_assert_max_num_queries(MEMBER_REWARDS_QUERIES):
        response = client.get(url, {"limit": 200, "cursor": _cursor_of(response)})
    assert response.status_code == 200 and len(response.json()["results"]) == 36 and response.json()["next"] is None
    for limit in (5, 200):
        client = client_for(api_key_for(tenant)[1])
        with django_assert_max_num_queries(CATALOG_QUERIES):
            response = client.get("/api/v1/rewards", {"member": member.external_id, "limit": limit})
        assert response.status_code == 200 and len(response.json()["results"]) == min(limit, 47)


def _cursor_of(response) -> str:
    return parse_qs(urlsplit(response.json()["next"]).query)["cursor"][0]


def test_a_tier_restricted_reward_is_listed_only_to_its_tiers(api, holdings, tenant):
    member = holdings["member"]
    url = f"/api/v1/members/{member.external_id}/rewards"
    platinum = str(holdings["platinum_only"].pk)
    assert ("reward", platinum) not in [_ident(i) for i in walk(api, url, {"status": "available"})[0]]
    program = MemberTier.objects.get(member=member).program
    MemberTier.objects.filter(member=member).update(tier=TierFactory(program=program, code="platinum"))
    listed = [_ident(i) for i in walk(api, url, {"status": "available"})[0]]
    assert ("reward", platinum) in listed
    assert ("reward", str(holdings["catalog"][4].pk)) not in listed  # gold_only: no longer gold


@pytest.mark.parametrize("limit", ["abc", "0", "-3", "1.5", ""])
@pytest.mark.parametrize("list_path", ["rewards", "ledger", "catalog"])
def test_a_limit_that_is_not_a_whole_number_from_1_is_a_400(api, holdings, limit, list_path):
    member = holdings["member"]
    url = {
        "rewards": f"/api/v1/members/{member.external_id}/rewards",
        "ledger": f"/api/v1/members/{member.external_id}/ledger",
        "catalog": "/api/v1/rewards",
    }[list_path]
    response = api.get(url, {"limit": limit})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and "limit" in error["details"]


def test_a_limit_above_the_maximum_answers_the_maximum(api, holdings, tenant):
    for _ in range(205):
        RewardFactory(tenant=tenant, points_cost=10)
    response = api.get("/api/v1/rewards", {"limit": 1000})
    assert response.status_code == 200 and len(response.json()["results"]) == 200
