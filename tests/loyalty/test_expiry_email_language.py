"""The points-expiring warning speaks the member's language: their tenant's locale, else English."""

import datetime as dt

import pytest
import time_machine
from django.core import mail

from loyalty.tasks import send_expiry_warnings
from rewards.services.checkout import order_checkout
from tests.factories import EarningRuleFactory, MemberFactory, ProgramFactory, TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC


@pytest.mark.parametrize(
    ("locale", "language", "subject", "body"),
    [
        (
            "de",
            "de",
            "1.234 Sterne verfallen bald",
            "Hallo Ada,\n\n1.234 Sterne aus Club verfallen am 31. Januar 2026.\n",
        ),
        (
            "TR",
            "tr",
            "1.234 Sterne yakında sona erecek",
            "Merhaba Ada,\n\nClub kapsamındaki 1.234 Sterne 31 Ocak 2026 tarihinde sona erecek.\n",
        ),
        ("fr_FR", "en", "1,234 Sterne expire soon", "Hello Ada,\n\n1,234 Sterne of Club expire on Jan. 31, 2026.\n"),
    ],
)
def test_the_expiry_warning_is_in_the_tenants_language(
    locale, language, subject, body, django_capture_on_commit_callbacks
):
    tenant = TenantFactory(locale=locale)
    program = ProgramFactory(
        tenant=tenant,
        name="Club",
        points_name="Sterne",
        expiry_policy={"policy": "days", "days": 30},
        expiry_warning_days=7,
    )
    EarningRuleFactory(program=program)
    member = MemberFactory(tenant=tenant, name="Ada", email="ada@example.com", email_consent=True)
    with time_machine.travel(dt.datetime(2026, 1, 1, tzinfo=UTC), tick=False):
        order_checkout(tenant=tenant, member=member, order_id="a", amount="1234.00", currency=tenant.currency, items=[])
    with time_machine.travel(dt.datetime(2026, 1, 26, tzinfo=UTC), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert send_expiry_warnings.delay().get() == {"warnings": 1}
    (email,) = mail.outbox
    assert (email.subject, email.body) == (subject, body)
    assert email.extra_headers["Content-Language"] == language
