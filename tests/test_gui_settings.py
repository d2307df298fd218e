"""Settings: versioned JSON round trip; broken or old files never block start-up."""

from __future__ import annotations

import json

from embscope.gui.settings import MAX_RECENT, SETTINGS_VERSION, Settings, load_settings, save_settings


def test_round_trip_and_recent_files(tmp_path):
    path = tmp_path / "settings.json"
    s = Settings()
    for i in range(MAX_RECENT + 3):
        s.add_recent(f"/data/{i}.npy")
    s.add_recent("/data/3.npy")
    s.colour_by = "parent"
    assert save_settings(s, path)
    raw = json.loads(path.read_text())
    assert raw["version"] == SETTINGS_VERSION
    loaded = load_settings(path)
    assert loaded == s
    assert loaded.recent_files[0] == "/data/3.npy" and len(loaded.recent_files) == MAX_RECENT
    assert loaded.recent_files.count("/data/3.npy") == 1


def test_broken_files_fall_back_to_defaults(tmp_path):
    path = tmp_path / "settings.json"
    for text in ("{not json", "[1, 2]", "", "\x00\xff"):
        path.write_text(text, encoding="latin-1")
        assert load_settings(path) == Settings()
    assert load_settings(tmp_path / "missing.json") == Settings()


def test_wrong_types_are_dropped_field_by_field_and_unknown_keys_ignored(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(
        json.dumps(
            {
                "version": 99,
                "recent_files": "not a list",
                "colour_by": "rainbow",
                "spectrum_normalised": True,
                "device": 3,
                "from_the_future": {"x": 1},
            }
        )
    )
    s = load_settings(path)
    assert s.recent_files == [] and s.colour_by == "leaf" and s.device == "auto"
    assert s.spectrum_normalised is True


def test_default_location_follows_the_config_dir_override(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBSCOPE_CONFIG_DIR", str(tmp_path / "cfg"))
    assert save_settings(Settings(colour_by="norm"))
    assert (tmp_path / "cfg" / "settings.json").is_file()
    assert load_settings().colour_by == "norm"


def test_save_failure_keeps_the_old_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert save_settings(Settings(), blocker / "settings.json") is False
