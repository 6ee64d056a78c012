from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from integrations.keys import api_key_create, integration_get_or_create
from integrations.models import API_SCOPES
from members.models import Tenant


class Command(BaseCommand):
    help = (
        "Create an API key for an integration of a tenant (the integration is created if needed). "
        "The raw key is printed alone on the last line; only its hash is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("tenant_slug")
        parser.add_argument("integration_name")
        parser.add_argument(
            "--scopes",
            default=",".join(API_SCOPES),
            help=f"Comma-separated scopes among {', '.join(API_SCOPES)} (default: all).",
        )
        parser.add_argument("--name", default="", help="A name for the key (default: the integration's).")
        parser.add_argument("--throttle-rate", default="", help="Such as 100/s; default: the global rate.")

    def handle(self, *args, tenant_slug, integration_name, scopes, name, throttle_rate, **options):
        tenant = Tenant.objects.filter(slug=tenant_slug).first()
        if tenant is None:
            raise CommandError(f"No tenant with the slug {tenant_slug!r}.")
        scope_list = [s.strip() for s in scopes.split(",") if s.strip()]
        unknown = sorted(set(scope_list) - set(API_SCOPES))
        if unknown or not scope_list:
            raise CommandError(f"Unknown or no scopes: {', '.join(unknown) or '(none)'}; use {', '.join(API_SCOPES)}.")
        integration, created = integration_get_or_create(tenant=tenant, name=integration_name)
        try:
            api_key, raw_key = api_key_create(
                integration=integration, name=name, scopes=scope_list, throttle_rate=throttle_rate
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(
            f"{'Created' if created else 'Using'} integration {integration.name!r} of tenant {tenant.slug!r}."
        )
        self.stdout.write(f"API key {api_key.prefix} with scopes {', '.join(api_key.scopes)}. Store it now:")
        self.stdout.write(raw_key)
