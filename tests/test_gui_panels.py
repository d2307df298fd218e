"""Each panel built from a known result shows what the result says (pytest-qt, offscreen)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from embscope.formatting import counted
from helpers_gui import make_result, make_weights, mcl_row  # noqa: E402


@pytest.fixture(scope="module")
def result():
    return make_result(n=300, weights=make_weights())


@pytest.fixture(scope="module")
def collapsed_result():
    return make_result(n=120, collapsed=True, clusters=False, predictions="collapsed")


@pytest.fixture
def model(qtbot, result):
    from embscope.gui.model import ViewModel
    from embscope.gui.render.plots import configure_pyqtgraph

    configure_pyqtgraph()
    return ViewModel()


def test_overview_shows_verdict_evidence_and_coloured_grades(qtbot, model, result, collapsed_result):
    from embscope.gui.panels.overview import OverviewPanel
    from embscope.gui.render.plots import GRADE_COLOURS

    panel = OverviewPanel(model)
    qtbot.addWidget(panel)
    model.set_result(result)
    assert panel.headline.text() == result.verdict.headline
    assert f"k-NN graph: {result.graph.describe()}" in panel.source_label.text()  # method and recall
    graded_rows = [r for r in range(panel.table.rowCount()) if panel.table.item(r, 3).text() != "ungraded"]
    assert len(graded_rows) == len(result.grades)
    # Each row reads "Report wording  [metric_key]".
    shown = {panel.table.item(r, 0).text().rsplit("[", 1)[-1].rstrip("]"): r for r in range(panel.table.rowCount())}
    for name, grade in result.grades.items():
        row = shown[name]
        assert panel.table.item(row, 3).text() == grade.grade
        assert panel.table.item(row, 3).background().color().name() == GRADE_COLOURS[grade.grade]
    model.set_result(collapsed_result)
    assert collapsed_result.verdict.label == "collapsed_to_point"
    assert panel.headline.text().startswith("Collapsed to a point")
    assert GRADE_COLOURS["POOR"] in panel.headline.styleSheet()
    for line in collapsed_result.verdict.evidence:
        assert line.split()[0] in panel.evidence.text()


def test_spectrum_curves_markers_toggle_and_readout(qtbot, model, result):
    from embscope.gui.panels.spectrum import SpectrumPanel

    panel = SpectrumPanel(model)
    qtbot.addWidget(panel)
    model.set_result(result)
    sv = result.geometry.spectrum.singular_values
    curves = [item for item in panel.spectrum_plot.listDataItems()]
    x, y = curves[0].getData()
    # Log mode: the curve stores σ and shows log10 σ; compare to the analysis' spectrum.
    np.testing.assert_allclose(curves[0].yData, sv[sv > 0], rtol=1e-6)
    lines = {
        round(item.value(), 6) for item in panel.spectrum_plot.items if hasattr(item, "angle") and item.angle == 90
    }
    m = result.geometry.metrics
    for key in ("effective_rank", "participation_ratio", "dims_for_95_variance"):
        assert round(float(m[key]), 6) in lines
    panel.normalised_box.setChecked(True)
    curves = panel.spectrum_plot.listDataItems()
    assert curves[0].yData[0] == pytest.approx(1.0)
    np.testing.assert_allclose(curves[0].yData, (sv / sv[0])[sv > 0], rtol=1e-6)
    cum = np.cumsum(result.geometry.spectrum.covariance_eigenvalues)
    cum /= cum[-1]
    assert f"{cum[2]:.1%}" in panel.readout_at(3)
    assert panel.readout_at(10_000).startswith(f"k = {len(sv)}:")


def test_spectrum_shows_a_concept_sets_per_sample_spectrum_only_for_concept_sets(qtbot, model, result, rng):
    from embscope.data import EmbeddingSet
    from embscope.gui.panels.spectrum import SpectrumPanel
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job
    from embscope.tasks.progress import run_job

    panel = SpectrumPanel(model)
    qtbot.addWidget(panel)
    # Every sample's 8 concepts mix 2 directions of its own: σ₁ = σ₂-ish, then nothing.
    v = np.einsum("ncr,nrd->ncd", rng.standard_normal((60, 8, 2)), rng.standard_normal((60, 2, 16)))
    concept_result = run_job(
        analyze_job(AnalyzeRequest.of(embeddings=EmbeddingSet(v.astype(np.float32)), clusters=False))
    )
    model.set_result(concept_result)
    assert panel.concept_plot.scene() is not None and "concept_spectrum" in panel.plot_items()
    assert panel.export_size == (3 * SpectrumPanel.PLOT_WIDTH, 690)
    # The median curve is each sample's σₖ/σ₁ by numpy, its median over samples (floored at round-off).
    sv = np.linalg.svd(v.astype(np.float32).astype(np.float64), compute_uv=False)
    median = np.maximum(np.median(sv / sv[:, :1], axis=0), 1e-7)
    curves = panel.concept_plot.listDataItems()
    np.testing.assert_allclose(curves[-1].yData[:2], median[:2], rtol=1e-5)
    assert np.all(curves[-1].yData[2:] < 1e-5)
    lines = {round(i.value(), 6) for i in panel.concept_plot.items if getattr(i, "angle", None) == 90}
    mean_rank = concept_result.concepts.metrics["per_sample_effective_rank_mean"]
    assert lines == {round(mean_rank, 6), 0.5 * 8}  # the mean effective rank and the grade's target
    assert f"mean effective rank {mean_rank:.2f} of 8" in panel.concept_readout_at(3)
    # A pooled result takes the third plot away again.
    model.set_result(result)
    assert panel.concept_plot.scene() is None and "concept_spectrum" not in panel.plot_items()
    assert panel.export_size == (2 * SpectrumPanel.PLOT_WIDTH, 690)


def test_predictions_bars_base_rate_and_confusion(qtbot, model, result):
    import pyqtgraph as pg

    from embscope.gui.panels.predictions import PredictionsPanel

    panel = PredictionsPanel(model)
    qtbot.addWidget(panel)
    model.set_result(result)
    report = result.predictions
    bars = [i for i in panel.bar_plot.items if isinstance(i, pg.BarGraphItem)]
    heights = bars[0].opts["width"]  # horizontal bars: the share is the bar's length
    emb = result.embeddings
    classes, counts = np.unique(emb.predictions, return_counts=True)
    top = sorted(counts / len(emb.predictions), reverse=True)[: len(heights)]
    np.testing.assert_allclose(sorted(heights, reverse=True), top)
    base = max(np.unique(emb.labels, return_counts=True)[1]) / len(emb.labels)
    assert any(getattr(i, "angle", None) == 90 and i.value() == pytest.approx(base) for i in panel.bar_plot.items)
    image = next(i for i in panel.confusion_plot.items if isinstance(i, pg.ImageItem))
    conf = report.confusion / report.confusion.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(image.image, conf[::-1])
    assert "Mode collapse" not in panel.flags_label.text()


def test_weights_table_spectra_and_unused_rows(qtbot, model, result):
    from embscope.gui.panels.weights import WeightsPanel

    panel = WeightsPanel(model)
    qtbot.addWidget(panel)
    model.set_result(result)
    weights = result.weights
    assert panel.table.rowCount() == len(weights.parameters)
    names = {panel.table.item(r, 0).text(): r for r in range(panel.table.rowCount())}
    row = names["layer.weight"]
    expected = np.linalg.norm(np.asarray(_state()["layer.weight"], dtype=np.float64))
    assert float(panel.table.item(row, 2).text()) == pytest.approx(expected, rel=1e-3)
    assert panel.table.item(names["layer.bias"], 6).text() == "zero"
    assert "<b>5</b> unused rows" in panel.embeddings_label.text()
    assert "2 dead normalisation channels" in panel.summary_label.text()
    assert "<b>out.LayerNorm.weight</b>: 2 of 8 gains ≈ 0 (channels 2, 6)" in panel.embeddings_label.text()
    assert panel.table.item(names["out.LayerNorm.weight"], 6).text() == "2 dead channels"
    # A model with dead channels in many layers: five spelt out, the rest counted.
    from embscope.analysis.weights import inspect_weights

    gain = np.array([1, 0, 1, 1], np.float32)
    many = inspect_weights({f"layers.{i}.norm.weight": gain for i in range(8)})
    model.set_result(dataclasses.replace(result, weights=many))
    text = panel.embeddings_label.text()
    assert text.count("1 of 4 gains ≈ 0") == 5 and "… and 3 more layers with dead channels" in text
    model.set_result(result)
    assert len(panel.spectra_plot.listDataItems()) == len(weights.matrices)
    panel.table.selectRow(row)
    assert len(panel.spectra_plot.listDataItems()) == 1


def test_weight_spectra_show_the_matrices_of_lowest_relative_rank_by_default(qtbot):
    import pyqtgraph as pg

    from embscope.analysis.weights import inspect_weights
    from embscope.gui.render.plots import draw_weight_spectra

    rng = np.random.default_rng(4)
    state = {f"blocks.{i}.weight": rng.normal(size=(32, 32)) for i in range(14)}
    state["blocks.12.weight"] = rng.normal(size=(32, 2)) @ rng.normal(size=(2, 32))  # rank 2, deep in the model
    weights = inspect_weights(state)
    widget = pg.PlotWidget()
    qtbot.addWidget(widget)
    draw_weight_spectra(widget.getPlotItem(), weights, max_curves=3)
    names = [item.name().split(" (")[0] for item in widget.getPlotItem().listDataItems()]
    ranked = sorted(weights.matrices, key=lambda m: m.effective_rank)[:3]
    assert "blocks.12.weight" in names and set(names) == {m.name for m in ranked}
    assert names == sorted(names, key=list(state).index)  # in state-dict order
    assert "the 3 of 14 lowest in effective rank / min(m, n)" in widget.getPlotItem().titleLabel.text


def _state():
    rng = np.random.default_rng(1)
    rng.normal(0, 1, size=(50, 8)).astype(np.float32)
    return {"layer.weight": rng.normal(0, 1, size=(8, 8)).astype(np.float32)}


def test_clusters_slider_shows_cached_and_requests_new_inflation(qtbot, model, result):
    from embscope.gui.panels.clusters import ClustersPanel
    from embscope.tasks.progress import CancelToken, run_job

    panel = ClustersPanel(model)
    qtbot.addWidget(panel)
    model.set_result(result)
    rows = {r["inflation"]: r for r in result.summary["clusters"]["inflations"]}
    assert panel.inflation == 2.0
    assert panel.value_labels["n_clusters"].text() == str(rows[2.0]["n_clusters"])
    assert model.inflation == 2.0 and np.array_equal(model.cluster_ids, result.clusters.cluster_ids[2.0])
    panel.set_inflation(3.0)  # cached in the sweep: shown at once, no request
    assert panel.value_labels["n_clusters"].text() == str(rows[3.0]["n_clusters"])
    # An inflation outside the sweep is asked for as a job (MCL on the graph's cluster cache);
    # running it — here inline, in the window on a worker — updates the numbers live.
    emb = result.embeddings
    with qtbot.waitSignal(panel.job_requested, timeout=2000) as blocker:
        panel.set_inflation(5.5)
    job = blocker.args[0]
    assert "5.5" in job.description and "computing MCL at I = 5.50" in panel.status_label.text()
    # Until it arrives the read-outs show no number: not I = 3's under "I = 5.50".
    assert {label.text() for label in panel.value_labels.values()} == {"…"}
    job.on_finished(run_job(job.make_job(CancelToken())))
    row, ids = mcl_row(result.graph, emb.labels, emb.parents, 5.5)  # purity by hand
    purity_text = panel.value_labels["purity_leaf"].text()
    # The value first, then its chance baseline for the same clusters (issue 10).
    assert purity_text.split("  (")[0] == f"{row['purity_leaf']:.4g}" and "(chance " in purity_text
    assert panel.value_labels["n_clusters"].text() == str(row["n_clusters"])
    assert model.inflation == 5.5 and len(np.unique(model.cluster_ids)) == row["n_clusters"]
    assert len(panel.count_plot.listDataItems()[0].xData) == 4


def test_map_colours_hover_and_lasso_selection(qtbot, model, result):
    from embscope.gui.panels.map import MapPanel, points_in_polygon

    panel = MapPanel(model)
    qtbot.addWidget(panel)
    model.set_result(result)
    coords = result.sample_vectors[:, :2].copy()
    model.set_layout(coords, "pca")
    assert panel.n_drawn == result.embeddings.n_samples and panel.mode == "points"
    labels = result.embeddings.labels
    assert len(panel.points.groups()) == len(np.unique(labels))  # one paint call per colour
    brushes = panel.point_colours()
    # Same label ⇒ same colour; different labels ⇒ different colours.
    colour = {lab: brushes[np.flatnonzero(labels == lab)[0]] for lab in np.unique(labels)}
    assert len(set(colour.values())) == len(colour)
    assert all(brushes[i] == colour[labels[i]] for i in range(len(labels)))
    for name, count in panel.points.groups():  # each group holds exactly the points of its colour
        assert count == sum(c == name for c in brushes)
    assert sorted(panel.points.rows.tolist()) == list(range(len(labels)))
    # Hover: the KD-tree finds the sample under the point and describes it in a tooltip.
    with qtbot.waitSignal(panel.hovered) as blocker:
        panel.show_hover(panel.sample_at(*coords[42]))
    assert blocker.args == [42]
    assert "id0042" in panel.tooltip.text() and labels[42] in panel.tooltip.text()
    # Lasso: a polygon around some points selects exactly those inside (checked by hand).
    centre = coords.mean(axis=0)
    polygon = centre + np.array([[-3, -3], [3, -3], [3, 3], [-3, 3]], dtype=float)
    panel.select_polygon(polygon)
    inside = np.flatnonzero((np.abs(coords - centre) <= 3).all(axis=1))
    np.testing.assert_array_equal(model.selection, inside)
    assert panel.selection_list.count() == len(inside)
    assert panel.highlight.n_drawn == len(inside)
    tri = np.array([[0, 0], [4, 0], [0, 4]], dtype=float)
    pts = np.array([[1, 1], [3, 3], [-1, 1], [0.5, 3]])
    np.testing.assert_array_equal(points_in_polygon(pts, tri), [True, False, False, True])
    # Colour by norm is continuous; by cluster uses the model's cluster ids.
    panel.colour_combo.setCurrentText("cluster")
    model.set_clusters(2.0, result.clusters.cluster_ids[2.0])
    cid = result.clusters.cluster_ids[2.0]
    brushes = panel.point_colours()
    same = np.flatnonzero(cid == cid[0])
    assert len({brushes[i] for i in same}) == 1
    assert "cluster (I = 2)" in panel.plot.titleLabel.text  # which clustering the colours are
    panel.colour_combo.setCurrentText("norm")
    norms = result.geometry.norms
    lo, hi = np.argmin(norms), np.argmax(norms)
    assert panel.point_colours()[lo] != panel.point_colours()[hi]


def test_clicking_a_point_lists_its_graph_neighbours(qtbot, model, result):
    from embscope.gui.panels.map import MapPanel

    panel = MapPanel(model)
    qtbot.addWidget(panel)
    model.set_result(result)
    model.set_layout(result.sample_vectors[:, :2], "pca")
    panel.select_neighbours(7)
    expected = np.unique(np.r_[7, result.graph.indices[7]])
    np.testing.assert_array_equal(model.selection, expected)
    assert panel.selection_list.item(0).text().startswith("● id0007")
    assert panel.selection_list.count() == len(expected)


def test_selection_links_every_panel(qtbot, model, result):
    import pyqtgraph as pg

    from embscope.gui.panels.clusters import ClustersPanel
    from embscope.gui.panels.map import MapPanel
    from embscope.gui.panels.overview import OverviewPanel
    from embscope.gui.panels.predictions import PredictionsPanel

    panels = [P(model) for P in (MapPanel, OverviewPanel, ClustersPanel, PredictionsPanel)]
    for p in panels:
        qtbot.addWidget(p)
    model.set_result(result)
    model.set_layout(result.sample_vectors[:, :2], "pca")
    rows = np.flatnonzero(result.embeddings.labels == "leaf3")[:20]
    panels[0].select_polygon(np.array([[-1e9, -1e9], [1e9, -1e9], [1e9, 1e9], [-1e9, 1e9]]))
    assert len(model.selection) == result.embeddings.n_samples
    model.set_selection(rows, origin="test")
    map_panel, overview, clusters, predictions = panels
    assert map_panel.highlight.n_drawn == 20
    assert "20 samples" in overview.selection_label.text() and "leaf3 (20)" in overview.selection_label.text()
    n_clusters = len(np.unique(result.clusters.cluster_ids[2.0][rows]))
    assert f"in {counted(n_clusters, 'cluster')}" in clusters.selection_label.text()
    overlay = [i for i in predictions.bar_plot.items if isinstance(i, pg.BarGraphItem)]
    assert len(overlay) == 2  # distribution + the selection's own
    counts = predictions.selected_counts()
    assert sum(counts.values()) == 20
    model.clear_selection()
    assert overview.selection_label.text() == "" and map_panel.highlight.n_drawn == 0


def test_clusters_grid_fills_the_cache_and_the_slider_answers_from_it(qtbot, model, result):
    """After the first result the panel asks for the background grid; grid values then show without a job."""
    from embscope.gui.panels.clusters import ClustersPanel
    from embscope.gui.workers import JobRunner

    # Each job runs inline, as the window's worker (slider requests) and the panel's own (the grid) would.
    panel = ClustersPanel(model, grid_runner=JobRunner("grid-test", synchronous=True))
    qtbot.addWidget(panel)
    panel.grid_inflations = [5.0, 4.5, 2.5, 1.8]
    runner = JobRunner("slider-test", synchronous=True)
    requests = []

    def run(job) -> None:
        requests.append(job.description)
        runner.start(job.make_job, on_finished=job.on_finished)

    panel.job_requested.connect(run)
    model.set_result(result)
    panel.show()  # the grid starts once the panel is shown with a result
    assert panel.grid_state == "finished" and requests == []  # the grid is not the window's work
    assert panel.grid_label.text() == "precomputed all 4 inflations" and not panel.grid_button.isVisible()
    cache = model.cluster_cache()
    assert {5.0, 4.5, 2.5, 1.8} <= set(cache.rows)
    emb = result.embeddings
    for inflation in (4.5, 1.8):
        requests.clear()
        panel.set_inflation(inflation)  # from the cache: no job, numbers at once
        assert requests == []
        row, ids = mcl_row(result.graph, emb.labels, emb.parents, inflation)  # purity by hand
        assert panel.value_labels["n_clusters"].text() == str(row["n_clusters"])
        assert panel.value_labels["purity_leaf"].text().split("  (")[0] == f"{row['purity_leaf']:.4g}"
        assert model.inflation == inflation and np.array_equal(model.cluster_ids, ids)
        assert panel.status_label.text() == ""
    # The curves show the sweep's points and the grid's.
    assert {1.8, 2.5, 4.5, 5.0} <= set(np.round(panel.count_plot.listDataItems()[0].xData, 2))

    # Off the grid: the panel says it is computing, asks for it, and the grid job resumes afterwards.
    requests.clear()
    panel.slider.setValue(panel.slider.value() + 3)  # 1.83: as a drag would
    assert f"computing MCL at I = {panel.inflation:.2f}" in panel.status_label.text()
    qtbot.waitUntil(lambda: requests[:1] == [f"MCL I={panel.inflation:g}"], timeout=5000)
    assert requests == [f"MCL I={panel.inflation:g}"]  # grid finished already: nothing to resume
    assert panel.status_label.text() == "" and cache.row(panel.inflation) is not None


def test_cluster_grid_job_is_cancellable_and_keeps_what_it_computed(result):
    from embscope.errors import Cancelled
    from embscope.tasks.clusters import ClusterCache, cluster_grid_job, inflation_grid
    from embscope.tasks.progress import CancelToken

    grid = inflation_grid()
    assert len(grid) == len(set(grid)) == 97 and grid[:3] == [6.0, 5.5, 5.0]  # coarse first, 0.05 apart at the end
    assert sorted(grid) == [round(1.2 + 0.05 * i, 2) for i in range(97)]
    cache = ClusterCache(result.graph)
    token = CancelToken()
    job = cluster_grid_job(cache, result.embeddings.labels, None, [3.3, 2.2, 1.7], token)
    next(job)  # announces 3.3
    next(job)  # 3.3 done, announces 2.2
    token.cancel()
    with pytest.raises(Cancelled):
        next(job)
    assert list(cache.rows) == [3.3] and cache.cached(3.3) is not None and cache.cached(1.7) is None
    # A second run computes only what is missing.
    rest = cluster_grid_job(cache, result.embeddings.labels, None, [3.3, 2.2, 1.7], CancelToken())
    with pytest.raises(StopIteration) as stop:
        while True:
            next(rest)
    assert stop.value.value == 2 and set(cache.rows) == {3.3, 2.2, 1.7}


def test_every_metric_a_picker_offers_has_words(result):
    """Layers, Series and Compare list every scalar metric: each offered one reads as words, not a key."""
    from embscope.analysis.series import scalar_metrics
    from embscope.data import EmbeddingSet
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job
    from embscope.tasks.progress import run_job
    from embscope.tasks.report import is_plotted_metric, metric_words

    rng = np.random.default_rng(0)
    codes = np.repeat(np.arange(6), 30)
    x = (rng.normal(size=(6, 8))[codes] * 3 + rng.normal(size=(180, 8))).astype(np.float32)
    labels = codes.astype(str)
    labelled = EmbeddingSet(x, labels=labels, parents=np.where(codes < 3, "p", "q"), predictions=labels)
    analysed = run_job(analyze_job(AnalyzeRequest.of(embeddings=labelled, knn=5, inflations=(1.4, 2.0))))
    names = set(scalar_metrics(analysed.summary)) | set(scalar_metrics(result.summary))  # the latter has weights
    assert {"purity_parent_z", "knn_label_z", "predictions.accuracy", "weights.dead_norm_channels"} <= names
    assert sorted(n for n in names if is_plotted_metric(n) and metric_words(n) is None) == []
    assert not is_plotted_metric("knn_label_chance_std") and not is_plotted_metric("n_samples")
    assert metric_words("weights.layer.weight.stable_rank") == "layer.weight: stable rank"
    assert metric_words("no_such_metric") is None
