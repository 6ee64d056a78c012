"""`Idempotency-Key` on POSTs: the first response is replayed to retries; concurrent twins run once.

How it is race-safe: before the view runs, the request claims the row (integration, key) with an INSERT
that a unique constraint arbitrates. Exactly one of several concurrent requests wins
and runs the view; the others wait (polling, bounded by `IDEMPOTENCY_WAIT_SECONDS`) until the winner
stores its response, then replay it. The services own their transactions (`atomic(durable=True)`), so
the claim cannot share one with them; a crashed winner's claim expires after `IDEMPOTENCY_LOCK_SECONDS`
and a retry takes it over. A 5xx is not stored (nothing was written: services roll back), so a retry
runs again. Records live `IDEMPOTENCY_RETENTION_HOURS` (default 48, at least the contract's 24).

Exactly once across crashes: a successful write's answer is stored *in the service's own transaction*,
with its effects (`Answer`, the one mechanism of every write view). Were it stored after the commit, a
crash between the two would leave effects without an answer, and the retry that takes the expired claim
over would apply them again. With `Answer` the effects and the answer commit together or not at all.
Refusals (4xx) write nothing, so they are stored after their rollback (`complete`) as before.

A view whose service stores every answer in its own transaction, refusals included (the redemption, the
order), claims *deferred* (`claim(deferred=True)`): nothing is read or written before the work; the row is
written once, completed, in the transaction of the effects, and the same unique constraint makes a retry or a
late twin roll its work back and replay the first answer.

The request is identified by method, path (trailing slash ignored) and the JSON body in canonical form
(key order and whitespace do not matter); the same key with another request is 409 `idempotency_key_reused`.
"""

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from api.errors import ApiError, error_body
from api.parsers import json_depth_exceeds
from integrations.idempotency import retention
from integrations.models import IdempotencyRecord
from integrations.sql import idempotency_claim, idempotency_claim_then, idempotency_record, idempotency_store

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"


class IdempotentReplay(Exception):
    """Raised before the view runs: answer with the stored first response."""

    def __init__(self, record: IdempotencyRecord):
        super().__init__(record.key)
        self.record = record

    def response(self) -> HttpResponse:
        response = HttpResponse(
            self.record.response_body, status=self.record.response_status, content_type="application/json"
        )
        response[REPLAY_HEADER] = "true"
        return response


def _insert(**fields) -> IdempotencyRecord | None:
    """The record when this request claimed the key, None when a twin holds it (`integrations.sql`)."""
    record = IdempotencyRecord(**fields)
    return record if idempotency_claim(record) else None


@dataclass
class Claim:
    record: IdempotencyRecord
    stored: bool = False  # the answer was stored with the request's own effects (`store_in_transaction`)

    @property
    def deferred(self) -> bool:
        """No row yet: it is written once, with the answer (`claim(deferred=True)`)."""
        return getattr(self.record, "deferred", False)


class TwinAnswered(Exception):
    """A deferred claim's answer met a twin's stored one (a concurrent request with the same key committed
    first): this request's transaction rolls back, and the view answers as a retry would (`ApiView`)."""


def fingerprint(method: str, path: str, body: bytes) -> str:
    """A body too deep for the parser (`api.parsers.MAX_JSON_DEPTH`) is hashed as sent, never decoded: the
    decoder and `json.dumps` recurse, and the parser refuses that body anyway."""
    canonical = body
    if not json_depth_exceeds(body):
        try:
            canonical = json.dumps(json.loads(body or b"null"), sort_keys=True, separators=(",", ":")).encode()
        except (ValueError, UnicodeDecodeError, RecursionError):
            canonical = body
    digest = hashlib.sha256()
    digest.update(method.upper().encode() + b" " + path.rstrip("/").encode() + b"\n")
    digest.update(canonical)
    return digest.hexdigest()


def claim(request, *, integration, deferred: bool = False) -> Claim | None:
    """Claim the request's key, or raise `IdempotentReplay` / a 409. None when there is no key.

    `deferred` (a view whose service stores its every answer in its own transaction, refusals included): nothing
    is read or written now. The record is inserted once, completed, with the answer and in the same
    transaction as the effects (`store_in_transaction`); the unique constraint arbitrates: when a first request
    with this key committed (a retry) or commits first (a concurrent twin), this request's transaction rolls
    back (`TwinAnswered`) and it replays that answer, or is refused 409 if the key named another request. So
    a new key costs no round trip before the work, and a crash leaves nothing to take over (a retry simply
    runs). A retry does its work again before it learns it is one, and rolls it back: retries are rare, and
    this costs them one rolled-back transaction where every first request would pay a read.
    """
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 255:
        raise ApiError("invalid_idempotency_key", f"{HEADER} must be 1 to 255 characters.", 400)
    request_hash = fingerprint(request.method, request.path, request.body)
    if deferred:
        now = timezone.now()
        record = IdempotencyRecord(
            tenant_id=integration.tenant_id,
            integration=integration,
            key=key,
            method=request.method,
            path=request.path[:500],
            request_hash=request_hash,
            created_at=now,
            locked_until=now,
        )
        record.deferred = True
        return Claim(record)
    lock = timedelta(seconds=getattr(settings, "IDEMPOTENCY_LOCK_SECONDS", 60))
    deadline = time.monotonic() + getattr(settings, "IDEMPOTENCY_WAIT_SECONDS", 10)
    pause = 0.02
    while True:
        now = timezone.now()
        claimed = _insert(
            tenant_id=integration.tenant_id,
            integration=integration,
            key=key,
            method=request.method,
            path=request.path[:500],
            request_hash=request_hash,
            created_at=now,
            locked_until=now + lock,
        )
        if claimed is not None:
            return Claim(claimed)
        record = IdempotencyRecord.objects.filter(integration=integration, key=key).first()
        if record is None:  # released (a 5xx) or purged in between: try to claim it again
            continue
        if record.created_at < now - retention():
            # Past retention and not yet purged: forget it, as the purge would have.
            IdempotencyRecord.objects.filter(pk=record.pk, created_at=record.created_at).delete()
            continue
        if record.request_hash != request_hash:
            raise ApiError(
                "idempotency_key_reused",
                f"This {HEADER} was already used for a different request.",
                409,
                {"idempotency_key": key},
            )
        if record.state == IdempotencyRecord.State.COMPLETED:
            raise IdempotentReplay(record)
        if record.locked_until < now:
            # The first request died without answering: take its claim over (one taker wins).
            taken = IdempotencyRecord.objects.filter(
                pk=record.pk, state=IdempotencyRecord.State.IN_PROGRESS, locked_until=record.locked_until
            ).update(locked_until=now + lock)
            if taken:
                record.locked_until = now + lock
                return Claim(record)
            continue
        if time.monotonic() >= deadline:
            raise ApiError(
                "idempotency_request_in_progress",
                f"A request with this {HEADER} is still being processed; retry later.",
                409,
                {"idempotency_key": key},
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def _store(record: IdempotencyRecord, status: int, body: str, *, twin: Callable[[bool], None] | None = None) -> bool:
    """Store the answer on the claimed row; a deferred claim's row is inserted, completed, now (False when a
    twin's is there). Plain SQL: every idempotent POST runs it.

    With `twin`, a deferred claim's row joins the transaction's batch of last writes, if it has one, and
    `twin(claimed)` learns the outcome when it is sent (it raises to roll back)."""
    if getattr(record, "deferred", False):  # see `Claim.deferred`
        if twin is not None:
            idempotency_claim_then(_completed(record, status, body), twin)
            return True
        return idempotency_claim(_completed(record, status, body))
    idempotency_store(record.pk, status, body)
    return True


def _completed(record: IdempotencyRecord, status: int, body: str) -> IdempotencyRecord:
    """A deferred claim's row as it is inserted: completed, with the answer."""
    record.pk = None  # anew: an earlier insert of it may have rolled back with its transaction
    record._state.adding = True
    record.state = IdempotencyRecord.State.COMPLETED
    record.response_status, record.response_body = status, body
    return record


def store_in_transaction(claim_: Claim | None, status: int, data) -> None:
    """Store the answer (`data`, rendered as the API renders it) inside the service's transaction, just
    before its commit: the effects and the answer to retries then commit together, and twins waiting on the
    key see both at once. The caller sets `claim_.stored` once that transaction has committed; if it rolls
    back, nothing is stored and `complete` stores the error as usual."""
    if claim_ is None:
        return
    record = claim_.record
    _store(record, status, JSONRenderer().render(data).decode("utf-8"), twin=partial(_twin_answered, record.key))


def _twin_answered(key: str, claimed: bool) -> None:
    if not claimed:
        raise TwinAnswered(key)


_UNANSWERED = object()


class Answer:
    """A write view's answer, stored with the write's effects: pass it to the service as `answer=`.

    `render(result) -> (status, body)` builds the response from what the service returns. The service calls
    `answer(result)` inside its durable transaction, as the last step before the commit (the contract of
    every service taking `answer=`), so the stored answer to retries commits with the effects, in one commit.
    `response(result)`, once the service has returned, is the view's Response: the very body stored then.
    When the service returned another result than the one it answered (its transaction rolled back and it
    recovered, such as a checkout finding a concurrent twin's order) or never called `answer` (a replay that
    wrote nothing), the body is rendered now and `complete` stores it after the view, as for a refusal.
    Without an `Idempotency-Key` (no claim) nothing is stored, but the view answers through the same path.

    A refusal usually writes nothing, and `complete` stores it after the rollback. A refusal that does write
    (a refused redemption counts the failure on its campaigns and emits `redemption.failed`) stores its
    error answer with those writes through `refusal(error)`, called in that transaction before its commit;
    the view raises that error afterwards, and `settle(exc)` (in the exception handling) marks it stored.
    """

    def __init__(self, claim_: Claim | None, render: Callable[[Any], tuple[int, Any]]):
        self.claim = claim_
        self.render = render
        self._answered: Any = _UNANSWERED
        self._status = 0
        self._body: Any = None
        self._refused: Any = _UNANSWERED

    def __call__(self, result) -> None:
        self._status, self._body = self.render(result)
        store_in_transaction(self.claim, self._status, self._body)
        self._answered = result

    def refusal(self, error) -> None:
        """Store the error answer of `error` (an ApplicationError) in the refusal's own transaction."""
        store_in_transaction(self.claim, error.status, error_body(error.code, error.message, error.details))
        self._refused = error

    def settle(self, exc) -> None:
        """The view raised `exc`: if its answer was stored with its writes (committed), nothing is left to store."""
        if exc is self._refused and self.claim is not None:
            self.claim.stored = True

    def response(self, result) -> Response:
        if self._answered is result:
            if self.claim is not None:
                self.claim.stored = True  # committed with the effects: nothing left for `complete` to write
            return Response(self._body, status=self._status)
        status, body = self.render(result)
        return Response(body, status=status)


def complete(claim_: Claim, response) -> HttpResponse | None:
    """Store the response of the claimed request (or release the claim after a 5xx).

    Returns the response to send instead, if any: a deferred claim whose twin stored its answer first (a
    twin's order found by this request is a replay, but its retry must get the first answer)."""
    if claim_.stored:
        return None
    record = claim_.record
    if claim_.deferred:
        if response.status_code < 500 and response.status_code != 429:
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response.render()
            if not _store(record, response.status_code, response.content.decode("utf-8")):
                first = idempotency_record(record.integration_id, record.key)
                if first is not None and first.request_hash == record.request_hash:
                    return IdempotentReplay(first).response()
        return None
    if response.status_code >= 500 or response.status_code == 429:
        IdempotencyRecord.objects.filter(pk=record.pk, state=IdempotencyRecord.State.IN_PROGRESS).delete()
        return
    if hasattr(response, "render") and not getattr(response, "is_rendered", True):
        response.render()
    _store(record, response.status_code, response.content.decode("utf-8"))
