"""The email that hands a member a code, in the tenant's name (text and HTML from `templates/emails/`).

Written in the member's language (their tenant's `locale`, see members.languages) and dated in the tenant's time
zone; a reminder step's own subject is the staff's text and goes out as it was typed.
"""

import logging

from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone, translation

from campaigns.models import Publication

logger = logging.getLogger(__name__)


def _code_email(tenant, to: str, context: dict, *, subject_template: str, subject: str = "") -> EmailMultiAlternatives:
    """Subject and both bodies rendered in the tenant's members' language, which the email also declares."""
    language = tenant.language
    with translation.override(language), timezone.override(tenant.tz):
        subject = subject or render_to_string(subject_template, context).strip()
        email = EmailMultiAlternatives(
            subject,
            render_to_string("emails/code_given.txt", context),
            to=[to],
            headers={"Content-Language": language},
        )
        email.attach_alternative(render_to_string("emails/code_given.html", context), "text/html")
    return email


def code_email_send(*, publication_id: int, message: str = "") -> bool:
    """Send the code of a publication to its member; False when there is nobody to send to.

    Consent is checked here, at the moment of sending, not when the email was asked for.
    """
    publication = (
        Publication.objects.select_related("member", "campaign", "code", "tenant").filter(pk=publication_id).first()
    )
    if publication is None or not publication.member.email or not publication.member.email_consent:
        return False
    context = {
        "tenant": publication.tenant,
        "member": publication.member,
        "campaign": publication.campaign,
        "code": publication.code,
        "message": message,
    }
    email = _code_email(
        publication.tenant, publication.member.email, context, subject_template="emails/code_given_subject.txt"
    )
    email.send()
    return True


def code_reminder_send(*, delivery) -> bool:
    """A reminder of a code still unused (a `ReminderDelivery` with its step, code, member, campaign, tenant
    loaded); False when the member does not consent to email now. Same branded layout as the code's email."""
    member = delivery.member
    if not member.email or not member.email_consent:
        return False
    context = {
        "tenant": delivery.tenant,
        "member": member,
        "campaign": delivery.campaign,
        "code": delivery.code,
        "message": delivery.step.message,
        "reminder": True,
    }
    email = _code_email(
        delivery.tenant,
        member.email,
        context,
        subject_template="emails/code_reminder_subject.txt",
        subject=delivery.step.subject,
    )
    email.send()
    return True
