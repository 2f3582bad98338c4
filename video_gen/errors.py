"""The exceptions that cross the engine's boundary, and the exit code each one means."""

from __future__ import annotations


class VideoGenError(Exception):
    """Base of every error the engine raises on purpose."""

    exit_code = 2


class InvalidRequest(VideoGenError, ValueError):
    """The user asked for something not allowed: the message names the input and what is allowed."""

    exit_code = 1

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class ModelNotFound(InvalidRequest):
    """No usable model under the requested name, or a model folder that is missing parts."""

    def __init__(self, message: str):
        super().__init__("model", message)


class GenerationFailed(VideoGenError):
    """Something went wrong while generating (not the user's input)."""


class Cancelled(VideoGenError):
    """The job was cancelled with `Generator.cancel()`."""

    def __init__(self, message: str = "cancelled by the user"):
        super().__init__(message)


class PartialKept(Cancelled):
    """A long job was stopped (Ctrl+C) after some of its segments were made, and those were kept as a playable
    file named as a partial one (`path`); raised only when the caller asked for it (`keep_partial`)."""

    def __init__(self, message: str, path=None, segments_done: int = 0, segments: int = 0):
        super().__init__(message)
        self.path, self.segments_done, self.segments = path, segments_done, segments


def first_line(error: BaseException) -> str:
    """An exception's message in one line (for one-line user messages); its type's name if it has none."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
