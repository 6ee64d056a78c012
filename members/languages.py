"""Which of the site's languages (settings.LANGUAGES) a locale means, for everything a member reads.

The cockpit's pages, its sign-in emails and the emails of campaigns and the ledger all speak a tenant's members'
language; it lives here, in the lowest domain app, so that each of them asks the same code.
"""

from django.conf import settings
from django.utils import translation


def offered_languages() -> list[str]:
    """The languages every tenant's members are offered (settings.LANGUAGES: en, de, tr).

    One list for all tenants: a per-tenant choice would be a field of Tenant; `Tenant.locale` says which of them a
    tenant's members get when nothing else decides.
    """
    return [code for code, _name in settings.LANGUAGES]


def supported_language(code: str | None, offered: list[str] | None = None) -> str | None:
    """`code` ("de", "de-AT", "de_DE", "TR") as one of the offered languages, or None."""
    if not code or not isinstance(code, str):
        return None
    offered = offered if offered is not None else offered_languages()
    try:
        variant = translation.get_supported_language_variant(code.strip().replace("_", "-").lower())
    except LookupError:
        return None
    return variant if variant in offered else None


def locale_language(locale: str | None) -> str:
    """A tenant's `locale` as a language its members read: one of LANGUAGES, else LANGUAGE_CODE, else English."""
    return supported_language(locale) or supported_language(settings.LANGUAGE_CODE) or "en"
