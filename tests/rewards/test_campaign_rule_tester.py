"""The campaign console's "Test rule" page (rewards/admin/campaign_rule_tester.py)."""

import pytest
from django.urls import reverse

from tests.factories import CodeFactory, EngineMemberFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser():
    return UserFactory(is_superuser=True)


def test_rule_tester_against_a_member_and_a_sample_order(client, superuser, tenant):
    member = EngineMemberFactory(tenant=tenant, country="GB")
    code = CodeFactory(campaign__tenant=tenant, campaign__rule="member.country == 'GB' and order.amount >= 100")
    client.force_login(superuser)
    url = reverse("admin:campaigns_campaign_test_rule", args=[code.campaign_id])
    page = client.post(url, {"member": member.external_id, "order": '{"amount": "120.00"}'}).content.decode()
    assert "The rule holds." in page and "valid" in page
    page = client.post(url, {"member": member.external_id, "order": '{"amount": "20.00"}'}).content.decode()
    assert "The rule does not hold." in page
    page = client.post(url, {"member": "nobody", "order": '{"amount": "20.00"}'}).content.decode()
    assert "No member nobody" in page


def test_rule_tester_sees_the_context_validation_sees(client, superuser, tenant):
    from members.models import Segment

    Segment.objects.create(tenant=tenant, code="brits", name="Brits", criteria={"country": ["GB"]})
    member = EngineMemberFactory(tenant=tenant, country="GB")
    code = CodeFactory(campaign__tenant=tenant, campaign__rule="'brits' in member.segments and member.phone == null")
    client.force_login(superuser)
    url = reverse("admin:campaigns_campaign_test_rule", args=[code.campaign_id])
    page = client.post(url, {"member": member.external_id, "order": '{"amount": "20.00"}'}).content.decode()
    assert "The rule holds." in page  # the dynamic segment, and null for an empty phone, as in validation
    page = client.post(url, {"member": member.external_id, "order": '{"amount": "abc"}'}).content.decode()
    assert "The request is malformed." in page and "order.amount" in page  # what validation would answer


def test_rule_tester_says_why_a_stored_rule_past_the_limits_does_not_hold(client, superuser, tenant):
    member = EngineMemberFactory(tenant=tenant)
    code = CodeFactory(campaign__tenant=tenant, campaign__rule=" or ".join(["order.amount > 1"] * 60))
    client.force_login(superuser)
    url = reverse("admin:campaigns_campaign_test_rule", args=[code.campaign_id])
    page = client.post(url, {"member": member.external_id, "order": '{"amount": "20.00"}'}).content.decode()
    assert "The rule is too big: at most 300 terms" in page
