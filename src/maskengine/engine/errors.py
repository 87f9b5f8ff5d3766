"""Errors of the engine's services; the server maps each to one HTTP status."""

from __future__ import annotations


class EngineError(Exception):
    """Base class: a request the engine refuses, with a message for the person."""


class NotFound(EngineError):
    """404: the named record does not exist (or is deleted)."""


class Conflict(EngineError):
    """409: the record changed since the caller read it."""


class Forbidden(EngineError):
    """403: the user's role does not allow this."""


class InvalidField(EngineError):
    """422: a field of the request is wrong; `field` is its path, e.g. ("body", "box")."""

    def __init__(self, field: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class BadImage(EngineError):
    """422: an image file that is missing or cannot be decoded."""
