"""Errors raised by the cohortd client: one exception type carrying the
gRPC status code and the server's message (which names the field, the
allowed values, the budget remaining, or the retry hint)."""

import re

import grpc

_RETRY_MS = re.compile(r"retry after (\d+) ms")


class CohortdError(Exception):
    """A call failed. `code` is the grpc.StatusCode (e.g.
    grpc.StatusCode.RESOURCE_EXHAUSTED), `message` the server's text,
    `retry_after` the seconds the server asked to wait (rate limits), or
    None."""

    def __init__(self, code, message, method=""):
        self.code = code
        self.message = message
        self.method = method
        match = _RETRY_MS.search(message or "")
        self.retry_after = int(match.group(1)) / 1000.0 if match else None
        where = f"{method}: " if method else ""
        super().__init__(f"{where}{code.name}: {message}")

    @classmethod
    def from_rpc_error(cls, error, method=""):
        """Wraps a grpc.RpcError (as raised by the stubs)."""
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        return cls(code, details or "", method)


class BudgetExhaustedError(CohortdError):
    """RESOURCE_EXHAUSTED for a privacy budget (not a rate limit): retrying
    will not help; the message says what remains and what was asked."""
