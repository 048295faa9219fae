"""Network edges: WebSocket and ZeroMQ servers, wire protocol, client (see docs/protocol.md)."""
