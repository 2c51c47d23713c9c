"""The Content-Security-Policy of every response, in one place.

Every page::

    default-src 'self'; img-src 'self' data: <media origins>; script-src 'self';
    style-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self';
    frame-ancestors 'none'

No template of ours has an inline script, inline ``<style>`` or ``style=""``
attribute on the pages raters see, so no nonce is needed there. Exceptions,
each as narrow as we could make it:

* Rater pages (marked by :func:`apps.studies.framing.crowd_frameable`):
  ``frame-ancestors 'self' <RATER_FRAME_ANCESTORS>`` so MTurk can show them in
  its HIT frame; the end page (``rater-done``) may also post its form to the
  MTurk submit hosts (``MTURK_SUBMIT_HOSTS``) and follow MTurk's redirect to its
  worker sites (Chrome checks ``form-action`` on a form's redirects too).
* ``/admin/``: Django's change list has one inline ``<style>`` block (allowed
  by its hash, read from the template itself) and our admin pages (job progress
  bar, stimulus grid) size a few elements with ``style=""`` attributes:
  ``style-src-attr 'unsafe-inline'`` there, which allows attributes only, never
  a ``<style>`` element or any script.
* ``/api/docs/`` (Swagger UI, drf-spectacular's split view: its init script is a
  separate same-origin file): the template's one inline ``<style>`` block,
  allowed by its hash. Swagger UI's own inline styles are set through the DOM
  (CSSOM), which CSP does not restrict.

Images: ``data:`` (Swagger UI's and the admin's icons) and, with
``STORAGE_BACKEND=s3``, the bucket's origin as ``STORAGES["default"]`` builds its
URLs (custom domain, endpoint, virtual-host bucket), plus ``CSP_IMG_SRC_EXTRA``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase
from django.template import TemplateDoesNotExist
from django.template.loader import get_template

HEADER = "Content-Security-Policy"
# A CSP source expression: scheme://[*.]host[:port] (no path, nothing that
# would end the directive or the header).
_ORIGIN = re.compile(r"^https?://(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_STYLE_BLOCK = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL | re.IGNORECASE)

# Attributes a view sets on its response (apps.studies.framing) to widen the policy.
FRAME_ANCESTORS_ATTR = "csp_frame_ancestors"
FORM_ACTION_ATTR = "csp_form_action"


def safe_origins(values: Iterable[str]) -> list[str]:
    """The values that are plain origins (``https://host[:port]``); anything else is dropped."""
    out: list[str] = []
    for value in values:
        origin = value.strip().rstrip("/")
        if _ORIGIN.fullmatch(origin) and origin not in out:
            out.append(origin)
    return out


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def media_origins() -> list[str]:
    """Origins the stimuli (``STORAGES["default"]``) are served from, besides this site.

    Read from the settings once (every response's policy names them); a test
    that changes the storage settings clears it (``_settings_changed``)."""
    return list(_media_origins())


@functools.cache
def _media_origins() -> tuple[str, ...]:
    found = [_origin(settings.MEDIA_URL)] if "://" in settings.MEDIA_URL else []
    default = settings.STORAGES.get("default", {})
    if "s3" in default.get("BACKEND", "").lower():
        options = default.get("OPTIONS", {})
        bucket = options.get("bucket_name") or getattr(settings, "AWS_STORAGE_BUCKET_NAME", "")
        endpoint = options.get("endpoint_url") or ""
        custom = options.get("custom_domain") or getattr(settings, "AWS_S3_CUSTOM_DOMAIN", None)
        style = options.get("addressing_style") or "auto"
        region = options.get("region_name") or ""
        if custom:
            found.append(f"https://{custom.strip('/')}")
        if endpoint:
            found.append(_origin(endpoint))
            if style != "path" and bucket:  # boto3 may address the bucket as a subdomain
                parts = urlsplit(endpoint)
                found.append(f"{parts.scheme}://{bucket}.{parts.netloc}")
        elif bucket:
            found.append(f"https://{bucket}.s3.amazonaws.com")
            found.append("https://s3.amazonaws.com")
            if region:
                found.append(f"https://{bucket}.s3.{region}.amazonaws.com")
                found.append(f"https://s3.{region}.amazonaws.com")
    return tuple(safe_origins([*found, *settings.CSP_IMG_SRC_EXTRA]))


@functools.cache
def inline_style_hashes(template_name: str) -> tuple[str, ...]:
    """``'sha256-…'`` of each fixed ``<style>`` block of a template, as it is installed.

    Read from the template source that Django would render (overrides included),
    so an upgrade of Django or drf-spectacular changes the hash with the block.
    Blocks with template syntax inside are skipped (their text is not fixed).
    """
    try:
        source = get_template(template_name).template.source
    except TemplateDoesNotExist:
        return ()
    hashes = []
    for block in _STYLE_BLOCK.findall(source):
        if "{%" in block or "{{" in block:
            continue
        digest = hashlib.sha256(block.encode()).digest()
        hashes.append(f"'sha256-{base64.b64encode(digest).decode()}'")
    return tuple(hashes)


def _path_rules(path: str) -> dict[str, list[str]]:
    """Per-path additions (see the module docstring for why each exists)."""
    if path.startswith("/admin/"):
        return {
            "style-src": list(inline_style_hashes("admin/change_list.html")),
            "style-src-attr": ["'unsafe-inline'"],
        }
    if path == "/api/docs/":
        return {"style-src": list(inline_style_hashes("drf_spectacular/swagger_ui.html"))}
    return {}


def policy_for(request: HttpRequest, response: HttpResponseBase) -> str:
    frame = getattr(response, FRAME_ANCESTORS_ATTR, None)
    form = getattr(response, FORM_ACTION_ATTR, None)
    directives: dict[str, list[str]] = {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:", *media_origins()],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'", *safe_origins(form or [])],
        "frame-ancestors": ["'self'", *safe_origins(frame)] if frame is not None else ["'none'"],
    }
    for name, sources in _path_rules(request.path_info).items():
        directives.setdefault(name, [])
        directives[name] += sources
    return "; ".join(" ".join([name, *sources]) for name, sources in directives.items())


class ContentSecurityPolicyMiddleware:
    """Sets ``Content-Security-Policy`` on every response that has none yet."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if HEADER not in response:
            response[HEADER] = policy_for(request, response)
        return response


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: object) -> None:
    if setting in ("TEMPLATES", "INSTALLED_APPS"):
        inline_style_hashes.cache_clear()
    if setting in ("STORAGES", "MEDIA_URL", "CSP_IMG_SRC_EXTRA", "AWS_STORAGE_BUCKET_NAME",
                   "AWS_S3_CUSTOM_DOMAIN"):  # fmt: skip
        _media_origins.cache_clear()
