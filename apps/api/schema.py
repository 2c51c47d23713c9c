"""drf-spectacular hooks: the schema documents the researcher API (``/api/v1/``) only.

The rater endpoints (``/api/r/...``, :mod:`apps.studies.apis`) are left out:
they are the task page's private protocol, authenticated by a signed rater
token, not an API for scripts.
"""

from __future__ import annotations

from apps.api.apis.missing import MissingApi

API_PREFIX = "/api/v1/"


def researcher_endpoints_only(endpoints, **kwargs):
    return [
        (path, path_regex, method, callback)
        for path, path_regex, method, callback in endpoints
        if path.startswith(API_PREFIX) and getattr(callback, "cls", None) is not MissingApi
    ]
