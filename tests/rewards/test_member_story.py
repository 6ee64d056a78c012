"""The support console: find a member without an id (or learn about a code), and read their whole story."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm

from campaigns.services import publication_create
from loyalty import ledger
from loyalty.ledger.adjustments import points_adjust
from loyalty.models import LedgerEntry
from rewards.models import Redemption, RedemptionCode
from rewards.services.checkout import order_checkout
from tests.factories import (
    CampaignFactory,
    CodeFactory,
    MemberFactory,
    ProgramFactory,
    TenantFactory,
    TierFactory,
    UserFactory,
    earning_setup,
    form_token,
)

pytestmark = pytest.mark.django_db

FIND = reverse("admin:members_member_find")


def agent_of(*tenants, role="Support agent"):
    user = UserFactory()
    user.groups.add(Group.objects.get(name=role))
    for tenant in tenants:
        assign_perm("members.access_tenant", user, tenant)
    return user


def story_url(member):
    return reverse("admin:members_member_story", args=[member.pk])


@pytest.fixture
def shop(tenant):
    program, _rule, member = earning_setup(tenant)
    member.phone = "+33 6 12 34 56 78"
    member.name = "Ada Lovelace"
    member.save()
    campaign = CampaignFactory(tenant=tenant, name="Spring sale", discount={"type": "amount", "value": "5.00"})
    held = CodeFactory(campaign=campaign, code="HELD-1")
    publication_create(tenant=tenant, campaign=campaign, member=member)
    held.refresh_from_db()
    used = CodeFactory(campaign=campaign, code="USED-1")
    order_checkout(tenant=tenant, member=member, order_id="o-1", amount="40.00", currency="EUR", codes=[used.code])
    return member, campaign


@pytest.mark.parametrize(
    "query",
    [
        "m-{n}@example.com",
        "M-{n}@EXAMPLE.COM",
        "m-{n}",
        "+33 6 12 34 56 78",
        "0612345678",
        "ada love",
        "{ref}",
        "used-1",
    ],
)
def test_an_agent_finds_a_member_by_anything_they_know(client, tenant, shop, query):
    member, _campaign = shop
    held_code = member.publications.get().code.code
    client.force_login(agent_of(tenant))
    query = query.format(n=member.external_id.removeprefix("m-"), ref=member.referral_code.lower())
    for text in (query, held_code):
        page = client.get(FIND, {"q": text})
        assert page.status_code == 200
        assert page.context["result"].members == [member], text
        assert story_url(member) in page.content.decode()


def test_the_search_stays_within_the_agents_tenants(client, tenant, shop):
    member, _campaign = shop
    other = TenantFactory()
    stranger = MemberFactory(tenant=other, email=member.email.upper())
    client.force_login(agent_of(tenant))
    assert client.get(FIND, {"q": member.email}).context["result"].members == [member]
    client.force_login(agent_of(other))
    assert client.get(FIND, {"q": member.email}).context["result"].members == [stranger]
    assert client.get(FIND, {"q": "HELD-1"}).context["result"].members == []
    assert client.get(story_url(member)).status_code == 404  # not a tenant of theirs: as if it did not exist


def test_a_code_that_no_member_holds_names_its_campaign_and_state(client, tenant, shop):
    _member, campaign = shop
    CodeFactory(campaign=campaign, code="FREE-9", usage_limit=3)
    client.force_login(agent_of(tenant))
    page = client.get(FIND, {"q": "free-9"})
    result = page.context["result"]
    assert result.members == [] and [f.code.code for f in result.codes] == ["FREE-9"]
    assert result.codes[0].uses_left == 3 and result.codes[0].campaign_state == "active"
    assert "Spring sale" in page.content.decode() and "Coupon finder" in page.content.decode()
    assert client.get(FIND, {"q": "NOTHING-AT-ALL"}).context["result"].codes == []


def test_the_story_shows_points_tier_progress_codes_redemptions_and_who_changed_what(client, tenant, shop):
    member, _campaign = shop
    program = ledger.account_for(member=member).program
    TierFactory(program=program, code="silver", name="Silver", threshold=0)
    TierFactory(program=program, code="gold", name="Gold", threshold=100)
    agent = agent_of(tenant)
    points_adjust(member=member, points=25, reason="apology for the late parcel", staff_user=agent)
    client.force_login(agent)
    page = client.get(story_url(member))
    assert page.status_code == 200
    story = page.context["story"]
    account = story["account"]
    assert story["points"]["balance"] == account.balance == 35 + 25  # 35 earned on 35.00 paid, 25 adjusted
    assert story["tier"]["qualifying_points"] == 35 and story["tier"]["next_tier"].code == "gold"
    assert story["tier"]["to_next"] == 65 and story["tier"]["due"].code == "silver"  # moves up when evaluated
    body = page.content.decode()
    for text in ("apology for the late parcel", agent.username, "HELD-1", "USED-1", "o-1", "65 more to reach Gold"):
        assert text in body, text
    assert reverse("admin:members_member_adjust", args=[member.pk]) in body  # the agent may adjust
    assert reverse("admin:rewards_redemption_rollback", args=[Redemption.objects.get().pk]) in body
    filtered = client.get(story_url(member), {"kind": "adjust"}).context["story"]["pages"]["ledger"]
    assert [e.kind for e in filtered] == ["adjust"]


def test_an_analyst_reads_the_story_but_gets_no_action_links(client, tenant, shop):
    member, _campaign = shop
    client.force_login(agent_of(tenant, role="Analyst"))
    body = client.get(story_url(member)).content.decode()
    assert "Adjust points" not in body and "roll back" not in body


def test_the_story_is_a_constant_number_of_queries_on_a_long_history(client, tenant):
    program = ProgramFactory(tenant=tenant)
    agent = agent_of(tenant)
    client.force_login(agent)

    def member_with(entries: int, redemptions: int):
        member = MemberFactory(tenant=tenant)
        account = ledger.account_for(member=member, program=program)
        now = timezone.now()
        LedgerEntry.objects.bulk_create(
            LedgerEntry(
                tenant=tenant,
                account=account,
                kind=LedgerEntry.Kind.ADJUST,
                points=1,
                balance_after=i + 1,
                reason="history",
                created_at=now - dt.timedelta(minutes=i),
            )
            for i in range(entries)
        )
        campaign = CampaignFactory(tenant=tenant)
        made = Redemption.objects.bulk_create(
            Redemption(tenant=tenant, member=member, order_id=f"{member.pk}-{i}", order_amount=10, total=10)
            for i in range(redemptions)
        )
        RedemptionCode.objects.bulk_create(
            RedemptionCode(
                tenant=tenant, redemption=r, campaign=campaign, member=member, discount=1, order_amount=Decimal(10)
            )
            for r in made
        )
        return member

    counts = []
    for entries, redemptions in ((3, 2), (10_000, 1_000)):
        member = member_with(entries, redemptions)
        with CaptureQueriesContext(connection) as queries:
            page = client.get(story_url(member), {"ledger_page": 2, "redemptions_page": 3})
        assert page.status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 40, counts
    assert page.context["story"]["pages"]["ledger"].paginator.count == 10_000
    assert len(page.context["story"]["pages"]["redemptions"]) == 25


def test_an_agent_gives_an_apology_coupon_from_a_campaign_they_may_use(
    client, tenant, mailoutbox, django_capture_on_commit_callbacks
):
    member = MemberFactory(tenant=tenant, marketing_consent=True)
    allowed = CampaignFactory(tenant=tenant, name="Sorry 10")
    CodeFactory(campaign=allowed, code="SORRY-1")
    other = CampaignFactory(tenant=tenant, name="VIP only")
    CodeFactory(campaign=other, code="VIP-1")
    agent = agent_of(tenant)
    assign_perm("campaigns.use_campaign", agent, allowed)
    client.force_login(agent)
    url = reverse("admin:members_member_apology", args=[member.pk])
    page = client.get(url)
    assert list(page.context["form"].fields["campaign"].queryset) == [allowed]
    # A direct POST with a campaign the agent may not use is refused like the missing choice.
    refused = client.post(
        url, {"campaign": other.pk, "reason": "late parcel", "confirm": "on", "form_token": form_token()}
    )
    assert refused.status_code == 200 and not member.publications.exists()
    assert (
        not client.post(url, {"campaign": allowed.pk, "reason": " ", "confirm": "on", "form_token": form_token()})
        .context["form"]
        .is_valid()
    )
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            url, {"campaign": allowed.pk, "reason": "late parcel", "confirm": "on", "form_token": form_token()}
        )
    assert done.status_code == 302 and done["Location"].endswith("#codes")
    publication = member.publications.get()
    assert (publication.code.code, publication.channel) == ("SORRY-1", "support")
    assert len(mailoutbox) == 1 and "SORRY-1" in mailoutbox[0].body and mailoutbox[0].to == [member.email]
    story = client.get(story_url(member)).content.decode()
    assert "SORRY-1" in story and "Apology coupon SORRY-1 of Sorry 10: late parcel" in story
    assert agent.username in story


def test_no_email_without_consent_and_no_page_without_the_right(
    client, tenant, mailoutbox, django_capture_on_commit_callbacks
):
    member = MemberFactory(tenant=tenant, marketing_consent=False)
    campaign = CampaignFactory(tenant=tenant)
    CodeFactory(campaign=campaign, code="QUIET-1")
    marketer = agent_of(tenant, role="Marketer")  # runs campaigns: may use every campaign of the tenant
    client.force_login(marketer)
    url = reverse("admin:members_member_apology", args=[member.pk])
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(
            url, {"campaign": campaign.pk, "reason": "goodwill", "confirm": "on", "form_token": form_token()}
        )
    assert answer.status_code == 302
    assert member.publications.get().code.code == "QUIET-1" and mailoutbox == []
    client.force_login(agent_of(tenant, role="Analyst"))
    assert client.get(url).status_code == 403


def test_an_agent_suspends_and_reactivates_a_member_with_a_reason(client, tenant):
    member = MemberFactory(tenant=tenant)
    agent = agent_of(tenant)
    client.force_login(agent)
    url = reverse("admin:members_member_status", args=[member.pk])
    assert not client.post(url, {"reason": "", "confirm": "on", "form_token": form_token()}).context["form"].is_valid()
    assert (
        client.post(url, {"reason": "chargeback fraud", "confirm": "on", "form_token": form_token()}).status_code == 302
    )
    member.refresh_from_db()
    assert member.is_suspended and member.status_reason == "chargeback fraud"
    story = client.get(story_url(member)).content.decode()
    assert "Suspended since" in story and "Suspended: chargeback fraud" in story
    assert member.history.first().history_user == agent
    assert (
        client.post(url, {"reason": "cleared by the bank", "confirm": "on", "form_token": form_token()}).status_code
        == 302
    )
    member.refresh_from_db()
    assert member.status == "active"
    client.force_login(agent_of(tenant, role="Analyst"))  # may read, may not change
    assert client.post(url, {"reason": "x", "confirm": "on", "form_token": form_token()}).status_code == 403
    member.refresh_from_db()
    assert member.status == "active"


def test_an_agent_emails_a_held_code_again(client, tenant, mailoutbox, django_capture_on_commit_callbacks):
    member = MemberFactory(tenant=tenant, marketing_consent=True)
    campaign = CampaignFactory(tenant=tenant)
    CodeFactory(campaign=campaign, code="AGAIN-1")
    publication, _ = publication_create(tenant=tenant, campaign=campaign, member=member)
    client.force_login(agent_of(tenant))
    url = reverse("admin:members_member_resend", args=[member.pk, publication.pk])
    assert "Email again" in client.get(story_url(member)).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url).status_code == 302
    assert len(mailoutbox) == 1 and "AGAIN-1" in mailoutbox[0].body
    other = MemberFactory(tenant=tenant)
    wrong = reverse("admin:members_member_resend", args=[other.pk, publication.pk])
    assert client.post(wrong).status_code == 404  # not this member's code
