"""Command-line interface: ``embscope analyze|modules|weights|map|compare|series|layers|gui|demo``.

Only argparse is imported at module level so that ``embscope --help`` is
instant; each command imports what it needs.  Exit codes: 0 ok, 2 bad input
(one line on stderr), 3 verdict is not healthy with ``--fail-on-collapse``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Sequence

from embscope.commands import EXIT_BAD_INPUT, EXIT_NOT_HEALTHY, EXIT_OK  # noqa: F401 (re-exported)


class OneLineArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line on stderr (exit 2), like every other bad input.

    No abbreviated options: `layers --layer 2` must be refused, not read as `--layers 2`.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._words: list[str] = []

    def parse_known_args(self, args=None, namespace=None):  # noqa: D102 - remembers the words for error()
        self._words = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str):  # noqa: D102 - argparse's hook
        command = self._command_parser()
        hint = _did_you_mean(message, command)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}{hint} (see {command.prog} --help)\n")

    def _command_parser(self) -> argparse.ArgumentParser:
        """The parser of the command that was run (``embscope analyze``), else this one.

        argparse reports unknown options from the top-level parser, which does not hold the
        command's options, so the command is found among the words that were parsed.
        """
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return next((action.choices[w] for w in self._words if w in action.choices), self)
        return self


def _did_you_mean(message: str, parser: argparse.ArgumentParser) -> str:
    """``; did you mean --meta?`` for ``--metadata``: the closest option ``parser`` offers."""
    prefix = "unrecognized arguments: "
    if not message.startswith(prefix):
        return ""
    import difflib

    known = [flag for flag in parser._option_string_actions if flag.startswith("--") and flag != "--help"]
    for word in message[len(prefix) :].split():
        close = difflib.get_close_matches(word.split("=", 1)[0], known, n=1, cutoff=0.6)
        if word.startswith("--") and close:
            return f"; did you mean {close[0]}?"
    return ""


SOURCE_HELP = (
    "embeddings file (.npy, .npz, .safetensors, .pt, .parquet, .csv, .tsv), checkpoint file (with --factory), "
    "Hugging Face model folder, or 'demo' (the bundled demo embeddings)"
)
OUT_HELP = "output folder, created if missing; a finished run replaces its files as one set (required)"


def _add_settings(p: argparse.ArgumentParser, command: str) -> None:
    """The options of the settings model (embscope.options) that ``command`` offers."""
    from embscope.options import SOURCE_COMMANDS, add_options

    add_options(p, command)
    if command in SOURCE_COMMANDS:
        # A limit of this process, not a setting of the analysis (it changes no result): not in the model.
        p.add_argument(
            "--max-memory",
            metavar="SIZE",
            help="largest input to load, e.g. 8G or 50%% (default: half the available memory; env EMBSCOPE_MAX_MEMORY)",
        )


def _add_layers_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--layers",
        nargs="?",
        const="",
        default=None,
        metavar="RULE",
        help=f"also sweep every layer of each checkpoint (optional RULE: module globs as for `layers`): {what} "
        "(default: off; RULE default: the embedding module and every block)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="embscope",
        description=(
            "Inspect the geometry of neural-network embeddings: is the representation healthy or collapsed? "
            "With no command, opens the desktop app on the bundled demo (as `embscope gui` does). "
            "Exit codes: 0 ok; 1 internal error (or a failed `gui --self-test`); 2 bad input (one line on stderr); "
            "3 verdict not healthy with `analyze --fail-on-collapse`; 130 interrupted."
        ),
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("analyze", help="analyse embeddings or a checkpoint; write summary.json, report.md, arrays.npz")
    p.add_argument("source", help=SOURCE_HELP)
    _add_settings(p, "analyze")
    p.add_argument(
        "--fail-on-collapse", action="store_true", help="exit 3 when the verdict is not healthy (default: off, exit 0)"
    )
    p.add_argument("--png", action="store_true", help="also render the plots as PNG files (default: off)")
    p.add_argument("--out", required=True, metavar="DIR", help=OUT_HELP)
    p.set_defaults(handler="embscope.commands.analyze:run")

    p = sub.add_parser("modules", help="print a checkpoint's module tree")
    p.add_argument(
        "source",
        help="checkpoint file (with --factory) or Hugging Face model folder; "
        "--data gives the output shapes (a folder with a tokenizer probes itself)",
    )
    _add_settings(p, "modules")
    p.set_defaults(handler="embscope.commands.modules:run")

    p = sub.add_parser("weights", help="a checkpoint's weights with no data: norms, spectra, dead heads and channels")
    p.add_argument(
        "source", help="Hugging Face model folder or state dict (.safetensors, .pt, .bin; .pt2 with --trust)"
    )
    p.add_argument(
        "--trust", action="store_true", help="allow files that need full unpickling (runs their code; default: off)"
    )
    p.add_argument("--out", metavar="DIR", help="also write weights.json and weights.md there (default: print only)")
    p.set_defaults(handler="embscope.commands.weights:run")

    p = sub.add_parser("map", help="2-D layout (PCA and UMAP) of embeddings")
    p.add_argument("source", help=SOURCE_HELP)
    _add_settings(p, "map")
    p.add_argument(
        "--method",
        choices=["umap", "pca"],
        default="umap",
        help="umap writes layout_pca.npy and layout_umap.npy, pca only layout_pca.npy (default: umap)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help=OUT_HELP)
    p.set_defaults(handler="embscope.commands.layout:run")

    p = sub.add_parser("compare", help="compare two or more sources on the same data")
    p.add_argument(
        "sources",
        nargs="+",
        help="two or more sources (as for analyze), each read with the same options and --data",
    )
    _add_settings(p, "compare")
    _add_layers_option(p, "compare_layers.json and every source's metric-vs-depth curves on one plot")
    p.add_argument("--out", required=True, metavar="DIR", help=OUT_HELP)
    p.set_defaults(handler="embscope.commands.compare:run")

    p = sub.add_parser("series", help="metrics over a folder of checkpoints")
    p.add_argument(
        "folder",
        help="folder of checkpoints (.safetensors, .pt, .pth, .bin, .ckpt, .pt2 files or model folders), "
        "one per training step",
    )
    _add_settings(p, "series")
    p.add_argument(
        "--pattern",
        metavar="REGEX",
        help="regular expression whose first group is the step (default: the number after step, global_step, "
        "checkpoint, ckpt, epoch or iter in each name, or an all-digit name)",
    )
    p.add_argument(
        "--train-log",
        metavar="FILE",
        help="the run's log (loss, learning rate …) shown beside the metrics: a trainer_state.json, JSON "
        "lines or CSV with a step column (default: a trainer_state.json, train_log.jsonl or train_log.csv in "
        "the folder, else a Hugging Face Trainer's last checkpoint's trainer_state.json)",
    )
    _add_layers_option(p, "series_layers.json and heat-maps of each metric over step × layer")
    p.add_argument("--out", required=True, metavar="DIR", help=OUT_HELP)
    p.set_defaults(handler="embscope.commands.series:run")

    p = sub.add_parser("layers", help="metrics of every layer in one forward pass: where does it collapse?")
    p.add_argument("source", help="checkpoint file (with --factory) or Hugging Face model folder")
    _add_settings(p, "layers")
    p.add_argument(
        "--layers",
        metavar="RULE",
        help="modules to sweep: comma-separated globs over module names, * = one name part, ** = any "
        "(default: the embedding module and every block of the longest module list)",
    )
    p.add_argument(
        "--sample-size",
        type=int,
        default=2048,
        metavar="N",
        help="rows per layer used by the collapse ratio and kNN label accuracy (default: 2048; spectra use all)",
    )
    p.add_argument("--no-png", action="store_true", help="skip the metric-vs-depth PNGs (default: write them)")
    p.add_argument("--out", required=True, metavar="DIR", help=OUT_HELP)
    p.set_defaults(handler="embscope.commands.layers:run")

    p = sub.add_parser("gui", help="open the desktop app")
    p.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="embeddings files, checkpoints or model folders to open (default: the bundled demo embeddings); "
        "the load options below apply to each (e.g. a model folder with --data texts.csv)",
    )
    _add_settings(p, "gui")
    p.add_argument(
        "--self-test",
        action="store_true",
        help="open the window, run the analysis end to end, print each stage's time and READY, exit 0 "
        "(1 on failure) (default: off)",
    )
    p.add_argument(
        "--session",
        metavar="FILE",
        help="restore a session saved with File ▸ Save session… (its sources, settings, inflation, selection, "
        "colouring and tab; the sources are analysed again) (default: none)",
    )
    p.set_defaults(handler="embscope.commands.gui:run")

    p = sub.add_parser("demo", help="open the app on the bundled demo (healthy vs collapsed)")
    p.set_defaults(handler="embscope.commands.gui:run_demo")
    return parser


def _version() -> str:
    from embscope import __version__

    return f"embscope {__version__}"


def _resolve(spec: str) -> Callable[[argparse.Namespace], int]:
    import importlib

    module_name, func = spec.split(":")
    return getattr(importlib.import_module(module_name), func)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        # Bare `embscope` opens the app on the demo, as a double-click would.
        args = parser.parse_args(["gui"])
    import os

    from embscope.errors import BadInputError

    debug = bool(os.environ.get("EMBSCOPE_DEBUG"))
    try:
        if hasattr(args, "max_memory"):  # per run: an earlier in-process run's limit must not stick
            from embscope.sources.limits import set_max_memory

            set_max_memory(args.max_memory or None)
        from embscope.commands.library_noise import LibraryNoise

        # Library warnings become input notes of the report (commands add them), not stderr lines.
        with LibraryNoise(debug=debug):
            return int(_resolve(args.handler)(args) or EXIT_OK)
    except BadInputError as exc:
        print(f"embscope: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("embscope: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed early (`embscope analyze … | head -1`): the output files are written
        # before anything is printed, so this is not an error.  Point stdout at /dev/null so
        # the interpreter's final flush does not complain either.
        import os

        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # a bug, not bad input: one line unless asked for more
        if isinstance(exc, SystemError) and isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            # Ctrl-C inside a compiled callback (numba) surfaces as SystemError: still an interrupt.
            print("embscope: interrupted", file=sys.stderr)
            return 130
        if debug:
            raise
        print(
            f"embscope: internal error: {type(exc).__name__}: {exc} (set EMBSCOPE_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        if hasattr(args, "max_memory"):  # ... nor outlive it: in-process callers get the default back
            from embscope.sources.limits import set_max_memory

            set_max_memory(None)


def gui_main() -> int:
    """Entry point of the ``embscope-gui`` gui-script (double-click)."""
    return main(["gui", *sys.argv[1:]])
