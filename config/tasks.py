from celery import shared_task
from django.db import connection


@shared_task(name="config.tasks.ping", time_limit=30, soft_time_limit=25)
def ping() -> dict:
    """Proves a worker is alive and can reach the database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"pong": True, "database": "ok"}
