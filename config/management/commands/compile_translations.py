"""Compiles locale/*/LC_MESSAGES/*.po into .mo with Babel: plain Python, no GNU gettext needed.

`make messages` (and so `make demo` and `make test`) runs it, the same way on a fresh machine with only Python
and in CI (where `msgfmt --check` also checks the catalogs). Fuzzy entries are left out, as msgfmt does. The .mo
files are build output (ignored by git).
"""

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Compiles the project's .po catalogs (LOCALE_PATHS) into .mo files next to them, without gettext."

    def handle(self, *args, **options):
        catalogs = sorted(po for path in settings.LOCALE_PATHS for po in Path(path).glob("*/LC_MESSAGES/*.po"))
        for po_path in catalogs:
            locale = po_path.parent.parent.name
            mo_path = po_path.with_suffix(".mo")
            try:
                with po_path.open("rb") as po_file:
                    catalog = read_po(po_file, locale=locale, abort_invalid=True)
            except Exception as exc:  # Babel raises its own PoFileError, and ValueError for a bad header
                raise CommandError(f"{po_path}: {exc}") from exc
            with mo_path.open("wb") as mo_file:
                write_mo(mo_file, catalog, use_fuzzy=False)
            if options["verbosity"] > 0:
                self.stdout.write(f"compiled {mo_path.relative_to(settings.BASE_DIR)}")
