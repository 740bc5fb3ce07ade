"""Failures on the backend leg, each with the status the client gets."""

from __future__ import annotations


class UpstreamError(Exception):
    """A backend could not be used for this request.

    ``status`` is what the client is answered (502 for a refused, broken or invalid backend,
    504 for a timeout); ``reason`` names the backend and what went wrong, for the log.
    """

    def __init__(self, status: int, reason: str, *, backend: str = "", kind: str = "") -> None:
        self.status = status
        self.reason = reason
        self.backend = backend
        #: What failed, for metrics (a handshake-failure reason); empty: derived from status.
        self.kind = kind
        super().__init__(f"{status} from {backend or 'backend'}: {reason}")
