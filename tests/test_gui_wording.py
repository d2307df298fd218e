"""Counts in the app's texts agree with their noun ("1 cluster", "2 clusters"), through formatting.counted."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from helpers_gui import make_result


def test_a_collapsed_sweep_says_1_cluster_not_1_clusters():
    from embscope.analysis.graph import knn_graph
    from embscope.tasks.clusters import cluster_sweep_job
    from embscope.tasks.progress import run_job

    x = np.tile(np.ones((1, 8), dtype=np.float32), (40, 1))
    x += np.random.default_rng(0).normal(size=x.shape).astype(np.float32) * 1e-7
    labels = np.array([f"l{i % 5}" for i in range(40)])
    sweep = run_job(cluster_sweep_job(knn_graph(x, 10), labels, labels))
    lines = [line for line in sweep.evidence_lines() if line.startswith("MCL I=")]
    assert lines and all(": 1 cluster (" in line for line in lines)
    assert not any("1 clusters" in line or " 1 singletons" in line for line in lines)


def test_the_clusters_panel_counts_a_selection_within_one_cluster_in_the_singular(qtbot):
    from embscope.gui.model import ViewModel
    from embscope.gui.panels.clusters import ClustersPanel

    model = ViewModel()
    panel = ClustersPanel(model)
    qtbot.addWidget(panel)
    result = make_result(n=300)
    model.set_result(result)
    ids = panel.ids[panel.inflation]
    one = np.flatnonzero(ids == ids[0])[:1]
    model.set_selection(one)
    assert panel.selection_label.text().startswith("Selection: 1 sample in 1 cluster — largest:")
    two = np.concatenate([one, np.flatnonzero(ids != ids[0])[:2]])
    model.set_selection(two)
    assert " 3 samples in " in panel.selection_label.text()


def test_the_map_legend_counts_one_colour_in_the_singular(qtbot):
    from embscope.gui.model import ViewModel
    from embscope.gui.panels.map import MapPanel

    panel = MapPanel(ViewModel())
    qtbot.addWidget(panel)
    panel._colouring = SimpleNamespace(continuous=False, names=["leaf0"], title="leaf")
    assert panel._legend_title().startswith("1 colour by leaf — ")
    panel._colouring = SimpleNamespace(continuous=False, names=["leaf0", "leaf1"], title="leaf")
    assert panel._legend_title().startswith("2 colours by leaf — ")


def test_the_map_legend_names_other_also_when_missing_data_comes_after_it(qtbot):
    from embscope.gui.model import ViewModel
    from embscope.gui.panels.map import MapPanel

    panel = MapPanel(ViewModel())
    qtbot.addWidget(panel)
    names = ["3", "7", "other (412)", "not in the MCL sample"]
    panel._colouring = SimpleNamespace(continuous=False, names=names, title="cluster (I = 2)")
    assert panel._legend_title().startswith("4 colours by cluster (I = 2) · smallest share grey “other” — ")
    panel._colouring = SimpleNamespace(continuous=False, names=["3", "7", "(no label)"], title="leaf")
    assert "other" not in panel._legend_title()
