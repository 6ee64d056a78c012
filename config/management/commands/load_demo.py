from django.conf import settings
from django.core.management.base import BaseCommand
from django.urls import reverse

from config.demo import HISTORY_MONTHS, load_demo
from members.cockpit_links import cockpit_link_make
from members.models import Member


class Command(BaseCommand):
    help = (
        "Load (or refresh) the demo tenant with its past, staff users per role and a demo API key; prints the logins."
    )

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=300, help="How many demo members (default 300).")
        parser.add_argument(
            "--months", type=int, default=HISTORY_MONTHS, help="Months of past activity to replay (default 18)."
        )
        parser.add_argument(
            "--address",
            default="127.0.0.1:8000",
            help="host:port the demo will be served on, printed in its addresses (`make demo` passes HOST:PORT).",
        )

    def handle(self, *args, members, months, address, **options):
        logins = load_demo(member_count=members, months=months)
        out = self.stdout
        out.write(f"Demo tenant: {logins.tenant.name} ({logins.tenant.slug})")
        for what, count in logins.counts.items():
            out.write(f"  {what}: {count}")
        base = f"http://{address}"
        out.write(f"Admin: {base}/admin/")
        out.write(f"API: {base}/api/v1/  (documentation: {base}/api/v1/docs)")
        for username, password in logins.passwords.items():
            out.write(f"  login {username:<9} password {password}")
        if logins.api_key:
            out.write("Demo API key (header 'Authorization: Api-Key <key>'):")
            out.write(logins.api_key)
        self._cockpit(base, logins.tenant)

    def _cockpit(self, base: str, tenant) -> None:
        """A member's one-time cockpit link, the cockpit's sign-in page and the public calculator."""
        slug = {"tenant_slug": tenant.slug}
        member = (
            Member.objects.for_tenant(tenant)
            .filter(status=Member.Status.ACTIVE)
            .exclude(email="")
            .order_by("-point_accounts__balance", "pk")
            .first()
        )
        out = self.stdout
        out.write(f"Member cockpit: {base}{reverse('cockpit:sign-in', kwargs=slug)}  (sign in by email)")
        if member is not None:
            link = cockpit_link_make(member=member)
            path = reverse("cockpit:link", kwargs={**slug, "token": link.token})
            minutes = settings.COCKPIT_LINK_MINUTES
            out.write(f"  signed in as {member.email}, once, within {minutes} minutes: {base}{path}")
        out.write(f"Reward calculator (public): {base}{reverse('cockpit:calculator', kwargs=slug)}")
