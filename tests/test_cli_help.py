"""``--help``: every option and positional is described, options state their default, commands offer what they use."""

from __future__ import annotations

import argparse

import pytest

from embscope.cli import build_parser, main


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (group,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(group.choices)


COMMANDS = _subparsers(build_parser())
#: argparse's own actions: described by argparse itself.
_BUILTIN = (argparse._HelpAction, argparse._VersionAction)


def _own_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, _BUILTIN)]


def test_the_top_level_help_names_the_commands_the_bare_command_and_the_exit_codes():
    text = build_parser().format_help()
    for command in COMMANDS:
        assert command in text
    assert "With no command, opens the desktop app" in text
    for code in ("0 ok", "2 bad input", "3 verdict not healthy", "130 interrupted"):
        assert code in text
    assert all(_subparser_help(command) for command in COMMANDS)


def _subparser_help(command: str) -> str:
    (group,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return next(a.help for a in group._choices_actions if a.dest == command)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_and_positional_has_a_description_and_options_their_default(command):
    parser = COMMANDS[command]
    for action in _own_actions(parser):
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS and len(action.help) > 10, f"{command} {name}"
        if action.option_strings:
            # What happens when the option is not given: its default, or that it must be given.
            assert "default" in action.help or (action.required and "required" in action.help), f"{command} {name}"
    text = parser.format_help()  # argparse formats every help (a stray % would raise here)
    assert "--help" in text


#: The options each command offers, beyond -h.  Each is read by the command's handler (commands/*.py)
#: or by main() (--max-memory): modules opens and probes a checkpoint (no extraction, no labels); map lays
#: out vectors (labels unused, no thresholds); layers sweeps every module itself (no --module/--layer),
#: keeps no cache and opens no embeddings files (no --nonfinite); gui opens sources with every load option.
_LOAD = {"--data", "--factory", "--trust", "--max-memory"}
_EXTRACT = _LOAD | {"--pooling", "--device", "--dtype", "--batch-size"}
_ONE_MODULE = _EXTRACT | {"--module", "--layer", "--no-cache", "--nonfinite", "--no-model-normalize"}
_ANALYSIS = {"--thresholds", "--no-graph", "--knn", "--no-clusters", "--mcl-full", "--inflations"}
_LABELS = {"--meta", "--parents", "--label-column", "--parent-column"}
OFFERED = {
    "analyze": _ONE_MODULE | _LABELS | _ANALYSIS | {"--fail-on-collapse", "--png", "--out"},
    "modules": _LOAD,
    "weights": {"--trust", "--out"},  # a state dict read safely: no data, no architecture, no analysis
    "map": _ONE_MODULE | {"--knn", "--method", "--out"},
    "compare": _ONE_MODULE | _LABELS | _ANALYSIS | {"--purity-inflation", "--layers", "--out"},
    "series": _ONE_MODULE
    | _LABELS
    | _ANALYSIS
    | {"--purity-inflation", "--pattern", "--train-log", "--layers", "--out"},
    "layers": _EXTRACT | _LABELS | {"--thresholds", "--layers", "--sample-size", "--no-png", "--out"},
    "gui": _ONE_MODULE | _LABELS | {"--self-test", "--session"},  # the load options, applied to the sources it opens
    "demo": set(),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_offers_exactly_the_options_it_uses(command):
    offered = {flag for action in _own_actions(COMMANDS[command]) for flag in action.option_strings}
    assert offered == OFFERED[command]


@pytest.mark.parametrize(
    ("words", "refused"),
    [
        (["modules", "m.safetensors", "--pooling", "mean"], "--pooling"),
        (["modules", "m.safetensors", "--meta", "m.csv"], "--meta"),
        (["map", "e.npy", "--meta", "m.csv", "--out", "o"], "--meta"),
        # not read as an abbreviation of --layers either
        (["layers", "m.safetensors", "--data", "d.npy", "--layer", "2", "--out", "o"], "--layer"),
        (["layers", "m.safetensors", "--data", "d.npy", "--no-cache", "--out", "o"], "--no-cache"),
    ],
)
def test_an_option_a_command_does_not_use_is_refused_in_one_line(words, refused, capsys):
    with pytest.raises(SystemExit) as info:  # argparse exits, as the console script does
        main(words)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"unrecognized arguments: {refused}" in err


@pytest.mark.parametrize(
    ("words", "hint"),
    [
        # The app calls the field "Metadata CSV"; the flag is --meta.
        (
            ["analyze", "e.npy", "--metadata", "m.csv", "--out", "o"],
            "; did you mean --meta? (see embscope analyze --help)",
        ),
        (
            ["analyze", "e.npy", "--metadata=m.csv", "--out", "o"],
            "; did you mean --meta? (see embscope analyze --help)",
        ),
        # The closest option of the command that was run, not of another command.
        (["layers", "m.safetensors", "--data", "d.npy", "--layer", "2", "--out", "o"], "; did you mean --layers?"),
        (["modules", "m.safetensors", "--pooling", "mean"], " (see embscope modules --help)"),
        (["--fooo"], " (see embscope --help)"),
    ],
)
def test_an_unknown_option_names_the_closest_one_and_the_commands_help(words, hint, capsys):
    with pytest.raises(SystemExit) as info:
        main(words)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and hint in err
    if "did you mean" not in hint:
        assert "did you mean" not in err
