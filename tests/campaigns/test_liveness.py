"""`campaigns.sql.live()` (the SQL that selects live campaigns) and `campaigns.windows.schedule_refusal`
(the same rule on a loaded row, with its reason) give the same verdict, at every boundary, on both vendors."""

import datetime as dt
import itertools

import pytest

from campaigns import sql
from campaigns.selectors import campaign_status
from campaigns.windows import live_refusal, schedule_refusal
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 4, 12, 0, 30, 250000, tzinfo=dt.UTC)
US = dt.timedelta(microseconds=1)
# Around NOW to the microsecond, at whole seconds, in another time zone: SQLite compares the text.
MOMENTS = [
    None,
    NOW - dt.timedelta(days=1),
    NOW - US,
    NOW,
    NOW.astimezone(dt.timezone(dt.timedelta(hours=-5))),
    NOW + US,
    NOW.replace(microsecond=0),
    NOW.replace(microsecond=0) + dt.timedelta(seconds=1),
]


def test_the_sql_and_the_python_rule_select_the_same_campaigns(tenant):
    campaigns = [
        CampaignFactory(tenant=tenant, type="referral", enabled=enabled, starts_at=starts, ends_at=ends)
        for enabled, starts, ends in itertools.product([True, False], MOMENTS, MOMENTS)
    ]
    selected = {c.pk for c in sql.live_campaigns(tenant.pk, "referral", NOW)}
    by_python = {c.pk for c in campaigns if schedule_refusal(c, NOW) is None}
    assert selected == by_python
    assert 0 < len(selected) < len(campaigns)
    # The campaign document's status says the same.
    assert {c.pk for c in campaigns if campaign_status(c, NOW) in ("active", "exhausted")} == selected


def test_active_hours_are_the_python_rules_part(tenant):
    campaign = CampaignFactory(tenant=tenant, active_hours=[{"from": "20:00", "to": "22:00"}])
    assert schedule_refusal(campaign, NOW) is None
    assert live_refusal(campaign, NOW, tenant.tz)[0] == "outside_active_hours"
