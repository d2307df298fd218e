"""The session file format without Qt: round trip, strictness, one-line errors for bad files."""

from __future__ import annotations

import json

import pytest

from embscope.errors import BadInputError
from embscope.options import AnalysisSettings, LoadSettings
from embscope.tasks.session_file import (
    FORMAT,
    SessionSource,
    SessionState,
    SessionView,
    dumps,
    loads,
    read_session,
    write_session,
)


def _state(tmp_path) -> SessionState:
    checkpoint = SessionSource(
        str(tmp_path / "model.safetensors"),
        AnalysisSettings(
            load=LoadSettings(data=str(tmp_path / "data.npy"), module="embed_norm", batch_size=16, trust=True),
            knn=7,
            inflations=(1.4, 2.5),
            clusters=False,
        ),
        is_checkpoint=True,
        label="demo: healthy",
    )
    embeddings = SessionSource(str(tmp_path / "emb.npy"), AnalysisSettings(load=LoadSettings(meta="m.csv")))
    view = SessionView(tab="Map", colour_by="parent", inflation=2.5, selection=(3, 5, 40), n_samples=300)
    return SessionState((checkpoint, embeddings), current=1, view=view)


def test_round_trip_keeps_every_field(tmp_path):
    state = _state(tmp_path)
    path = write_session(state, tmp_path / "s.embscope.json")
    assert read_session(path) == state
    raw = json.loads(path.read_text())
    assert raw["format"] == FORMAT and raw["version"] == 1
    assert raw["sources"][0]["settings"]["load.batch_size"] == 16
    assert raw["sources"][0]["settings"]["inflations"] == [1.4, 2.5]


def test_defaults_fill_missing_settings_and_relative_paths_resolve_from_the_file(tmp_path):
    text = json.dumps({"format": FORMAT, "version": 1, "sources": [{"path": "emb.npy", "settings": {"knn": 5}}]})
    (tmp_path / "s.json").write_text(text)
    state = read_session(tmp_path / "s.json")
    [source] = state.sources
    assert source.path == str(tmp_path.resolve() / "emb.npy")
    assert source.settings == AnalysisSettings(knn=5)
    assert state.current is None and state.view == SessionView()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(format="other"), "not an EmbScope session file"),
        (lambda r: r.update(version=2), "version 2 is newer"),
        (lambda r: r.update(extra=1), "unknown key 'extra'"),
        (lambda r: r["sources"][0]["settings"].update(knn=0), "--knn must be at least 1"),
        (lambda r: r["sources"][0]["settings"].update(bogus=1), "unknown setting 'bogus'"),
        (lambda r: r["sources"][0].update(path=3), "sources[0].path must be text"),
        (lambda r: r.update(current=5), "current is 5, but the file has 2 sources"),
        (lambda r: r["view"].update(selection=[1, -2]), "whole numbers ≥ 0"),
        (lambda r: r["view"].update(selection=[400]), "has row 400, but n_samples is 300"),
        (lambda r: r["view"].update(inflation=1.0), "greater than 1"),
        (lambda r: r.pop("sources"), "lacks 'sources'"),
    ],
)
def test_a_bad_file_is_one_line_naming_it(tmp_path, edit, message):
    raw = json.loads(dumps(_state(tmp_path)))
    edit(raw)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(BadInputError) as info:
        read_session(path)
    text = str(info.value)
    assert message in text and text.startswith("bad.json: ") and "\n" not in text


def test_not_json_nan_and_binary_are_refused(tmp_path):
    with pytest.raises(BadInputError, match="not valid JSON"):
        loads("{")
    raw = dumps(_state(tmp_path)).replace('"inflation": 2.5', '"inflation": NaN')
    with pytest.raises(BadInputError, match="not valid JSON: NaN is not JSON"):
        loads(raw)
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(BadInputError, match="not a session file"):
        read_session(tmp_path / "bin.json")
    with pytest.raises(BadInputError, match="not found"):
        read_session(tmp_path / "missing.json")
