import pytest
import time_machine

from common import events
from common.errors import ApplicationError
from members.models import Member
from members.services import member_upsert

pytestmark = pytest.mark.django_db


@pytest.fixture
def published():
    seen = []

    def sink(tenant, event_type, data):
        seen.append((event_type, data))

    events._sinks.append(sink)
    yield seen
    events._sinks.remove(sink)


def test_create_then_update_by_external_id(tenant, published):
    member, created = member_upsert(
        tenant=tenant, external_id="c-42", email="a@b.example", name="Ada", country="gb", attributes={"vip": True}
    )
    assert created and member.country == "GB" and member.referral_code.startswith("ADA-")
    again, created = member_upsert(tenant=tenant, external_id="c-42", city="London")
    assert not created and again.pk == member.pk and again.city == "London" and again.email == "a@b.example"
    assert [e for e, _ in published] == ["member.created"]
    assert published[0][1]["external_id"] == "c-42"


def test_email_is_required_on_create(tenant):
    with pytest.raises(ApplicationError) as exc:
        member_upsert(tenant=tenant, external_id="c-1", name="No mail")
    assert exc.value.code == "invalid_member" and "email" in exc.value.details
    assert not Member.objects.exists()


@pytest.mark.parametrize(
    ("fields", "details"),
    [
        ({"email": "not-an-email"}, {"email": "must be a valid email address"}),
        ({"email": 5}, {"email": "must be a text"}),
        ({"email": "a@b.example", "country": "Narnia"}, {"country": "must be an ISO 3166 alpha-2 code such as GB"}),
        ({"email": "a@b.example", "birth_date": "30/04/1990"}, {"birth_date": "must be a date such as 1990-04-30"}),
        ({"email": "a@b.example", "birth_date": "1990-02-30"}, {"birth_date": "must be a date such as 1990-04-30"}),
        ({"email": "a@b.example", "attributes": [1]}, {"attributes": "must be an object"}),
        ({"email": "a@b.example", "marketing_consent": "yes"}, {"marketing_consent": "must be true or false"}),
        ({"email": "a@b.example", "name": "x" * 201}, {"name": "must be a text of at most 200 characters"}),
        ({"email": "a@b.example", "shoe_size": 44}, {"shoe_size": "unknown field"}),
        ({"email": "a@b.example", "referred_by": "nobody"}, {"referred_by": "no member with this id or code"}),
        (
            {"email": "x", "phone": 12, "hat": 1},
            {
                "hat": "unknown field",
                "email": "must be a valid email address",
                "phone": "must be a text of at most 40 characters",
            },
        ),
    ],
)
def test_bad_input_is_400_invalid_member_with_each_field_and_its_message(tenant, fields, details):
    with pytest.raises(ApplicationError) as exc:
        member_upsert(tenant=tenant, external_id="c-1", **fields)
    assert (exc.value.code, exc.value.status, exc.value.details) == ("invalid_member", 400, details)
    assert not Member.objects.exists()


@pytest.mark.parametrize("external_id", ["", "   ", "x" * 101, None])
def test_an_external_id_is_a_text_of_1_to_100_characters(tenant, external_id):
    with pytest.raises(ApplicationError) as exc:
        member_upsert(tenant=tenant, external_id=external_id, email="a@b.example")
    assert exc.value.code == "invalid_member" and list(exc.value.details) == ["external_id"]


def test_consent_change_is_time_stamped(tenant):
    import datetime as dt

    with time_machine.travel(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), tick=False):
        member, _ = member_upsert(tenant=tenant, external_id="c-1", email="a@b.example", marketing_consent=True)
    assert member.marketing_consent_changed_at == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with time_machine.travel(dt.datetime(2026, 2, 1, tzinfo=dt.UTC), tick=False):
        member, _ = member_upsert(tenant=tenant, external_id="c-1", marketing_consent=True)
        assert member.marketing_consent_changed_at == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        member, _ = member_upsert(tenant=tenant, external_id="c-1", marketing_consent=False)
    assert member.marketing_consent_changed_at == dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


def test_referred_by_external_id_or_referral_code_within_the_tenant(tenant, other_tenant):
    referrer, _ = member_upsert(tenant=tenant, external_id="r", email="r@b.example", name="Rita")
    by_id, _ = member_upsert(tenant=tenant, external_id="a", email="a@b.example", referred_by="r")
    by_code, _ = member_upsert(tenant=tenant, external_id="b", email="b@b.example", referred_by=referrer.referral_code)
    assert by_id.referred_by == referrer and by_code.referred_by == referrer
    with pytest.raises(ApplicationError):
        member_upsert(tenant=other_tenant, external_id="x", email="x@b.example", referred_by="r")


def test_referral_codes_are_unique(tenant):
    codes = {
        member_upsert(tenant=tenant, external_id=f"c-{n}", email=f"{n}@b.example", name="Ada")[0].referral_code
        for n in range(30)
    }
    assert len(codes) == 30
