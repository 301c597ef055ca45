"""Errors of the sandbox.

::

    CallstreamError
    +-- SandboxError                 anything the sandbox raises
        +-- ApiError                 a request is answered with an error status and platform code
        +-- SandboxClientError       the control client got an unexpected answer from a sandbox
"""

from __future__ import annotations

from callstream.exceptions import CallstreamError


class SandboxError(CallstreamError):
    """Root of the sandbox's errors."""


class ApiError(SandboxError):
    """The platform's answer to a bad request: an HTTP status and ``{"code", "message"}``."""

    def __init__(self, code: str, message: str, *, http_status: int = 400) -> None:
        self.code = code
        self.message = message
        self.http_status = http_status
        super().__init__(f"{http_status} {code}: {message}")


class SandboxClientError(SandboxError):
    """A control request to a sandbox (``/_sandbox/...``) failed."""

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        self.http_status = http_status
        super().__init__(message)
