"""One run at a time for each batch job: a PostgreSQL advisory lock per job, held by a transaction.

Two overlapping runs of a job (beat fired twice, a task re-queued when a worker died, an operator running it
by hand) must not do the same work twice nor trip over each other. A job takes its lock at the start of each
of its transactions (`job_lock_take(name)`, `pg_try_advisory_xact_lock`): the run that holds it goes on,
another run finds it taken and stops at once with nothing done ("skipped"); the lock goes with the
transaction, so a crashed run never leaves it behind. A job working in several transactions (batches)
takes it again in each: the runs may then hand over between batches, but never work at the same time.

A job whose run cannot be cut into self-contained transactions (it decides its whole work up front, such as
a code generation job computing how many codes it still owes) holds a lock for the whole run instead
(`job_run_lock(name)`, a session-level `pg_try_advisory_lock`, released at the end, or by PostgreSQL when
the worker's connection dies with it).

SQLite has no advisory locks and lets one writer at a time anyway: there the lock is always granted.
"""

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

NAMESPACE = b"loyalty-job:"


def job_lock_key(name: str) -> int:
    """The job's advisory lock key: a stable signed 64-bit number derived from its name."""
    return int.from_bytes(hashlib.blake2b(NAMESPACE + name.encode(), digest_size=8).digest(), "big", signed=True)


def job_lock_take(name: str) -> bool:
    """Take the job's lock for the rest of the caller's transaction; False when another run holds it."""
    if not connection.in_atomic_block:
        raise transaction.TransactionManagementError("job_lock_take() needs the caller's transaction.atomic().")
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [job_lock_key(name)])
        return bool(cursor.fetchone()[0])


@contextmanager
def job_run_lock(name: str) -> Iterator[bool]:
    """`with job_run_lock(name) as mine:` mine is False when another run holds the job; held until the end
    (or, called inside a transaction, until that transaction ends)."""
    if connection.vendor != "postgresql":
        yield True
        return
    if connection.in_atomic_block:  # run inside a caller's transaction: hold it as long as that one
        yield job_lock_take(name)
        return
    key = job_lock_key(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        mine = bool(cursor.fetchone()[0])
    try:
        yield mine
    finally:
        if mine and connection.connection is not None and connection.is_usable():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
