"""One reusable guard against applying an admin form twice (double submit, browser retry).

Each guarded form carries a hidden one-time token (`one_time(form)`); carrying the form out claims it by a unique
insert (`FormSubmission`). The services own their durable transactions, so the claim cannot share theirs: it is
taken just before the service runs and given back if the service refuses (the same form, corrected, may then be
sent again). A crash between the two leaves the token taken and nothing done: the safe side (never twice).
A second POST of the same form finds the token taken and gets `already_submitted`, a clear message, nothing changed.

A token is signed with the time it was made and refused after FORM_TOKEN_MAX_AGE (`form_expired`): so a claim
older than that guards nothing any more, and `members.tasks.prune_used_tokens` deletes it.
"""

from __future__ import annotations

import datetime as dt
import secrets
from contextlib import contextmanager

from django import forms
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from common.errors import ApplicationError
from members.models import FormSubmission

FIELD = "form_token"
ALREADY_SUBMITTED = _("This form was already sent and carried out: nothing was done again.")
FORM_EXPIRED = _("This form has expired: open it again.")
FORM_TOKEN_MAX_AGE = dt.timedelta(days=1)
_signer = signing.TimestampSigner(salt="members.form_once")


def new_token() -> str:
    """A fresh one-time token (72 random bits), signed with the time it was made."""
    return _signer.sign(secrets.token_urlsafe(9))  # 12 + 1 + 6 + 1 + 43 = 63 characters: the column holds 64


def one_time(form: forms.Form) -> forms.Form:
    """Add the hidden token field to `form` (a fresh token when the form is shown, the sent one when posted)."""
    form.fields[FIELD] = forms.CharField(
        widget=forms.HiddenInput,
        max_length=64,
        initial=new_token(),
        error_messages={"required": FORM_EXPIRED},
    )
    return form


def token_claim(token: str, *, user, name: str) -> FormSubmission:
    """Take `token` for good (a unique insert); `already_submitted` when it was taken before, `form_expired`
    when it is not one of ours or older than FORM_TOKEN_MAX_AGE."""
    try:
        _signer.unsign(token, max_age=FORM_TOKEN_MAX_AGE)
    except signing.BadSignature as exc:  # SignatureExpired included
        raise ApplicationError("form_expired", str(FORM_EXPIRED), status=409) from exc
    try:
        with transaction.atomic():
            return FormSubmission.objects.create(
                token=token, user=user if getattr(user, "pk", None) else None, form=name[:100]
            )
    except IntegrityError as exc:
        raise ApplicationError("already_submitted", str(ALREADY_SUBMITTED), status=409) from exc


def token_release(claim: FormSubmission) -> None:
    """Give a token back when nothing was carried out (the form is shown again, to be corrected)."""
    FormSubmission.objects.filter(pk=claim.pk).delete()


@contextmanager
def submitted_once(form: forms.Form, *, user, name: str = ""):
    """Claim the form's token for the block; raise `already_submitted` if it was claimed before.

    An exception leaving the block (a refusal by the service) gives the token back."""
    claim = token_claim(form.cleaned_data[FIELD], user=user, name=name or type(form).__name__)
    try:
        yield claim
    except BaseException:
        token_release(claim)
        raise
