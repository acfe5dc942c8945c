"""Who may talk to `tidegate serve`, and what its answers may contain.

- **Binding.** Loopback by default. Any other address needs ``[serve] token``
  (:func:`check_binding`), and then every request must carry it: an
  ``Authorization: Bearer <token>`` header, or the session cookie that ``POST /api/login``
  sets after checking the token. Without a token, only loopback clients can connect, and
  the ``Host`` header must name a loopback host, so a web page that rebinds its own DNS
  name to 127.0.0.1 cannot read the API.
- **Cross-site requests.** Every state change is a POST, and a POST must carry the header
  ``X-Tidegate-Request: 1``. A page on another site cannot add that header without a CORS
  preflight, which tidegate never grants; an ``Origin`` or ``Sec-Fetch-Site`` that names
  another site is refused as well. The cookie is ``SameSite=Strict`` and ``HttpOnly``.
- **Secrets.** No answer contains a password from the source or target URL, or the token:
  JSON answers are rendered through :func:`redact`, and pages are static files.
- **Framing and scripts.** Pages forbid framing and allow scripts from tidegate itself only.
- **Request bodies.** No body is larger than :data:`MAX_BODY_BYTES`: one that says it is
  larger (``Content-Length``) is refused with 413 before a byte of it is read, and one sent
  without a length is refused as soon as it passes the limit (:class:`BodyLimit`). This
  holds before authentication too, so nobody can make the service buffer a large body.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from http.cookies import SimpleCookie
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidegate.errors import ConfigError

MAX_BODY_BYTES = 256 * 1024
"""The largest request body served: every API body is a few names or a token, so this
leaves room for thousands of entity names and none for a memory exhaustion."""
COOKIE = "tidegate_session"
REQUEST_HEADER = "x-tidegate-request"
OPEN_PATHS = ("/login", "/api/login", "/static/", "/favicon.svg")  # reachable before login
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def is_loopback(host: str) -> bool:
    """Whether an address or host name stays on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str) -> None:
    """Refuse to listen beyond this machine without a token.

    Raises:
        ConfigError: ``host`` is not a loopback address and ``token`` is empty.
    """
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"[serve] host {host!r} is reachable from other machines, and [serve] token is "
            "empty: not started",
            "set [serve] token to a long random string (every request must then carry it), "
            "or listen on 127.0.0.1",
        )


def session_value(token: str) -> str:
    """The cookie value that stands for the token (the token itself is never stored)."""
    return hmac.new(token.encode(), b"tidegate-session", hashlib.sha256).hexdigest()


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: no partial leak
        text = text.replace(secret, "***")
    return text


class Guard:
    """ASGI middleware enforcing the rules in this module's docstring.

    Args:
        app: the application.
        token: the required token; "" for none (loopback only).
    """

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self.token = token
        self.session = session_value(token) if token else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [
                    (name.encode(), value.encode())
                    for name, value in PAGE_HEADERS.items()
                    if name.encode() not in present
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope, headers: Headers) -> Response | None:
        path: str = scope["path"]
        if not self.token and not _loopback_host(headers.get("host", "")):
            return _refuse(400, "this dashboard answers to localhost and 127.0.0.1 only")
        if scope["method"] in UNSAFE_METHODS:
            problem = _cross_site(scope, headers)
            if problem:
                return _refuse(403, problem)
        if self.token and not path.startswith(OPEN_PATHS) and not self._authorized(headers):
            if path.startswith("/api/"):
                return _refuse(401, "a token is required: send 'Authorization: Bearer <token>'")
            return RedirectResponse("/login", status_code=303)
        return None

    def _authorized(self, headers: Headers) -> bool:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token_matches(given, self.token):
            return True
        cookie = SimpleCookie()
        cookie.load(headers.get("cookie", ""))
        session = cookie.get(COOKIE)
        return session is not None and hmac.compare_digest(session.value, self.session)


def token_matches(given: str, token: str) -> bool:
    """Whether a given token is the service's (in constant time)."""
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def _loopback_host(host_header: str) -> bool:
    """Whether a Host header (``localhost:8765``, ``[::1]:8765``) names this machine."""
    if host_header.startswith("["):
        return is_loopback(host_header[1:].partition("]")[0])
    return is_loopback(host_header.partition(":")[0])


def _cross_site(scope: Scope, headers: Headers) -> str:
    """Why a state-changing request may come from another site; "" when it cannot."""
    if headers.get(REQUEST_HEADER) != "1":
        return f"a state-changing request must carry the header '{REQUEST_HEADER}: 1'"
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return "cross-site requests are refused"
    origin = headers.get("origin")
    if origin is not None and origin != _own_origin(scope, headers):
        return f"requests from {origin} are refused"
    return ""


def _own_origin(scope: Scope, headers: Headers) -> str:
    return f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"


def _refuse(status: int, message: str) -> Response:
    body: dict[str, Any] = {"error": message, "hint": "", "code": ""}
    return JSONResponse(body, status_code=status, headers=PAGE_HEADERS)


class BodyLimit:
    """ASGI middleware that bounds every request body at ``limit`` bytes (413 beyond).

    A declared ``Content-Length`` over the limit is refused before the body is read. A body
    without one (chunked) is read here, at most ``limit`` bytes of it, and handed on whole;
    once it passes the limit the rest is never read and the answer is 413.
    """

    def __init__(self, app: ASGIApp, *, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._too_large(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replayed() -> Message:
            # Then the real channel, which tells the app when the client disconnects.
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = _refuse(413, f"a request body may hold at most {self.limit:,} bytes")
        # The rest of the body is never read: the connection cannot carry another request.
        answer.headers["connection"] = "close"
        await answer(scope, receive, send)
