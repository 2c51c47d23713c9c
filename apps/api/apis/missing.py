"""Any other path under ``/api/v1/``: a 404 in the API's error shape, not an HTML page."""

from __future__ import annotations

from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.core.exceptions import NotFoundError


class MissingApi(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)
    renderer_classes = (JSONRenderer,)

    def _missing(self, request: Request, *args, **kwargs):
        raise NotFoundError(
            f"No API endpoint at {request.path}; see /api/docs/ for the endpoints.",
            code="not_found",
        )

    get = post = put = patch = delete = _missing
