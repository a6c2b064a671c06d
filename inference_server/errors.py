"""The one error type of request handling: what is wrong with a request and how to fix it."""

from __future__ import annotations

_ERROR_CODES = {
    400: "BAD_REQUEST",
    404: "ENDPOINT_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    500: "INTERNAL_ERROR",
    503: "TEMPORARILY_UNAVAILABLE",
}


def error_code(status: int) -> str:
    """Return the MLflow-style ``error_code`` string for an HTTP ``status``."""
    return _ERROR_CODES.get(status, "BAD_REQUEST" if 400 <= status < 500 else "INTERNAL_ERROR")


class RequestError(Exception):
    """A request the server cannot score, with the HTTP status to answer.

    Parameters
    ----------
    message
        Says what is wrong and how to fix it; returned to the client verbatim.
    status
        HTTP status code (400, 413 or 415).
    """

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def to_dict(self) -> dict[str, object]:
        """Return the JSON error body (MLflow's ``error_code``/``message`` plus ``status``)."""
        return {"error_code": error_code(self.status), "status": self.status,
                "message": self.message}
