"""The one exception of the HTTP family."""

from __future__ import annotations


class HTTPParseError(Exception):
    """A message that cannot be forwarded safely.

    ``status`` is what the proxy answers: 4xx/5xx for a client's request (400, 431, 501, 505),
    502 for a backend's response. ``reason`` names the rule that was broken, for logs; it is not
    sent to the client verbatim unless the caller chooses to.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
