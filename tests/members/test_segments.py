import datetime as dt

import pytest

from common.errors import ApplicationError
from loyalty.services.earning import custom_event_record
from members.models import Segment
from members.selectors import segment_members
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


def test_bad_criteria_are_refused(tenant):
    with pytest.raises(ApplicationError) as exc:
        segment_declare(tenant=tenant, code="x", name="X", criteria={"countri": ["GB"]})
    assert "countri" in exc.value.details
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
