from celery import shared_task

from config.health import database_ping


@shared_task(name="config.tasks.ping", ignore_result=False, time_limit=30, soft_time_limit=25)
def ping() -> dict:
    """Proves a worker is alive and can reach the database."""
    database_ping()
    return {"pong": True, "database": "ok"}
