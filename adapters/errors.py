"""Protocol-native errors: what an adapter raises when wire input is unusable.

The gateway turns a `ProtocolError` into the client's own error format, so an SDK
raises its normal exception type with a readable message.
"""

from __future__ import annotations

from typing import Any


class ProtocolError(Exception):
    """A request or response that cannot be handled, with the status to answer."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param
        self.headers = headers or {}


def openai_error_body(err: ProtocolError) -> dict[str, Any]:
    """The OpenAI error envelope the `openai` SDK parses into `APIStatusError.message`."""
    return {
        "error": {
            "message": err.message,
            "type": err.error_type,
            "param": err.param,
            "code": err.code,
        }
    }
