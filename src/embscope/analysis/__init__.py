"""Pure analysis: metrics, graph, MCL, layout, verdict. Never imports Qt."""
