"""Errors that carry a one-line message meant for the user."""


class BadInputError(ValueError):
    """Input the user gave cannot be used.

    The message is a single line that says what is wrong and, where it helps,
    what to do; the CLI prints it and exits with status 2, the GUI shows it in
    a dialog.  Never raise it with a multi-line message.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class Cancelled(Exception):
    """A long job was cancelled by the user; not an error."""


def check_cancel(cancel) -> None:
    """Raise :class:`Cancelled` if ``cancel`` (a CancelToken or None) was cancelled.

    Lives here rather than in ``tasks`` so pure analysis code can honour
    cancellation without importing a higher layer.
    """
    if cancel is not None and cancel.cancelled:
        raise Cancelled()
