"""Error type carrying Sage's v3.1 error-array shape."""


class ApiError(Exception):
    """An API failure rendered as ``[{"$severity", "$dataCode", "$message", "$source"}]``."""

    def __init__(self, status, data_code, message, source="", headers=None):
        super().__init__(message)
        self.status = status
        self.data_code = data_code
        self.message = message
        self.source = source
        self.headers = headers or {}

    def body(self):
        """Return the JSON-serialisable error array."""
        return [{"$severity": "error", "$dataCode": self.data_code,
                 "$message": self.message, "$source": self.source}]


def invalid(message, source=""):
    """422 validation failure (``RecordInvalid``)."""
    return ApiError(422, "RecordInvalid", message, source)


def not_found(what="Record"):
    """404 for an unknown id or endpoint."""
    return ApiError(404, "RecordNotFound", f"{what} not found")
