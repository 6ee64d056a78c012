"""Tasks are not lost when a worker dies, and running one again does nothing twice.

Every task is acknowledged late and rejected back to the queue when its worker is lost (killed, out of
memory); Redis's visibility timeout exceeds every task's time limit and every countdown (otherwise a running
or waiting task is handed to a second worker). The real-worker tests kill a worker's pool process in the
middle of a job and deliver a webhook task twice.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from campaigns.models import Campaign, Code, CodeGenerationJob
from tests.factories import CampaignFactory, TenantFactory

ROOT = Path(__file__).resolve().parents[2]


def _our_tasks():
    from config.celery import app

    app.loader.import_default_modules()
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def test_every_task_is_acknowledged_late_and_requeued_when_its_worker_dies():
    tasks = _our_tasks()
    assert {"integrations.deliver_webhook", "campaigns.tasks.generate_codes_job", "loyalty.tasks.expire_points"} <= set(
        tasks
    )
    for name, task in tasks.items():
        assert task.acks_late is True, name
        assert task.reject_on_worker_lost is True, name
        assert task.time_limit and task.soft_time_limit and task.soft_time_limit < task.time_limit, name


def test_the_visibility_timeout_exceeds_the_longest_task_and_the_longest_countdown():
    from config.celery import app

    longest = max(task.time_limit for task in _our_tasks().values())
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    assert visibility == settings.CELERY_VISIBILITY_TIMEOUT
    assert visibility > longest + 60
    assert visibility > getattr(settings, "WEBHOOK_DIRECT_RETRY_MAX_SECONDS", 600) + 120  # webhook retries
    assert app.conf.worker_prefetch_multiplier == 1  # a prefetched message would wait unacknowledged


@pytest.mark.redis
@pytest.mark.postgres
def test_a_webhook_task_delivered_twice_posts_once(celery_worker_app):
    """A redelivered message is the same task id again: the delivery's claim lets one attempt through."""
    from integrations import webhooks
    from integrations.models import Event, WebhookDelivery
    from tests.factories import WebhookEndpointFactory
    from tests.integrations.webhook_receiver import Receiver

    tenant = TenantFactory()
    with Receiver([200]) as receiver:
        endpoint = WebhookEndpointFactory(tenant=tenant, url=receiver.url, event_types=["member.created"])
        event = Event.objects.create(tenant=tenant, type="member.created", data={"external_id": "m-1"})
        delivery = WebhookDelivery.objects.create(tenant=tenant, event=event, endpoint=endpoint)
        task_id = str(uuid.uuid4())
        for _ in range(2):
            webhooks.deliver_webhook.apply_async((delivery.pk,), task_id=task_id)
        assert receiver.wait_for(1, timeout=30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            delivery.refresh_from_db()
            if delivery.status == WebhookDelivery.Status.SUCCEEDED:
                break
            time.sleep(0.1)
        time.sleep(1.0)  # the second message has had its turn
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert len(receiver.requests) == 1 and delivery.attempts == 1 and delivery.attempt_log.count() == 1


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.redis
@pytest.mark.postgres
def test_a_job_whose_worker_is_killed_mid_way_is_run_again_and_makes_each_code_once(transactional_db, tmp_path):
    """A real prefork worker; its pool process is SIGKILLed after the first batch committed."""
    from campaigns.tasks import generate_codes_job
    from tests.outage import celery_broker

    tenant = TenantFactory()
    campaign = CampaignFactory(tenant=tenant, code_pattern="????-????-####")
    job = CodeGenerationJob.objects.create(tenant=tenant, campaign=campaign, pattern="????-????-####", count=150_000)
    queue = f"reliability-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE",)},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "reliability-test",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONPATH": str(ROOT),
    }
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "prefork", "--concurrency", "1"]
            + ["--queues", queue, "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with celery_broker(settings.REDIS_URL):
            generate_codes_job.apply_async((job.pk,), queue=queue)
        deadline = time.monotonic() + 120
        job.refresh_from_db()
        while job.created == 0 and time.monotonic() < deadline:  # the first batch has committed
            time.sleep(0.05)
            job.refresh_from_db()
        assert 0 < job.created < job.count, (job.created, log.read_text()[-3000:])
        children = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 1, children
        os.kill(int(children[0]), signal.SIGKILL)  # the pool process running the job: "killed, out of memory"

        while job.status != "done" and time.monotonic() < deadline:
            time.sleep(0.2)
            job.refresh_from_db()
        text = log.read_text()
        assert job.status == "done", text[-3000:]
        assert "WorkerLostError" in text, text[-3000:]  # it died mid-task, and the task ran again
    finally:
        worker.send_signal(signal.SIGTERM)  # our own worker, by its id
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
    assert job.created == job.count
    assert Code.objects.filter(campaign=campaign).count() == job.count
    assert Campaign.objects.get(pk=campaign.pk).codes_count == job.count
