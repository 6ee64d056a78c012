import datetime as dt

import pytest

from common.errors import ApplicationError
from loyalty.services.earning import custom_event_record
from members.models import Segment
from members.selectors import CRITERIA, segment_members
from members.services import segment_declare, segment_upload_static
from rewards.services.checkout import order_checkout
from tests.factories import MemberFactory, ProgramFactory

pytestmark = pytest.mark.django_db


def test_dynamic_segment_spent_at_least_in_window_and_lives_in_gb(tenant, other_tenant):
    ProgramFactory(tenant=tenant)
    gb_big, gb_small, fr_big = (
        MemberFactory(tenant=tenant, country="GB"),
        MemberFactory(tenant=tenant, country="GB"),
        MemberFactory(tenant=tenant, country="FR"),
    )
    MemberFactory(tenant=other_tenant, country="GB")
    now = dt.datetime.now(dt.UTC)
    for member, amount, days_ago in [(gb_big, "600.00", 10), (gb_big, "500.00", 100), (gb_small, "900.00", 400)]:
        order_checkout(
            tenant=tenant,
            member=member,
            order_id=f"{member.pk}-{days_ago}",
            amount=amount,
            currency=tenant.currency,
            items=[],
            occurred_at=now - dt.timedelta(days=days_ago),
        )
    order_checkout(tenant=tenant, member=fr_big, order_id="fr", amount="2000.00", currency="EUR", items=[])
    segment = segment_declare(
        tenant=tenant,
        code="gb-spenders",
        name="GB spenders",
        criteria={"country": ["GB"], "min_spend": "1000.00", "spend_days": 365},
    )
    assert list(segment_members(segment)) == [gb_big]


def test_event_and_attribute_criteria(tenant):
    ProgramFactory(tenant=tenant)
    vip = MemberFactory(tenant=tenant, attributes={"vip": True})
    MemberFactory(tenant=tenant, attributes={"vip": False})
    custom_event_record(tenant=tenant, member=vip, event="review_written", metadata={})
    segment = segment_declare(
        tenant=tenant,
        code="vip-reviewers",
        name="VIP reviewers",
        criteria={"attributes": {"vip": True}, "event": {"name": "review_written", "days": 30}},
    )
    assert list(segment_members(segment)) == [vip]


@pytest.mark.parametrize(
    ("criteria", "details"),
    [
        ({"countri": ["GB"]}, {"countri": "unknown criterion; use " + ", ".join(CRITERIA)}),
        (
            {"country": "GB", "tiers": ["gold", 1]},
            {"country": "must be a list of texts", "tiers": "must be a list of texts"},
        ),
        ({"attributes": None}, {"attributes": "required"}),
        ({"marketing_consent": "yes"}, {"marketing_consent": "must be true or false"}),
        ({"min_spend": "lots"}, {"min_spend": "must be a decimal number"}),
        ({"spend_days": 0}, {"spend_days": "must be a whole number >= 1"}),
        ({"spend_days": 10**12}, {"spend_days": "must be a whole number <= 36500"}),  # then an overflow
        ({"min_spend": "1e30"}, {"min_spend": "must be a decimal number <= 999999999999.99"}),
        ({"event": {"name": "review_written", "days": 10**12}}, {"event.days": "must be a whole number <= 36500"}),
        ({"event": {"name": "review_written", "days": "a week"}}, {"event.days": "must be a whole number >= 1"}),
        ({"event": "review_written"}, {"event": 'must be an object like {"name": "review_written", "days": 30}'}),
        (["GB"], {"criteria": "must be an object"}),
    ],
)
def test_bad_criteria_are_refused_with_each_criterion_and_its_message(tenant, criteria, details):
    with pytest.raises(ApplicationError) as exc:
        segment_declare(tenant=tenant, code="x", name="X", criteria=criteria)
    assert (exc.value.code, exc.value.status, exc.value.details) == ("invalid_segment", 400, details)
    assert not Segment.objects.exists()


def test_static_list_upload(tenant):
    a, b = MemberFactory(tenant=tenant), MemberFactory(tenant=tenant)
    segment = segment_declare(tenant=tenant, code="list", name="List", kind="static")
    result = segment_upload_static(segment=segment, external_ids=[a.external_id, "ghost"])
    assert result == {"added": 1, "unknown": ["ghost"]}
    segment_upload_static(segment=segment, external_ids=[b.external_id])
    assert list(segment_members(segment)) == [b]


def test_segment_upload_command(tenant, tmp_path):
    from django.core.management import call_command

    a = MemberFactory(tenant=tenant)
    path = tmp_path / "list.csv"
    path.write_text(f"external_id\n{a.external_id}\nghost\n")
    call_command("segment_upload", tenant.slug, "vip-list", str(path), "--name", "VIP list")
    segment = Segment.objects.get(code="vip-list")
    assert segment.kind == "static" and list(segment_members(segment)) == [a]


def test_member_segments_lists_static_and_dynamic_segments_in_two_queries(tenant, django_assert_num_queries):
    from members.models import SegmentMember
    from members.selectors import member_segments

    member = MemberFactory(tenant=tenant, country="GB")
    listed = Segment.objects.create(tenant=tenant, code="listed", name="Listed", kind="static")
    Segment.objects.create(tenant=tenant, code="unlisted", name="Unlisted", kind="static")
    SegmentMember.objects.create(segment=listed, member=member)
    with django_assert_num_queries(1):  # static lists only: one query
        assert member_segments(member) == ["listed"]
    for code, country in (("brits", "GB"), ("french", "FR"), ("also-brits", "GB")):
        Segment.objects.create(tenant=tenant, code=code, name=code, criteria={"country": [country]})
    with django_assert_num_queries(2):  # whatever the number of dynamic segments
        assert member_segments(member) == ["also-brits", "brits", "listed"]


def test_an_unknown_segment_kind_is_refused_in_the_same_shape(tenant):
    with pytest.raises(ApplicationError) as exc:
        segment_declare(tenant=tenant, code="x", name="X", kind="smart")
    assert (exc.value.code, exc.value.details) == ("invalid_segment", {"kind": "must be one of dynamic, static"})


def test_windows_stored_before_the_bounds_are_read_clamped(tenant):
    member = MemberFactory(tenant=tenant)
    criteria = {"min_spend": "0", "spend_days": 10**12, "event": {"name": "review_written", "days": 10**12}}
    segment = Segment.objects.create(tenant=tenant, code="old", name="Old", kind="dynamic", criteria=criteria)
    assert list(segment_members(segment)) == []
    custom_event_record(tenant=tenant, member=member, event="review_written")
    assert list(segment_members(segment)) == [member]
