"""The console's access rule: one random token per server, as Jupyter's server does.

The URL the server prints carries the token (``/?token=T``); the first request
with it sets a cookie (``HttpOnly``, ``SameSite=Strict``) holding a value
derived from the token, and redirects to a URL without it.  Programs may send
``Authorization: token T`` instead.  Every other request is refused (401)
without revealing anything.  A state-changing request (a POST) must also carry
``X-CSRF-Token`` with the page's CSRF value, and an ``Origin`` header, if the
browser sends one, must be the server's own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

#: Bytes of randomness in a token (256 bits, as ``secrets.token_urlsafe(32)``).
TOKEN_BYTES = 32
#: The header a POST carries the CSRF value in.
CSRF_HEADER = "x-csrf-token"


def new_token() -> str:
    """A fresh URL-safe token (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


class Access:
    """Checks requests against one token.

    Args:
        token: the server's token.
        port: the server's port, part of the cookie's name (cookies are shared
            between the ports of one host, so two consoles must not overwrite each other's).
    """

    def __init__(self, token: str, port: int) -> None:
        self.token = token
        self.cookie_name = f"orch-console-{port}"
        self.cookie_value = self._derive(b"cookie")
        self.csrf = self._derive(b"csrf")

    def _derive(self, purpose: bytes) -> str:
        return hmac.new(self.token.encode(), purpose, hashlib.sha256).hexdigest()

    def token_ok(self, given: str | None) -> bool:
        """True if ``given`` is the token (compared in constant time)."""
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def allowed(self, cookies: dict[str, str], query_token: str | None, authorization: str | None) -> bool:
        """True if a request carries the cookie, the token in its query, or ``Authorization: token T``."""
        cookie = cookies.get(self.cookie_name)
        if cookie and hmac.compare_digest(cookie.encode(), self.cookie_value.encode()):
            return True
        if self.token_ok(query_token):
            return True
        if authorization:
            scheme, _, value = authorization.partition(" ")
            return scheme.lower() in ("token", "bearer") and self.token_ok(value.strip())
        return False

    def csrf_ok(self, header: str | None, origin: str | None, host: str | None) -> bool:
        """True if a POST carries the CSRF value and, if it says where it comes from, comes from this server."""
        if not header or not hmac.compare_digest(header.encode(), self.csrf.encode()):
            return False
        if origin is None:
            return True
        return origin != "null" and urlsplit(origin).netloc == (host or "")
