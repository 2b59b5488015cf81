"""Errors a user can fix: shown as one clear paragraph, never as a stack trace."""


class UserFacingError(Exception):
    """A problem with the input or configuration whose message says what went wrong and how
    to fix it. The command-line entry points print it without a traceback."""


class DatasetUnavailableError(UserFacingError):
    """The dataset file is not on disk and could not be downloaded."""


class BadImageError(UserFacingError):
    """An image file could not be decoded."""
