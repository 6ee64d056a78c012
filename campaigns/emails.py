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
