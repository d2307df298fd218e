"""Entry point of the frozen EmbScope bundle (``dist/EmbScope/EmbScope``).

``EmbScope`` alone opens the demo, ``EmbScope FILE…`` opens files (as a
double-click or a drop would), ``EmbScope --self-test`` runs the demo end to
end and prints READY; a first argument naming a subcommand
(``EmbScope analyze …``) runs the command-line interface instead.
"""

import multiprocessing
import sys

# Subcommands and flags handed to the CLI as they are; anything else is "open these in the window".
CLI_FIRST = {"analyze", "modules", "map", "compare", "series", "gui", "demo", "-h", "--help", "--version"}


def main() -> int:
    multiprocessing.freeze_support()
    # numba's cache needs nothing here: a frozen app's kernels are cached in numba's user-wide
    # folder (~/.cache/numba), keyed on this executable (see embscope.spec).
    from embscope.cli import main as cli_main

    argv = sys.argv[1:]
    if argv and argv[0] in CLI_FIRST:
        return cli_main(argv)
    return cli_main(["gui", *argv])


if __name__ == "__main__":
    sys.exit(main())
