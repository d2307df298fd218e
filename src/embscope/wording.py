"""Advice in a note, worded for the command line and for the app.

An error carries both wordings itself (:class:`~embscope.errors.BadInputError`'s
``in_app``).  A note cannot: it is a plain string that travels through the
extraction cache, ``summary.json``, ``report.md`` and comparisons
(``"healthy.npy: …"``), so it keeps the command line's words.  The advice in it
is an :class:`Advice`, and the app shows every note through :func:`app_words`,
which puts each advice's app wording (a form field, a menu) in place of the
command line's (a flag).
"""

from __future__ import annotations

from dataclasses import dataclass

from embscope.options import form_label


@dataclass(frozen=True)
class Advice:
    """What to do: ``cli`` as the command line says it (naming a flag), ``app`` as the app does."""

    cli: str
    app: str

    def __str__(self) -> str:
        return self.cli


#: "labels taken from column 'word' of x.tsv (--label-column picks another)".
PICK_ANOTHER_LABEL_COLUMN = Advice(
    "--label-column picks another", f"choose another in the {form_label('label_column')} field"
)
#: "labels have 2,017 distinct values for 2,017 samples: …; --label-column picks a class column (lexfile)".
PICK_A_CLASS_COLUMN = Advice(
    "--label-column picks a class column", f"choose a class column in the {form_label('label_column')} field"
)
#: Every advice a note can hold (app_words replaces these).
NOTE_ADVICE = (PICK_ANOTHER_LABEL_COLUMN, PICK_A_CLASS_COLUMN)


def app_words(note: str) -> str:
    """``note`` as the app shows it: each :data:`NOTE_ADVICE`'s command-line words replaced by the app's."""
    text = str(note)
    for advice in NOTE_ADVICE:
        text = text.replace(advice.cli, advice.app)
    return text
