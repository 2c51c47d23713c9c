"""A small JSON client for Prolific's REST API (stdlib ``urllib``: no new dependency).

What a call's failure means decides what the ledger does with it, so the
errors are sorted here once:

- a 4xx answer (other than 429) is Prolific's definitive no (bad field,
  wrong state, unknown id): :class:`~apps.recruitment.ledger.Refused`, with
  the HTTP status as its code; the ledger marks the call failed;
- no answer (connection refused or dropped, timeout), a 5xx or a 429 leave
  the outcome unknown: :class:`~.base.ProviderError`; the ledger row stays
  pending and the next run asks Prolific's records before sending again;
  :class:`NotSent` (a ``ProviderError``) when it certainly did not take
  effect (connection refused, 429), for the one call that cares (paying).

Every message names the method, the path, the status and Prolific's own
error detail, never the token. Redirects are not followed (the token must
not travel to another host), and neither is a pagination link that leaves
the configured API's origin.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from apps.recruitment.ledger import Refused
from apps.recruitment.providers.base import ProviderError

_DETAIL_LIMIT = 500


class NotSent(ProviderError):
    """The request certainly did not take effect (refused connection, 429): safe to send again."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        return None  # the 3xx surfaces as an HTTPError: reported, never followed


def _detail(raw: bytes) -> str:
    """Prolific's error detail (``{"error": {"detail": ..., "title": ...}}`` or DRF's shapes)."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:_DETAIL_LIMIT]
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error = data["error"]
        data = error.get("detail") or error.get("title") or error
    if isinstance(data, dict) and "detail" in data and len(data) == 1:
        data = data["detail"]
    if isinstance(data, str):
        return data[:_DETAIL_LIMIT]
    return json.dumps(data, sort_keys=True)[:_DETAIL_LIMIT]


class ProlificClient:
    """``request(method, path, body)`` against ``base_url`` (``.../api/v1``), token auth."""

    def __init__(self, *, base_url: str, token: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirect())
        origin = urllib.parse.urlsplit(self.base_url)
        self._origin = (origin.scheme, origin.netloc)

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            parts = urllib.parse.urlsplit(path)
            if (parts.scheme, parts.netloc) != self._origin:
                raise ProviderError(
                    f"Prolific sent a link to another host ({parts.netloc}); not followed.",
                    code="prolific_bad_link",
                )
            return path
        if path.startswith("/api/"):  # an absolute path from a pagination link
            return urllib.parse.urlunsplit((*self._origin, path, "", ""))
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The decoded JSON answer (or its text when it is not JSON); see the module docstring."""
        url = self._url(path)
        shown = urllib.parse.urlsplit(url).path
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Token {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(req, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            message = f"Prolific {method} {shown}: HTTP {status}: {_detail(exc.read())}"
            if status == 429:
                raise NotSent(
                    f"{message} (rate-limited: try again later).", code="prolific_busy"
                ) from None
            if status >= 500 or status < 400:
                raise ProviderError(
                    f"{message} (not done, or not known to be; the next run tries again).",
                    code="prolific_unavailable",
                ) from None
            raise Refused(message, code=str(status)) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ConnectionRefusedError):
                raise NotSent(
                    f"Prolific {method} {shown}: connection refused ({url.split('/api/')[0]}).",
                    code="prolific_unreachable",
                ) from None
            if isinstance(reason, TimeoutError):
                reason = f"no answer within {self.timeout:g} s"
            raise ProviderError(
                f"Prolific {method} {shown}: {reason or type(exc).__name__} (outcome unknown; "
                "the next run asks Prolific before sending again).",
                code="prolific_unreachable",
            ) from None
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", errors="replace")

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, body if body is not None else {})

    def pages(self, path: str) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, following ``_links.next`` to the end."""
        seen: set[str] = set()
        next_path: str | None = path
        while next_path and next_path not in seen:
            seen.add(next_path)
            page = self.get(next_path)
            if not isinstance(page, dict):
                raise ProviderError(
                    f"Prolific GET {path}: expected a list page, got {str(page)[:200]!r}.",
                    code="prolific_bad_answer",
                )
            yield from page.get("results") or []
            link = (page.get("_links") or {}).get("next")
            next_path = link.get("href") if isinstance(link, dict) else link
