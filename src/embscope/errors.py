"""Errors that carry a one-line message meant for the user."""


class BadInputError(ValueError):
    """Input the user gave cannot be used.

    The message is a single line that says what is wrong and, where it helps,
    what to do; the CLI prints it and exits with status 2, the GUI shows it in
    a dialog.  Never raise it with a multi-line message.

    A message that tells the user which option to set names it as the
    command line does (``--knn``, ``pass --trust``).  The app has no flags: it
    has form fields and check boxes, so such an error also carries the same
    advice in the app's words (``in_app``), which the GUI shows instead
    (:attr:`app_message`).  ``str(error)`` stays the CLI's line.
    """

    def __init__(self, message: str, *, in_app: str | None = None) -> None:
        super().__init__(_one_line(message))
        self.in_app = None if in_app is None else _one_line(in_app)

    @property
    def app_message(self) -> str:
        """The message as the app words it (the CLI's line when both front ends say the same)."""
        return self.in_app or str(self)

    def __reduce__(self):
        # Exception pickling rebuilds from ``args`` alone and would drop the app's wording.
        return (_rebuild, (type(self), str(self), self.in_app))


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _rebuild(cls: type, message: str, in_app: str | None) -> BadInputError:
    return cls(message, in_app=in_app)


class Cancelled(Exception):
    """A long job was cancelled by the user; not an error."""


def check_cancel(cancel) -> None:
    """Raise :class:`Cancelled` if ``cancel`` (a CancelToken or None) was cancelled.

    Lives here rather than in ``tasks`` so pure analysis code can honour
    cancellation without importing a higher layer.
    """
    if cancel is not None and cancel.cancelled:
        raise Cancelled()
