"""`python manage.py generate_codes <tenant-slug> <campaign-id> <count> [--pattern SPR-####-????]`.

Runs the bulk generation in this process (batches of 50,000, each committed; safe to re-run: it tops the job
up to its count) and prints the rate.
"""

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from campaigns import services
from campaigns.models import Campaign, CodeGenerationJob
from common.errors import ApplicationError


class Command(BaseCommand):
    help = "Generate codes for a campaign from a pattern (# digit, ? letter, * either)."

    def add_arguments(self, parser):
        parser.add_argument("tenant")
        parser.add_argument("campaign", type=int)
        parser.add_argument("count", type=int)
        parser.add_argument("--pattern", default="")

    def handle(self, *args, tenant, campaign, count, pattern, **options):
        found = Campaign.objects.filter(tenant__slug=tenant, pk=campaign).first()
        if found is None:
            raise CommandError(f"No campaign {campaign} in tenant {tenant!r}.")
        try:
            with transaction.atomic():
                job = CodeGenerationJob.objects.create(
                    tenant_id=found.tenant_id,
                    campaign=found,
                    pattern=(pattern or found.code_pattern or "????-####").upper(),
                    count=count,
                )
            started = time.perf_counter()
            job = services.code_generation_run(job_id=job.pk)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        elapsed = time.perf_counter() - started
        self.stdout.write(f"{job.created} codes in {elapsed:.1f} s ({job.created / max(elapsed, 1e-9):,.0f} codes/s)")
