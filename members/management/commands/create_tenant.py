from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from members.services import tenant_create


class Command(BaseCommand):
    help = "Create a tenant (a brand or a country). Running it again for an existing slug changes nothing."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--currency", required=True)
        parser.add_argument("--time-zone", default="UTC")
        parser.add_argument("--locale", default="en")

    def handle(self, *args, slug, name, currency, time_zone, locale, **options):
        try:
            tenant, created = tenant_create(slug=slug, name=name, currency=currency, time_zone=time_zone, locale=locale)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {', '.join(v)}" for k, v in exc.message_dict.items())) from exc
        self.stdout.write(f"{'created' if created else 'exists'}: tenant {tenant.slug} ({tenant.name})")
