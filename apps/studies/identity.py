"""Who a rater is: crowd ids from the link, the browser, the signed rater token.

- A **browser** carries a random id in the HTTP-only cookie ``xai_b``; the
  database keeps only its keyed hash. A crowd participation remembers the
  hash of the browser that started it, and a plain-link rater *is* a browser.
- The **rater token** is the experiment code and participation id, signed
  with ``SECRET_KEY``.
  The task page carries it and the rater API reads it from the
  ``X-Rater-Token`` header: checking it is an HMAC, no session table, and a
  custom header cannot be sent cross-site, so the API needs no CSRF cookie.
  The cookie ``xr_<code>`` holds the same token for the HTML pages: which
  participation this browser is on in that experiment.
- **Crowd ids** in the link are validated per provider (length, characters)
  before anything is stored: Prolific ids are 24 letters or digits; MTurk
  ids are upper-case letters and digits, at most 64 (workerId starts with A).
  A Prolific link whose ids are still Prolific's placeholders
  (``{{%PROLIFIC_PID%}}``: someone copied the study URL instead of opening
  it from Prolific) gets its own explanation.
- **MTurk in a frame**: MTurk shows the study in a cross-site iframe, where
  ``SameSite=Lax`` cookies are not sent (and Safari blocks third-party
  cookies), so an MTurk rater's pages carry the token in the URL (``?t=``)
  instead of relying on ``xr_<code>``. ``turkSubmitTo`` from the link is
  kept only if it is one of ``settings.MTURK_SUBMIT_HOSTS``: the end page
  posts the worker's assignment there, and must never post it to any site a
  forged link names.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from django.conf import settings
from django.core import signing

from apps.core.exceptions import ApplicationError
from apps.studies.models import Rater

BROWSER_COOKIE = "xai_b"
TOKEN_HEADER = "HTTP_X_RATER_TOKEN"
TOKEN_PARAM = "t"  # the rater token in a page's URL (MTurk's cross-site frame has no cookies)
TURK_SUBMIT_TO = "turkSubmitTo"
_TOKEN_SALT = "xai-crowd.rater-token"
_BROWSER_ID = re.compile(r"^[A-Za-z0-9_-]{32,64}$")

MTURK_PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"
PROLIFIC_KEYS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
MTURK_KEYS = ("workerId", "assignmentId", "hitId")
_PROLIFIC_ID = (re.compile(r"^[A-Za-z0-9]{24}$"), "24 letters or digits")
_MTURK_WORKER = (re.compile(r"^A[A-Z0-9]{1,63}$"), "'A' and up to 63 upper-case letters or digits")
_MTURK_ID = (re.compile(r"^[A-Z0-9]{1,64}$"), "1 to 64 upper-case letters or digits")
_RULES = {
    "PROLIFIC_PID": _PROLIFIC_ID,
    "STUDY_ID": _PROLIFIC_ID,
    "SESSION_ID": _PROLIFIC_ID,
    "workerId": _MTURK_WORKER,
    "assignmentId": _MTURK_ID,
    "hitId": _MTURK_ID,
}
# The provider's id of this visit: a browser may take over a participation
# that was started elsewhere only by presenting the same one (README).
SESSION_KEY = {Rater.Source.PROLIFIC: "SESSION_ID", Rater.Source.MTURK: "assignmentId"}


@dataclass(frozen=True)
class CrowdIdentity:
    source: str
    worker_id: str | None = None
    session: dict[str, str] = field(default_factory=dict)
    preview: bool = False

    @property
    def session_id(self) -> str | None:
        key = SESSION_KEY.get(self.source)
        return self.session.get(key) if key else None


def _checked(query: Mapping[str, str], key: str) -> str | None:
    value = query.get(key)
    if value is None or value == "":
        return None
    pattern, rule = _RULES[key]
    if not pattern.fullmatch(value):
        shown = f"{len(value)} characters" if len(value) > 40 or not value.isprintable() else value
        raise ApplicationError(
            f"{key} in the link is not valid: expected {rule}, got {shown}.",
            code="invalid_link",
            extra={"field": key},
        )
    return value


def _is_placeholder(value: str) -> bool:
    """Prolific's ``{{%NAME%}}`` left as is, possibly still URL-encoded (once or twice)."""
    for _ in range(3):
        if "{{%" in value or "%}}" in value:
            return True
        decoded = unquote(value)
        if decoded == value:
            return False
        value = decoded
    return False


def _refuse_prolific_placeholders(query: Mapping[str, str]) -> None:
    for key in PROLIFIC_KEYS:
        value = query.get(key)
        if value and _is_placeholder(value):
            raise ApplicationError(
                f"This link still has Prolific's placeholder ({key}={{{{%{key}%}}}}) instead "
                "of your Prolific details: open the study from Prolific (app.prolific.com) "
                "rather than copying its address, so that Prolific fills them in. "
                "(Researchers testing the link: put test ids in place of the placeholders.)",
                code="prolific_placeholder",
                extra={"field": key},
            )


def mturk_submit_host(value: str | None) -> str | None:
    """``value`` as the configured MTurk submit host it names, or None if it is not one.

    ``turkSubmitTo`` is an untrusted query parameter: only the hosts in
    ``settings.MTURK_SUBMIT_HOSTS`` are ever used (returned in their
    configured spelling, never the caller's).
    """
    if not value or len(value) > 200:
        return None
    wanted = value.strip().rstrip("/").lower()
    for host in settings.MTURK_SUBMIT_HOSTS.values():
        if host.rstrip("/").lower() == wanted:
            return host.rstrip("/")
    return None


def crowd_identity(query: Mapping[str, str]) -> CrowdIdentity:
    """The rater's provider and ids from the link's query string; 400 naming a bad field.

    Prolific: ``PROLIFIC_PID`` (+ ``STUDY_ID``, ``SESSION_ID``); a link whose
    ids are still Prolific's unreplaced placeholders is a 400 saying so.
    MTurk: ``workerId`` (+ ``assignmentId``, ``hitId``, and ``turkSubmitTo``
    if it is an allowed submit host; any other value is dropped); an MTurk
    preview (``assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE``, no worker) is
    flagged and must create nothing. Anything else is a plain link.
    """
    _refuse_prolific_placeholders(query)
    if query.get("PROLIFIC_PID") is not None:
        values = {k: _checked(query, k) for k in PROLIFIC_KEYS}
        if values["PROLIFIC_PID"] is None:
            raise ApplicationError("PROLIFIC_PID in the link is empty.", code="invalid_link")
        return CrowdIdentity(
            Rater.Source.PROLIFIC,
            values["PROLIFIC_PID"],
            {k: v for k, v in values.items() if v is not None},
        )
    if query.get("assignmentId") == MTURK_PREVIEW_ASSIGNMENT:
        return CrowdIdentity(Rater.Source.MTURK, preview=True)
    if query.get("workerId") is not None or query.get("assignmentId") is not None:
        values = {k: _checked(query, k) for k in MTURK_KEYS}
        if values["workerId"] is None:
            raise ApplicationError(
                "workerId is missing from the MTurk link.",
                code="invalid_link",
                extra={"field": "workerId"},
            )
        session = {k: v for k, v in values.items() if v is not None}
        submit_to = mturk_submit_host(query.get(TURK_SUBMIT_TO))
        if submit_to is not None:
            session[TURK_SUBMIT_TO] = submit_to
        return CrowdIdentity(Rater.Source.MTURK, values["workerId"], session)
    return CrowdIdentity(Rater.Source.LINK)


def _keyed_hash(kind: str, value: str) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def new_browser_id() -> str:
    return secrets.token_urlsafe(32)


def browser_id(cookies: Mapping[str, str]) -> str | None:
    value = cookies.get(BROWSER_COOKIE)
    return value if value and _BROWSER_ID.fullmatch(value) else None


def browser_hash(browser: str) -> str:
    return _keyed_hash("browser", browser)


def ip_hash(address: str) -> str:
    return _keyed_hash("ip", address)


def client_ip(meta: Mapping[str, str]) -> str:
    """The client's address; behind a proxy (``RATER_TRUSTED_PROXIES`` > 0) from X-Forwarded-For."""
    hops = settings.RATER_TRUSTED_PROXIES
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
    if hops and forwarded:
        chain = [part.strip() for part in forwarded.split(",") if part.strip()]
        if len(chain) >= hops:
            return chain[-hops]
    return meta.get("REMOTE_ADDR", "")


def participation_cookie(code: str) -> str:
    return f"xr_{code}"


def rater_token(*, code: str, participation_id: int) -> str:
    return signing.Signer(salt=_TOKEN_SALT).sign(f"{participation_id}.{code}")


def participation_id_from_token(token: str | None, *, code: str) -> int | None:
    """The participation id if ``token`` is genuine and was issued for experiment ``code``."""
    if not token or len(token) > 200:
        return None
    try:
        value = signing.Signer(salt=_TOKEN_SALT).unsign(token)
    except signing.BadSignature:
        return None
    pid, _, token_code = value.partition(".")
    return int(pid) if pid.isdigit() and token_code == code else None
