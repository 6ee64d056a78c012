"""Four eyes: an adjustment above the agent's limit waits for a second person, and runs exactly once."""

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from common.errors import ApplicationError
from loyalty import ledger
from loyalty.models import LedgerEntry
from rewards.models import ApprovalRequest
from rewards.services.approvals import adjustment_apply_or_request, approval_decide
from tests.concurrency.test_ledger_concurrency import run_threads
from tests.factories import MemberFactory, ProgramFactory, TenantFactory, form_token
from tests.rewards.test_member_story import agent_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(tenant):
    ProgramFactory(tenant=tenant)
    member = MemberFactory(tenant=tenant)
    agent = agent_of(tenant)
    lead = agent_of(tenant, role="Support lead")
    lead.email = "lead@example.com"
    lead.save()
    return member, agent, lead


def test_above_the_limit_the_adjustment_waits_and_approvers_are_told(
    client, tenant, people, mailoutbox, django_capture_on_commit_callbacks
):
    member, agent, lead = people
    client.force_login(agent)
    url = reverse("admin:members_member_adjust", args=[member.pk])
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(
            url, {"points": 800, "reason": "lost parcel, big order", "form_token": form_token()}, follow=True
        )
    assert "a second person will approve or reject it" in answer.content.decode()
    request = ApprovalRequest.objects.get()
    assert (request.points, request.requested_by, request.state) == (800, agent, "pending")
    assert not LedgerEntry.objects.exists()
    assert [m.to for m in mailoutbox] == [["lead@example.com"]] and "+800" in mailoutbox[0].subject
    assert "request waits for your approval" not in client.get(reverse("admin:index")).content.decode()
    client.force_login(lead)
    assert "1 request waits for your approval" in client.get(reverse("admin:index")).content.decode()
    within = adjustment_apply_or_request(member=member, points=100, reason="small", staff_user=agent)
    assert within[0] is not None and within[1] is None  # within the limit: carried out at once


def test_a_second_person_approves_and_the_adjustment_runs_once_with_both_names(client, people):
    member, agent, lead = people
    _entry, request = adjustment_apply_or_request(member=member, points=800, reason="big order", staff_user=agent)
    client.force_login(lead)
    url = reverse("admin:rewards_approvalrequest_decide", args=[request.pk])
    assert client.post(url, {"comment": "checked the order", "approve": "1"}).status_code == 302
    request.refresh_from_db()
    assert (request.state, request.decided_by, request.comment) == ("approved", lead, "checked the order")
    entry = LedgerEntry.objects.get()
    assert (entry.points, entry.staff_user, entry.pk) == (800, agent, request.ledger_entry_id)
    assert f"approved by {lead.username}" in entry.reason
    assert ledger.account_for(member=member).balance == 800
    assert client.post(url, {"approve": "1"}).status_code == 302  # a second click: already decided
    assert LedgerEntry.objects.count() == 1


def test_the_requester_cannot_decide_their_own_request_not_even_in_the_database(client, people):
    member, agent, lead = people
    _entry, request = adjustment_apply_or_request(member=member, points=900, reason="x", staff_user=agent)
    with pytest.raises(ApplicationError) as refused:
        approval_decide(request=request, approver=agent, approve=True)
    assert refused.value.code in ("own_request", "forbidden")
    client.force_login(agent)
    url = reverse("admin:rewards_approvalrequest_decide", args=[request.pk])
    assert client.post(url, {"approve": "1"}).status_code == 403
    with pytest.raises(IntegrityError), transaction.atomic():
        ApprovalRequest.objects.filter(pk=request.pk).update(decided_by=agent, state="approved")
    lead_of_other = agent_of(TenantFactory(), role="Support lead")
    with pytest.raises(ApplicationError):
        approval_decide(request=request, approver=lead_of_other, approve=True)
    assert not LedgerEntry.objects.exists()


def test_a_rejection_changes_nothing_and_a_refused_execution_is_recorded(people):
    member, agent, lead = people
    _e, rejected = adjustment_apply_or_request(member=member, points=700, reason="x", staff_user=agent)
    assert approval_decide(request=rejected, approver=lead, approve=False, comment="no proof").state == "rejected"
    _e, too_much = adjustment_apply_or_request(member=member, points=-700, reason="fraud", staff_user=agent)
    failed = approval_decide(request=too_much, approver=lead, approve=True)
    assert failed.state == "failed" and failed.error
    assert not LedgerEntry.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_approvers_at_once_execute_it_once():
    tenant = TenantFactory()
    ProgramFactory(tenant=tenant)
    member = MemberFactory(tenant=tenant)
    agent = agent_of(tenant)
    leads = [agent_of(tenant, role="Support lead") for _ in range(8)]
    _e, request = adjustment_apply_or_request(member=member, points=1200, reason="race", staff_user=agent)

    def approve(i):
        return approval_decide(request=ApprovalRequest.objects.get(pk=request.pk), approver=leads[i], approve=True)

    outcomes, errors = run_threads(approve, n=8)
    assert len(outcomes) == 1 and len(errors) == 7
    assert all(isinstance(e, ApplicationError) and e.code == "already_decided" for e in errors)
    assert LedgerEntry.objects.filter(account__member=member).count() == 1
    assert ledger.account_for(member=member).balance == 1200


# --- apology coupons: beyond the agent's coupons of the day, a second person approves -----------------------


@pytest.fixture
def sorry(tenant, people):
    from guardian.shortcuts import assign_perm

    from loyalty.models import AdjustmentLimit
    from tests.factories import CampaignFactory, CodeFactory

    member, agent, lead = people
    AdjustmentLimit.objects.create(user=agent, per_action=500, per_day=2000, apologies_per_day=1)
    campaign = CampaignFactory(tenant=tenant, name="Sorry 10")
    for n in range(3):
        CodeFactory(campaign=campaign, code=f"SORRY-{n}")
    assign_perm("campaigns.use_campaign", agent, campaign)
    second = MemberFactory(tenant=tenant)
    return member, second, agent, lead, campaign


def test_the_second_apology_of_the_day_waits_and_approval_gives_the_code_once_with_both_names(
    client, sorry, mailoutbox, django_capture_on_commit_callbacks
):
    member, second, agent, lead, campaign = sorry
    client.force_login(agent)
    first = client.post(
        reverse("admin:members_member_apology", args=[member.pk]),
        {"campaign": campaign.pk, "reason": "late parcel", "confirm": "on", "form_token": form_token()},
    )
    assert first.status_code == 302 and member.publications.count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(
            reverse("admin:members_member_apology", args=[second.pk]),
            {"campaign": campaign.pk, "reason": "broken item", "confirm": "on", "form_token": form_token()},
            follow=True,
        )
    assert "a second person will approve or reject this one" in answer.content.decode()
    assert not second.publications.exists()
    request = ApprovalRequest.objects.get()
    assert (request.kind, request.campaign, request.points, request.state) == ("apology", campaign, 0, "pending")
    assert [m.to for m in mailoutbox] == [["lead@example.com"]] and "Sorry 10" in mailoutbox[0].subject

    client.force_login(lead)
    assert "apology coupon of Sorry 10" in client.get(reverse("admin:index")).content.decode()
    url = reverse("admin:rewards_approvalrequest_decide", args=[request.pk])
    assert client.post(url, {"comment": "ok", "approve": "1"}).status_code == 302
    assert client.post(url, {"approve": "1"}).status_code == 302  # a second click: already decided
    request.refresh_from_db()
    publication = second.publications.get()
    assert (request.state, request.decided_by, request.publication_id) == ("approved", lead, publication.pk)
    story = client.get(reverse("admin:members_member_story", args=[second.pk])).content.decode()
    assert publication.code.code in story
    assert f"Approved request {request.pk} of {agent.username}" in story and lead.username in story


def test_an_apology_request_is_refused_to_its_requester_and_a_rejection_gives_nothing(sorry):
    from rewards.services.approvals import apology_give_or_request

    member, second, agent, lead, campaign = sorry
    apology_give_or_request(campaign=campaign, member=member, staff_user=agent, reason="one")
    publication, _created, _emailed, request = apology_give_or_request(
        campaign=campaign, member=second, staff_user=agent, reason="two"
    )
    assert publication is None and request.kind == "apology"
    with pytest.raises(ApplicationError):
        approval_decide(request=request, approver=agent, approve=True)
    assert approval_decide(request=request, approver=lead, approve=False, comment="no").state == "rejected"
    assert not second.publications.exists()
    with pytest.raises(IntegrityError), transaction.atomic():  # an apology names its campaign, not points
        ApprovalRequest.objects.create(
            tenant=member.tenant, member=member, kind="apology", reason="x", requested_by=agent, points=5
        )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_apologies_at_once_cannot_both_pass_the_day_limit():
    from guardian.shortcuts import assign_perm

    from campaigns.services import apology_code_give
    from loyalty.models import AdjustmentLimit
    from tests.factories import CampaignFactory, CodeFactory

    tenant = TenantFactory()
    agent = agent_of(tenant)
    AdjustmentLimit.objects.create(user=agent, per_action=500, per_day=2000, apologies_per_day=3)
    campaign = CampaignFactory(tenant=tenant)
    for n in range(8):
        CodeFactory(campaign=campaign, code=f"RACE-{n}")
    assign_perm("campaigns.use_campaign", agent, campaign)
    members = [MemberFactory(tenant=tenant) for _ in range(8)]

    def give(i):
        return apology_code_give(campaign=campaign, member=members[i], staff_user=agent, reason="race")

    outcomes, errors = run_threads(give, n=8)
    assert len(outcomes) == 3 and len(errors) == 5
    assert all(isinstance(e, ApplicationError) and e.code == "apology_over_limit" for e in errors)
    assert campaign.publications.count() == 3
