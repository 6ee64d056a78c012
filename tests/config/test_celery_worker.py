import pytest

from config.tasks import ping


@pytest.mark.redis
@pytest.mark.postgres
def test_health_task_runs_through_a_real_worker(celery_worker_app):
    result = ping.delay()
    assert result.get(timeout=20) == {"pong": True, "database": "ok"}
    assert result.successful()


def test_beat_schedule_names_only_registered_tasks():
    from django.conf import settings

    from config.celery import app

    app.loader.import_default_modules()
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks, entry["task"]
