"""The fold as beat runs it: `reports.tasks.fold_rollups` sent through Redis to a real Celery worker."""

import datetime as dt

import pytest

from reports.models import DailyOrders, DailyRefusals, OrderDiscount, RollupWatermark
from reports.rollups import rollups_recheck
from reports.selectors import Report, ReportFilters, ReportRange
from tests.reports import scenario
from tests.reports.scenario import FIRST, LAST, NOW


@pytest.mark.redis
@pytest.mark.postgres
def test_the_fold_task_runs_on_a_real_worker_and_the_figures_stay_exact(celery_worker_app, tenant):
    from config.tasks import ping
    from reports.tasks import fold_rollups

    h, names = scenario.build(tenant)
    h.refused(["rule_not_met"], scenario.at(3, 4), member=names["a"], lines=[(names["k"], "rule_not_met")])
    before = Report(ReportRange(tenant, FIRST, LAST), ReportFilters(), rollups=False).summary(now=NOW)

    # Every row is folded once, however often the task runs. The solo worker takes tasks in order: once the
    # ping answers, both folds have run (they keep no result).
    fold_rollups.delay()
    fold_rollups.delay()
    assert ping.delay().get(timeout=60)["pong"] is True
    assert RollupWatermark.objects.get(source="order").last_id == max(o.pk for o in h.orders)
    assert sum(DailyOrders.objects.filter(tenant=tenant).values_list("orders", flat=True)) == len(h.orders)
    assert RollupWatermark.objects.get(source="discount:order").last_id == max(o.pk for o in h.orders)
    assert OrderDiscount.objects.filter(tenant=tenant).count() == len(h.orders)
    assert DailyOrders.objects.get(tenant=tenant, day=dt.date(2026, 3, 1), location="").discount == 10
    assert DailyRefusals.objects.filter(tenant=tenant, campaign_id=names["k"].pk).get().attempts == 1

    served = Report(ReportRange(tenant, FIRST, LAST), ReportFilters()).summary(now=NOW)
    assert served == before
    assert rollups_recheck(days=4000) == 0
