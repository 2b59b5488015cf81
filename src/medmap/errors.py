"""Errors a user can fix: shown as one clear paragraph, never as a stack trace."""


class UserFacingError(Exception):
    """A problem with the input or configuration whose message says what went wrong and how
    to fix it. The command-line entry points print it without a traceback."""


class DatasetUnavailableError(UserFacingError):
    """The dataset file is not on disk and could not be downloaded."""


class BadImageError(UserFacingError):
    """An image file could not be decoded."""


class TrainingStopped(Exception):
    """Training was stopped from outside (SIGTERM, SIGUSR1) after saving a checkpoint. The
    command line exits with ``exit_code`` (as a process killed by SIGTERM would), so a
    scheduler sees an unfinished run; running the same command again resumes it."""

    exit_code = 143  # 128 + SIGTERM
