"""Who may connect: loopback detection, Origin and Host checks, token comparison. No I/O."""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

LOOPBACK_NAMES = {"localhost", "localhost.", "ip6-localhost"}


def is_loopback_host(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    h = host.strip().strip("[]").lower()
    if h in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def zmq_endpoint_host(endpoint: str) -> str | None:
    """Host part of a ``tcp://host:port`` endpoint; None for transports that are local by
    nature (``ipc://``, ``inproc://``)."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return None
    host = rest.rsplit(":", 1)[0] if ":" in rest else rest
    # tcp://eth0:5555 style interface names and "*" both mean "not loopback" unless known.
    return host.split(";")[-1]


def zmq_endpoint_is_local(endpoint: str) -> bool:
    host = zmq_endpoint_host(endpoint)
    return host is None or is_loopback_host(host)


def token_matches(given: str | None, expected: str) -> bool:
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _hostname(host_header: str) -> str:
    # "example.org:8765", "[::1]:8765", "127.0.0.1"
    return urlsplit(f"//{host_header}").hostname or ""


def origin_allowed(
    origin: str | None,
    host_header: str | None,
    allowed_origins: list[str],
    *,
    server_is_loopback: bool,
) -> bool:
    """May a connection with this ``Origin`` drive the daemon?

    * No Origin: not a browser (browsers always send one on WebSocket), allowed; the
      token, when required, still applies.
    * An origin in ``allowed_origins`` (exact match, or ``"*"``).
    * The daemon's own page: Origin ``http(s)://<Host header>``. On a loopback server the
      Host itself must be a loopback name, else a DNS-rebinding page (evil.example
      resolving to 127.0.0.1) would pass as "own origin".
    """
    if origin is None:
        return True
    origin = origin.strip().rstrip("/")
    allowed = {o.strip().rstrip("/") for o in allowed_origins}
    if "*" in allowed or origin in allowed:
        return True
    if origin == "null" or not host_header:
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    if parts.netloc.lower() != host_header.strip().lower():
        return False
    return not server_is_loopback or is_loopback_host(_hostname(host_header))
