"""Code patterns and set-based bulk generation.

A pattern such as `SPR-####-????` is literal text with placeholders: `#` a digit, `?` a letter, `*` a
digit or a letter, drawn from an unambiguous alphabet (no 0/O, 1/I/L) with the operating system's
random source (codes must not be guessable). Codes are upper case and unique per tenant: a batch is
inserted with one `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING` statement, and collisions
are simply topped up by the next batch, so a crash or a re-run never creates a duplicate.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal
from itertools import repeat

from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import Code
from campaigns.sql import campaign_counts_add, code_insert_skipping_taken

DIGITS = "23456789"
LETTERS = "ABCDEFGHJKMNPQRSTUVWXYZ"
ALPHANUM = DIGITS + LETTERS
PLACEHOLDERS = {"#": DIGITS, "?": LETTERS, "*": ALPHANUM}
BATCH = 50_000


class PatternError(ValueError):
    pass


def _slots(pattern: str) -> list[str | None]:
    return [PLACEHOLDERS.get(ch) if ch in PLACEHOLDERS else None for ch in pattern]


def capacity(pattern: str) -> int:
    total = 1
    for alphabet in _slots(pattern):
        if alphabet:
            total *= len(alphabet)
    return total


def check_pattern(pattern: str, count: int = 1) -> None:
    if not pattern or len(pattern) > 50:
        raise PatternError("A pattern of 1 to 50 characters is required.")
    random_slots = sum(1 for a in _slots(pattern) if a)
    if random_slots < 4:
        raise PatternError("A pattern needs at least 4 placeholders (# digit, ? letter, * either).")
    if capacity(pattern) < count * 20:
        raise PatternError(f"The pattern {pattern!r} is too short for {count} codes: add placeholders.")


def _translation(alphabet: str) -> tuple[bytes, bytes]:
    """A byte -> symbol table without modulo bias: bytes past the last whole multiple are dropped."""
    size = len(alphabet)
    limit = 256 - 256 % size
    table = bytes(ord(alphabet[b % size]) if b < limit else 0 for b in range(256))
    return table, bytes(range(limit, 256))


def _stream(alphabet: str, length: int) -> str:
    """`length` random symbols of `alphabet` (OS randomness, uniform)."""
    table, dropped = _translation(alphabet)
    out = b""
    while len(out) < length:
        out += os.urandom(length - len(out) + 64).translate(table, dropped)
    return out[:length].decode("ascii")


def _segments(pattern: str) -> list[tuple[str | None, str]]:
    """Runs of the pattern: (alphabet, placeholder run) or (None, literal text)."""
    runs: list[tuple[str | None, str]] = []
    for ch in pattern:
        alphabet = PLACEHOLDERS.get(ch)
        if runs and runs[-1][0] == alphabet:
            runs[-1] = (alphabet, runs[-1][1] + ch)
        else:
            runs.append((alphabet, ch))
    return runs


def random_codes(pattern: str, count: int) -> set[str]:
    """`count` distinct random codes for `pattern` (upper case), built set-wise from random streams."""
    segments = _segments(pattern.upper())
    per_code: dict[str, int] = {}
    for alphabet, text in segments:
        if alphabet:
            per_code[alphabet] = per_code.get(alphabet, 0) + len(text)
    out: set[str] = set()
    while len(out) < count:
        n = count - len(out)
        streams = {a: _stream(a, n * k) for a, k in per_code.items()}
        offsets = dict.fromkeys(per_code, 0)
        columns = []
        for alphabet, text in segments:
            if alphabet is None:
                columns.append(repeat(text, n))
                continue
            stream, step, start, width = streams[alphabet], per_code[alphabet], offsets[alphabet], len(text)
            columns.append([stream[j : j + width] for j in range(start, n * step, step)])
            offsets[alphabet] += width
        out.update(map("".join, zip(*columns, strict=False)))
    return out


def insert_codes(
    *,
    tenant_id: int,
    campaign_id: int,
    codes: list[str],
    usage_limit: int | None,
    expires_at=None,
    balance: Decimal | None = None,
) -> int:
    """Insert codes, skipping those already taken in the tenant; returns how many were inserted."""

    if not codes:
        return 0
    now = timezone.now()
    if connection.vendor == "postgresql":  # one statement sending the texts as one array (unnest)
        return code_insert_skipping_taken(
            tenant_id=tenant_id,
            campaign_id=campaign_id,
            codes=codes,
            usage_limit=usage_limit,
            expires_at=expires_at,
            balance=balance,
            now=now,
        )
    # SQLite has no arrays: the same write (skip the tenant's taken texts) through the ORM.
    before = Code.objects.filter(tenant_id=tenant_id, campaign_id=campaign_id).count()
    Code.objects.bulk_create(
        [
            Code(
                tenant_id=tenant_id,
                campaign_id=campaign_id,
                code=c,
                usage_limit=usage_limit,
                expires_at=expires_at,
                initial_balance=balance,
                balance=balance,
            )
            for c in codes
        ],
        ignore_conflicts=True,
        batch_size=5000,
    )
    return Code.objects.filter(tenant_id=tenant_id, campaign_id=campaign_id).count() - before


def generate_codes(
    *,
    tenant_id: int,
    campaign_id: int,
    pattern: str,
    count: int,
    usage_limit: int | None = 1,
    expires_at=None,
    balance: Decimal | None = None,
    batch: int = BATCH,
    progress=None,
) -> int:
    """Create exactly `count` new codes (in batches, each its own statement); returns the number made."""

    check_pattern(pattern, count)
    made = 0
    barren = 0
    # Draw the next batch in a helper thread while the database inserts the current one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Future | None = pool.submit(random_codes, pattern, min(batch, count))
        while made < count:
            if pending is None:
                pending = pool.submit(random_codes, pattern, min(batch, count - made))
            fresh = pending.result()
            ahead = min(batch, count - made - len(fresh))
            pending = pool.submit(random_codes, pattern, ahead) if ahead > 0 else None
            # A batch, its counter and the job's progress commit together: a worker killed at any point
            # leaves `progress` equal to the codes made, so the re-delivered task tops up exactly.
            with transaction.atomic():
                inserted = insert_codes(
                    tenant_id=tenant_id,
                    campaign_id=campaign_id,
                    codes=list(fresh),
                    usage_limit=usage_limit,
                    expires_at=expires_at,
                    balance=balance,
                )
                made += inserted
                if inserted:
                    campaign_counts_add({campaign_id: {"codes_count": inserted}})
                if progress:
                    progress(made)
            barren = barren + 1 if inserted == 0 else 0
            if barren >= 5:
                raise PatternError(f"The pattern {pattern!r} is exhausted in this tenant: add placeholders.")
    return made


def normalize(code: str) -> str:
    return str(code).strip().upper()
