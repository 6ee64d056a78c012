"""Automatic distributions: campaign triggers publish a code when something happens to a member."""

import datetime as dt
import threading
import time

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.db import connection
from django.urls import reverse
from guardian.shortcuts import assign_perm

from campaigns.models import Campaign, CampaignTrigger, Channel, Code, Publication, TriggerFiring
from campaigns.triggers import campaign_trigger_summary, triggers_run_daily
from loyalty.services.earning import custom_event_record
from members.models import Segment, SegmentMember
from members.services import member_upsert
from rewards.services.checkout import order_checkout
from tests.factories import (
    CampaignFactory,
    CodeFactory,
    MemberFactory,
    TenantFactory,
    TierFactory,
    UserFactory,
    earning_setup,
)

pytestmark = pytest.mark.django_db
UTC = dt.UTC


@pytest.fixture
def campaign(tenant):
    campaign = CampaignFactory(tenant=tenant)
    for _ in range(5):
        CodeFactory(campaign=campaign)
    return campaign


def trigger(campaign, kind, **fields):
    return CampaignTrigger.objects.create(tenant=campaign.tenant, campaign=campaign, kind=kind, **fields)


def consenting(tenant, **fields):
    return MemberFactory(tenant=tenant, marketing_consent=True, **fields)


def pay(tenant, member, order_id, amount="100.00"):
    return order_checkout(
        tenant=tenant, member=member, order_id=order_id, amount=amount, currency=tenant.currency, items=[]
    )


def firings(**filters):
    return list(TriggerFiring.objects.filter(**filters).order_by("pk").values_list("state", "reason"))


# --- event kinds --------------------------------------------------------------------------------


def test_member_joined_fires_once_and_emails_the_code(tenant, campaign, django_capture_on_commit_callbacks, mailoutbox):
    joined = trigger(campaign, "member_joined")
    with django_capture_on_commit_callbacks(execute=True):
        member, _ = member_upsert(tenant=tenant, external_id="c-1", email="c1@example.com", marketing_consent=True)
    [firing] = TriggerFiring.objects.filter(trigger=joined)
    assert (firing.member, firing.state, firing.reason) == (member, "published", "")
    assert firing.publication.member == member and firing.publication.channel == Channel.EMAIL
    assert [m.to for m in mailoutbox] == [["c1@example.com"]] and firing.publication.code.code in mailoutbox[0].body
    with django_capture_on_commit_callbacks(execute=True):
        member_upsert(tenant=tenant, external_id="c-1", name="Changed")  # an update is not a join
    assert TriggerFiring.objects.count() == 1 and Publication.objects.count() == 1


def test_tier_reached_fires_for_its_tier_only(tenant, campaign, django_capture_on_commit_callbacks):
    program, _rule, member = earning_setup(tenant)
    member.marketing_consent = member.email_consent = True
    member.save()
    TierFactory(program=program, code="silver", threshold=50)
    TierFactory(program=program, code="gold", threshold=500)
    gold = trigger(campaign, "tier_reached", tier_code="gold")
    with django_capture_on_commit_callbacks(execute=True):
        pay(tenant, member, "o-1", "60.00")  # silver
    assert not TriggerFiring.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        pay(tenant, member, "o-2", "600.00")  # gold
    assert firings(trigger=gold, member=member) == [("published", "")]


def test_first_and_nth_paid_order_fire_on_that_order(tenant, campaign, django_capture_on_commit_callbacks):
    member = consenting(tenant)
    first = trigger(campaign, "nth_order", order_number=1)
    third = trigger(CampaignFactory(tenant=tenant), "nth_order", order_number=3)
    CodeFactory(campaign=third.campaign)
    for n in range(1, 5):
        with django_capture_on_commit_callbacks(execute=True):
            pay(tenant, member, f"o-{n}")
    assert list(TriggerFiring.objects.filter(trigger=first).values_list("occurrence_key", "state")) == [
        ("order:o-1", "published")
    ]
    assert list(TriggerFiring.objects.filter(trigger=third).values_list("occurrence_key", "state")) == [
        ("order:o-3", "published")
    ]


def test_order_amount_fires_once_per_member_unless_every_time(tenant, campaign, django_capture_on_commit_callbacks):
    member = consenting(tenant)
    once = trigger(campaign, "order_amount", min_amount="50.00")
    every = trigger(CampaignFactory(tenant=tenant), "order_amount", min_amount="50.00", repeat="every_time")
    CodeFactory(campaign=every.campaign)
    for order_id, amount in (("small", "49.99"), ("big-1", "50.00"), ("big-2", "80.00")):
        with django_capture_on_commit_callbacks(execute=True):
            pay(tenant, member, order_id, amount)
    assert firings(trigger=once) == [("published", "")]
    # Every time: the second big order fires too; the member still holds the first code (one per campaign).
    assert firings(trigger=every) == [("published", ""), ("skipped", "already_holds_code")]
    assert Publication.objects.filter(campaign=every.campaign).count() == 1


def test_custom_event_fires_for_its_event_name(tenant, campaign, django_capture_on_commit_callbacks):
    earning_setup(tenant)  # the member's program: events are recorded against an account
    member = consenting(tenant)
    review = trigger(campaign, "custom_event", event_name="review_written")
    with django_capture_on_commit_callbacks(execute=True):
        custom_event_record(tenant=tenant, member=member, event="newsletter_subscribed")
        custom_event_record(tenant=tenant, member=member, event="review_written")
        custom_event_record(tenant=tenant, member=member, event="review_written")  # once per member: not again
    [firing] = TriggerFiring.objects.filter(trigger=review)
    assert firing.state == "published" and firing.occurrence_key.startswith("event:")


def test_without_email_consent_the_firing_is_skipped_with_its_reason(
    tenant, campaign, django_capture_on_commit_callbacks, mailoutbox
):
    trigger(campaign, "member_joined")
    with django_capture_on_commit_callbacks(execute=True):
        member_upsert(tenant=tenant, external_id="c-1", email="c1@example.com", marketing_consent=False)
    assert firings() == [("skipped", "no_email_consent")]
    assert not Publication.objects.exists() and not mailoutbox


def test_a_disabled_campaign_or_one_without_codes_skips_with_the_reason(tenant, django_capture_on_commit_callbacks):
    disabled = CampaignFactory(tenant=tenant, enabled=False)
    CodeFactory(campaign=disabled)
    empty = CampaignFactory(tenant=tenant)
    ended = CampaignFactory(tenant=tenant, ends_at=dt.datetime(2020, 1, 1, tzinfo=UTC))
    CodeFactory(campaign=ended)
    for campaign in (disabled, empty, ended):
        trigger(campaign, "member_joined")
    with django_capture_on_commit_callbacks(execute=True):
        member_upsert(tenant=tenant, external_id="c-1", email="c1@example.com", marketing_consent=True)
    got = dict(TriggerFiring.objects.values_list("campaign_id", "reason"))
    assert got == {disabled.pk: "campaign_disabled", empty.pk: "no_codes_left", ended.pk: "campaign_ended"}
    assert set(TriggerFiring.objects.values_list("state", flat=True)) == {"skipped"}
    assert not Publication.objects.exists()
    assert campaign_trigger_summary(empty) == {"published": 0, "skipped": 1, "reasons": {"no_codes_left": 1}}


def test_at_most_once_per_n_days(tenant, campaign, django_capture_on_commit_callbacks):
    member = consenting(tenant)
    weekly = trigger(campaign, "custom_event", event_name="visit", repeat="every_n_days", repeat_days=7)
    earning_setup(tenant)
    start = dt.datetime(2026, 3, 2, 12, tzinfo=UTC)
    for day in (0, 3, 8):
        with time_machine.travel(start + dt.timedelta(days=day), tick=False):
            # Each code expires the day after it is given, so the member holds none when the trigger may fire.
            Code.objects.filter(campaign=campaign, member=member).update(expires_at=start + dt.timedelta(days=day))
            with django_capture_on_commit_callbacks(execute=True):
                custom_event_record(tenant=tenant, member=member, event="visit")
    got = list(TriggerFiring.objects.filter(trigger=weekly).values_list("created_at", "state"))
    assert got == [(start, "published"), (start + dt.timedelta(days=8), "published")]


def test_a_failing_trigger_never_fails_the_order(tenant, campaign, monkeypatch, django_capture_on_commit_callbacks):
    """The listener only enqueues after commit: the order is recorded even when the trigger work breaks."""
    from campaigns import triggers

    def broken(**kwargs):
        raise RuntimeError("trigger bug")

    monkeypatch.setattr(triggers, "triggers_fire_for_event", broken)
    member = consenting(tenant)
    trigger(campaign, "nth_order", order_number=1)
    with pytest.raises(RuntimeError), django_capture_on_commit_callbacks(execute=True):  # eager: bugs surface
        result = pay(tenant, member, "o-1")
    assert result.created and result.order.pk is not None  # committed before the task ran


# --- daily kinds --------------------------------------------------------------------------------


def test_birthday_fires_on_the_tenants_local_date_once_a_year(campaign, django_capture_on_commit_callbacks):
    tenant = campaign.tenant
    tenant.time_zone = "Pacific/Auckland"  # UTC+12 in June: 13:00 UTC on the 14th is the 15th there
    tenant.save()
    today = consenting(tenant, birth_date=dt.date(1990, 6, 15))
    utc_today = consenting(tenant, birth_date=dt.date(1990, 6, 14))
    birthday = trigger(campaign, "birthday", repeat="every_time")
    with time_machine.travel(dt.datetime(2026, 6, 14, 13, tzinfo=UTC), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert triggers_run_daily(tenant_id=tenant.pk) == 1
        CampaignTrigger.objects.filter(pk=birthday.pk).update(checked_on=None)  # force a second check today
        assert triggers_run_daily(tenant_id=tenant.pk) == 0
    assert list(TriggerFiring.objects.values_list("member", "occurrence_key", "state")) == [
        (today.pk, "2026", "published")
    ]
    assert not TriggerFiring.objects.filter(member=utc_today).exists()
    Code.objects.filter(member=today).update(redeemed_count=1)  # last year's gift was used
    with time_machine.travel(dt.datetime(2027, 6, 14, 13, tzinfo=UTC), tick=False):
        assert triggers_run_daily(tenant_id=tenant.pk) == 1
    assert list(TriggerFiring.objects.filter(member=today).values_list("occurrence_key", flat=True)) == ["2026", "2027"]


def test_birthday_once_per_member_does_not_fire_the_next_year(campaign):
    tenant = campaign.tenant
    member = consenting(tenant, birth_date=dt.date(1990, 6, 15))
    trigger(campaign, "birthday")
    with time_machine.travel(dt.datetime(2026, 6, 15, 12, tzinfo=UTC), tick=False):
        assert triggers_run_daily(tenant_id=tenant.pk) == 1
    with time_machine.travel(dt.datetime(2027, 6, 15, 12, tzinfo=UTC), tick=False):
        assert triggers_run_daily(tenant_id=tenant.pk) == 0
    assert TriggerFiring.objects.filter(member=member).count() == 1


def test_segment_entry_fires_for_members_who_entered_since_the_last_run(campaign):
    tenant = campaign.tenant
    segment = Segment.objects.create(tenant=tenant, code="vip", name="VIP", kind=Segment.Kind.STATIC)
    already, newcomer = consenting(tenant), consenting(tenant)
    SegmentMember.objects.create(segment=segment, member=already)
    entered = trigger(campaign, "segment_entered", segment=segment, repeat="every_time")
    with time_machine.travel(dt.datetime(2026, 5, 1, 12, tzinfo=UTC), tick=False):
        assert triggers_run_daily(tenant_id=tenant.pk) == 0  # the first run only notes who is in already
    SegmentMember.objects.create(segment=segment, member=newcomer)
    SegmentMember.objects.filter(member=already).delete()
    with time_machine.travel(dt.datetime(2026, 5, 2, 12, tzinfo=UTC), tick=False):
        assert triggers_run_daily(tenant_id=tenant.pk) == 1
        assert triggers_run_daily(tenant_id=tenant.pk) == 0  # checked today already
    assert list(TriggerFiring.objects.filter(trigger=entered).values_list("member", "occurrence_key")) == [
        (newcomer.pk, "entered:2026-05-02")
    ]
    SegmentMember.objects.create(segment=segment, member=already)  # back in: an entry again
    with time_machine.travel(dt.datetime(2026, 5, 3, 12, tzinfo=UTC), tick=False):
        assert triggers_run_daily(tenant_id=tenant.pk) == 1
    assert TriggerFiring.objects.filter(trigger=entered, member=already).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_daily_run_twice_at_once_fires_once():
    tenant = TenantFactory(time_zone="America/New_York")
    campaign = CampaignFactory(tenant=tenant)
    for _ in range(12):
        CodeFactory(campaign=campaign)
    members = [consenting(tenant, birth_date=dt.date(1985, 3, 10)) for _ in range(10)]
    trigger(campaign, "birthday")
    start, results, errors = threading.Barrier(2), [], []

    def run():
        try:
            start.wait(timeout=10)
            results.append(triggers_run_daily(tenant_id=tenant.pk))
        except Exception as exc:  # asserted below
            errors.append(exc)
        finally:
            connection.close()

    with time_machine.travel(dt.datetime(2026, 3, 10, 15, tzinfo=UTC), tick=False):
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert not errors and sum(results) == len(members)
    assert TriggerFiring.objects.filter(state="published").count() == len(members)
    assert Publication.objects.count() == len(members)
    assert sorted(Publication.objects.values_list("member", flat=True)) == sorted(m.pk for m in members)


@pytest.mark.redis
@pytest.mark.postgres
def test_a_join_fires_its_trigger_through_a_real_worker(celery_worker_app):
    tenant = TenantFactory()
    campaign = CampaignFactory(tenant=tenant)
    CodeFactory(campaign=campaign)
    trigger(campaign, "member_joined")
    member, _ = member_upsert(tenant=tenant, external_id="w-1", email="w1@example.com", marketing_consent=True)
    deadline = time.monotonic() + 20
    while not TriggerFiring.objects.filter(member=member).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert firings(member=member) == [("published", "")]
    assert Publication.objects.get(member=member).channel == Channel.EMAIL


def test_the_sweep_queues_one_run_per_tenant_with_daily_triggers(campaign):
    from campaigns.tasks import daily_triggers_sweep

    member = consenting(campaign.tenant, birth_date=dt.date(2000, 1, 20))
    trigger(campaign, "birthday")
    trigger(campaign, "member_joined")
    trigger(CampaignFactory(tenant=TenantFactory()), "member_joined")  # no daily trigger: not queued
    with time_machine.travel(dt.datetime(2026, 1, 20, 12, tzinfo=UTC), tick=False):
        assert daily_triggers_sweep() == 1  # eager here: the tenant's run happened
    assert firings(member=member) == [("published", "")]


# --- the console --------------------------------------------------------------------------------


def marketer_of(tenant):
    user = UserFactory()
    user.groups.add(Group.objects.get(name="Marketer"))
    assign_perm("members.access_tenant", user, tenant)
    return user


def test_admin_lists_firings_of_own_tenants_filterable_in_constant_queries(
    client, campaign, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    tenant = campaign.tenant
    other = CampaignFactory(tenant=TenantFactory())
    CodeFactory(campaign=other)
    trigger(campaign, "member_joined")
    trigger(other, "member_joined")
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(4):
            member_upsert(tenant=tenant, external_id=f"c-{n}", email=f"c{n}@example.com", marketing_consent=n > 0)
        member_upsert(tenant=other.tenant, external_id="x-1", email="x@example.com", marketing_consent=True)
    marketer = marketer_of(tenant)
    Campaign.objects.filter(pk=campaign.pk).update(owner=marketer)  # a marketer opens the campaigns they own
    client.force_login(marketer)
    url = reverse("admin:campaigns_triggerfiring_changelist")
    with django_assert_max_num_queries(15):
        response = client.get(url, {"campaign__id__exact": campaign.pk, "state__exact": "skipped"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
    response = client.get(url)
    assert response.context["cl"].result_count == 4  # not the other tenant's
    page = client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])).content.decode()
    assert "Triggers: 3 published, 1 skipped" in page


def test_admin_refuses_a_trigger_missing_its_setting_and_saves_a_valid_one(client, campaign):
    client.force_login(marketer_of(campaign.tenant))
    url = reverse("admin:campaigns_campaigntrigger_add")
    data = {"campaign": campaign.pk, "kind": "custom_event", "enabled": "on", "repeat": "once", "event_name": ""}
    response = client.post(url, data)
    assert response.status_code == 200 and "required for a custom event trigger" in response.content.decode()
    assert not CampaignTrigger.objects.exists()
    response = client.post(url, {**data, "event_name": "review_written"})
    assert response.status_code == 302, response.content.decode()[:2000]
    saved = CampaignTrigger.objects.get()
    assert (saved.tenant, saved.event_name) == (campaign.tenant, "review_written")


def test_admin_refuses_a_campaign_of_another_tenant(client, campaign):
    foreign = CampaignFactory(tenant=TenantFactory())
    client.force_login(marketer_of(campaign.tenant))
    data = {"campaign": foreign.pk, "kind": "member_joined", "enabled": "on", "repeat": "once"}
    response = client.post(reverse("admin:campaigns_campaigntrigger_add"), data)
    assert response.status_code == 200 and not CampaignTrigger.objects.exists()


def test_segment_entry_of_a_dynamic_segment_follows_its_criteria(campaign):
    tenant = campaign.tenant
    segment = Segment.objects.create(tenant=tenant, code="fr", name="France", criteria={"country": ["FR"]})
    member = consenting(tenant, country="GB")
    trigger(campaign, "segment_entered", segment=segment)
    with time_machine.travel(dt.datetime(2026, 5, 1, 12, tzinfo=UTC), tick=False):
        assert triggers_run_daily(tenant_id=tenant.pk) == 0
    member.country = "FR"
    member.save()
    with time_machine.travel(dt.datetime(2026, 5, 2, 12, tzinfo=UTC), tick=False):
        assert triggers_run_daily(tenant_id=tenant.pk) == 1
    assert firings(member=member) == [("published", "")]


def test_support_agents_see_firings_but_cannot_add_triggers(client, campaign, django_capture_on_commit_callbacks):
    trigger(campaign, "member_joined")
    with django_capture_on_commit_callbacks(execute=True):
        member_upsert(tenant=campaign.tenant, external_id="c-1", email="c1@example.com", marketing_consent=True)
    agent = UserFactory()
    agent.groups.add(Group.objects.get(name="Support agent"))
    assign_perm("members.access_tenant", agent, campaign.tenant)
    client.force_login(agent)
    firing = TriggerFiring.objects.get()
    assert client.get(reverse("admin:campaigns_triggerfiring_change", args=[firing.pk])).status_code == 200
    assert client.get(reverse("admin:campaigns_campaigntrigger_changelist")).status_code == 200
    data = {"campaign": campaign.pk, "kind": "member_joined", "enabled": "on", "repeat": "once"}
    assert client.post(reverse("admin:campaigns_campaigntrigger_add"), data).status_code == 403
    assert CampaignTrigger.objects.count() == 1


def test_admin_trigger_list_is_a_constant_number_of_queries_and_checks_tier_codes(
    client, campaign, django_assert_max_num_queries
):
    for kind, fields in (("member_joined", {}), ("custom_event", {"event_name": "x"}), ("birthday", {})):
        trigger(campaign, kind, **fields)
    client.force_login(marketer_of(campaign.tenant))
    with django_assert_max_num_queries(12):
        response = client.get(reverse("admin:campaigns_campaigntrigger_changelist"))
    assert response.status_code == 200 and response.context["cl"].result_count == 3
    data = {"campaign": campaign.pk, "kind": "tier_reached", "tier_code": "platinum", "enabled": "on", "repeat": "once"}
    response = client.post(reverse("admin:campaigns_campaigntrigger_add"), data)
    assert response.status_code == 200 and "no tier of the tenant has this code" in response.content.decode()
    TierFactory(program__tenant=campaign.tenant, code="platinum")
    assert client.post(reverse("admin:campaigns_campaigntrigger_add"), data).status_code == 302


# --- what a paid order costs a tenant without triggers ------------------------------------------------------


def _trigger_tasks(callbacks) -> int:
    from functools import partial

    from campaigns.tasks import fire_event_triggers
    from common.side_effects import publish_task

    return sum(
        1 for c in callbacks if isinstance(c, partial) and c.func is publish_task and c.args[0] is fire_event_triggers
    )


def test_a_paid_order_queues_a_trigger_task_only_for_a_tenant_with_order_triggers(
    tenant, campaign, django_capture_on_commit_callbacks, settings
):
    settings.TRIGGER_KINDS_SECONDS = 60
    _, _, member = earning_setup(tenant)
    with django_capture_on_commit_callbacks() as callbacks:
        pay(tenant, member, "o-1")
    assert _trigger_tasks(callbacks) == 0  # no trigger at all
    trigger(campaign, "custom_event", event_name="review_written")
    with django_capture_on_commit_callbacks() as callbacks:
        pay(tenant, member, "o-2")
    assert _trigger_tasks(callbacks) == 0  # a trigger, but none that a paid order fires
    trigger(campaign, "order_amount", min_amount="50.00")  # saved in this process: known at once
    with django_capture_on_commit_callbacks() as callbacks:
        pay(tenant, member, "o-3")
    assert _trigger_tasks(callbacks) == 1


def test_a_trigger_saved_by_another_process_is_heard_within_trigger_kinds_seconds(
    tenant, campaign, django_capture_on_commit_callbacks, settings
):
    settings.TRIGGER_KINDS_SECONDS = 60
    _, _, member = earning_setup(tenant)
    pay(tenant, member, "o-1")  # this process now knows the tenant has no order trigger
    # Another process's save: no signal here (bulk_create sends none).
    CampaignTrigger.objects.bulk_create(
        [CampaignTrigger(tenant=tenant, campaign=campaign, kind="nth_order", order_number=1)]
    )
    with django_capture_on_commit_callbacks() as callbacks:
        pay(tenant, member, "o-2")
    assert _trigger_tasks(callbacks) == 0  # within the time this process keeps what it read
    with time_machine.travel(dt.datetime.now(UTC) + dt.timedelta(seconds=61)):
        with django_capture_on_commit_callbacks() as callbacks:
            pay(tenant, member, "o-3")
    assert _trigger_tasks(callbacks) == 1
