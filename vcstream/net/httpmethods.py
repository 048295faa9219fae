"""HTTP methods on the WebSocket port, answered as HTTP says.

websockets parses only what a WebSocket handshake needs: a request with a body (a ``POST``
with ``Content-Length``) fails its parser, and the connection is closed without a response.
So the daemon looks at the request line before the library does: ``GET`` and ``HEAD`` go on
to the library (and to ``process_request``, which answers ``HEAD`` with the headers of the
``GET`` and no body); any other method is answered at once, ``405 Method Not Allowed`` for
methods HTTP defines and ``501 Not Implemented`` for others, both with ``Allow: GET, HEAD``,
and the connection is closed (any body is never read).

This subclasses the library's sans-I/O ``ServerProtocol`` (websockets 17): ``install`` is
called by the server's ``create_connection`` hook before the connection sees a byte.
"""

from __future__ import annotations

import email.utils
import http
from collections.abc import Generator

from websockets.datastructures import Headers
from websockets.http11 import Response, parse_headers, parse_line
from websockets.protocol import CONNECTING
from websockets.server import ServerProtocol

ALLOWED = ("GET", "HEAD")
ALLOW_HEADER = ", ".join(ALLOWED)
# RFC 9110 section 9 and PATCH (RFC 5789): methods this server knows and does not allow.
KNOWN = frozenset({"POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
MAX_REQUEST_LINE = 8192  # the library's own limit for one line


def method_response(method: str) -> Response:
    status = (
        http.HTTPStatus.METHOD_NOT_ALLOWED if method in KNOWN else http.HTTPStatus.NOT_IMPLEMENTED
    )
    shown = method if method.isascii() and method.isprintable() else repr(method)
    body = f"{shown[:40]} is not supported here: use GET or HEAD\n".encode()
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Allow", ALLOW_HEADER),
            ("Content-Length", str(len(body))),
            ("Content-Type", "text/plain; charset=utf-8"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def head_of(response: Response) -> Response:
    """The response to HEAD: the GET's status and headers (Content-Length too), no body."""
    return Response(response.status_code, response.reason_phrase, response.headers, b"")


class MethodAwareProtocol(ServerProtocol):
    def parse(self) -> Generator[None]:
        if self.state is CONNECTING:
            buffer = self.reader.buffer
            while b"\n" not in buffer and not self.reader.eof and len(buffer) < MAX_REQUEST_LINE:
                yield  # wait for the request line, without consuming it
            method = bytes(buffer[: buffer.find(b" ")]).decode("latin-1")
            if b" " in buffer and method not in ALLOWED:
                try:
                    yield from parse_line(self.reader.read_line)
                    yield from parse_headers(self.reader.read_line)
                except Exception:
                    pass  # malformed as well: the method answer stands
                self.send_response(method_response(method))
                yield
                return
        yield from super().parse()


def install(protocol: ServerProtocol) -> ServerProtocol:
    """Make a fresh server protocol answer methods as above (before it has read anything)."""
    protocol.__class__ = MethodAwareProtocol
    protocol.parser = protocol.parse()
    next(protocol.parser)
    return protocol
