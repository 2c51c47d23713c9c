"""Who may call the researcher API: active staff users (researchers).

A request without credentials is a 401 (DRF answers ``NotAuthenticated``
because the first authenticator, token auth, names a ``WWW-Authenticate``
scheme); an authenticated non-staff user is a 403. Which studies a researcher
sees is decided per object by :mod:`apps.api.selectors`.
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission


class IsResearcher(BasePermission):
    message = (
        "The researcher API is for staff users only; "
        "ask an administrator to mark your account as staff."
    )

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)
