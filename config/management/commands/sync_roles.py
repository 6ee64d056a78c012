from django.core.management.base import BaseCommand

from config.roles import sync_roles


class Command(BaseCommand):
    help = "Create the staff role groups (Admin, Marketer, ...) and set their permissions."

    def handle(self, *args, **options):
        for role, count in sync_roles().items():
            self.stdout.write(f"{role}: {count} permissions")
