"""The email that hands a member a code, in the tenant's name (text and HTML from `templates/emails/`)."""

import logging

from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from campaigns.models import Publication

logger = logging.getLogger(__name__)


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
    subject = render_to_string("emails/code_given_subject.txt", context).strip()
    email = EmailMultiAlternatives(
        subject, render_to_string("emails/code_given.txt", context), to=[publication.member.email]
    )
    email.attach_alternative(render_to_string("emails/code_given.html", context), "text/html")
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
    subject = delivery.step.subject or render_to_string("emails/code_reminder_subject.txt", context).strip()
    email = EmailMultiAlternatives(subject, render_to_string("emails/code_given.txt", context), to=[member.email])
    email.attach_alternative(render_to_string("emails/code_given.html", context), "text/html")
    email.send()
    return True
