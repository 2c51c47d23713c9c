"""``python manage.py api_token <username> [--reset]``: the user's researcher API token."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management import BaseCommand, CommandError
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = (
        "Print a user's token for the researcher API (/api/v1/), creating it if needed. "
        "Send it as 'Authorization: Token <key>'. Only staff users may use the API."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--reset", action="store_true", help="Replace the user's token with a new one."
        )

    def handle(self, *args, **options):
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: options["username"]}).first()
        if user is None:
            raise CommandError(f"No user '{options['username']}'.")
        if options["reset"]:
            Token.objects.filter(user=user).delete()
        token, created = Token.objects.get_or_create(user=user)
        if not user.is_staff:
            self.stderr.write(
                f"Warning: '{user}' is not a staff user; the API answers 403 to this token "
                "until the account is marked as staff."
            )
        if created:
            self.stderr.write(f"Created a token for '{user}'.")
        self.stdout.write(token.key)
