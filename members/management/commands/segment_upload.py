import csv
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from common.errors import ApplicationError
from members.models import Segment, Tenant
from members.services import segment_declare, segment_upload_static


class Command(BaseCommand):
    help = (
        "Upload a static segment list: one member external id per line (or the first column of a CSV). "
        "Creates the static segment if needed; replaces its members unless --append."
    )

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="tenant slug")
        parser.add_argument("segment", help="segment code")
        parser.add_argument("file", help="text or CSV file of external ids")
        parser.add_argument("--name", help="segment name when it is created")
        parser.add_argument("--append", action="store_true", help="add to the list instead of replacing it")

    def handle(self, *args, tenant, segment, file, name, append, **options):
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"no tenant {tenant!r}")
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"no file {file!r}")
        with path.open(newline="", encoding="utf-8") as handle:
            ids = [row[0].strip() for row in csv.reader(handle) if row and row[0].strip()]
        if ids and ids[0].lower() in ("external_id", "member"):
            ids = ids[1:]
        try:
            seg = Segment.objects.for_tenant(tenant_obj).filter(code=segment).first() or segment_declare(
                tenant=tenant_obj, code=segment, name=name or segment, kind=Segment.Kind.STATIC
            )
            result = segment_upload_static(segment=seg, external_ids=ids, replace=not append)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"{result['added']} members in {seg.code}; {len(result['unknown'])} unknown ids")
        for unknown in result["unknown"][:20]:
            self.stdout.write(f"unknown: {unknown}")
