"""`makemessages` over the member-facing code only: the cockpit (with its calculator) and its emails.

The staff console is English (LANGUAGE_CODE) and is not translated by this project, so locale/*/django.po holds
only what members read, and every msgid in it has a translation (tests/rewards/test_cockpit_i18n.py checks it).
A plain `makemessages` would pull in every admin string. Needs GNU gettext (xgettext, msgmerge), as
`makemessages` does; compiling the catalogs does not (`compile_translations`).

    manage.py cockpit_makemessages          # de and tr, from the roots below
"""

import os

from django.core.management.commands import makemessages

# Where members' strings live, relative to the project root: folders, or single files. A new member-facing
# folder or module is added here, then `manage.py cockpit_makemessages` updates locale/de and locale/tr.
MEMBER_FACING_ROOTS = (
    "rewards/cockpit",
    "templates/cockpit",
    # Members' emails outside the cockpit: a code given or reminded, points about to expire.
    "campaigns/emails.py",
    "templates/emails/code_given.html",
    "templates/emails/code_given.txt",
    "templates/emails/code_given_subject.txt",
    "templates/emails/code_reminder_subject.txt",
    "loyalty/ledger/jobs.py",
)
LANGUAGES = ("de", "tr")


class Command(makemessages.Command):
    help = "Updates locale/<de,tr>/LC_MESSAGES/django.po from the member-facing pages and emails only."

    def handle(self, *args, **options):
        if not options.get("locale") and not options.get("all"):
            options["locale"] = list(LANGUAGES)
        options["add_location"] = options.get("add_location") or "file"
        options["no_obsolete"] = True
        return super().handle(*args, **options)

    def find_files(self, root):
        files = []
        for member_root in MEMBER_FACING_ROOTS:
            path = os.path.normpath(os.path.join(root, member_root))
            if os.path.isdir(path):
                files.extend(super().find_files(path))
            elif os.path.isfile(path):  # one module of an app whose other strings are the staff's
                dirpath, filename = os.path.split(path)
                files.append(self.translatable_file_class(dirpath, filename, self.default_locale_path))
        return sorted(files, key=lambda f: f.path)
