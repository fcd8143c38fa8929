"""Each reader-speed lever alone: the model's forward passes over the same windows, interleaved.

The windows of --questions SQuAD v1.1 dev questions x 10 paragraphs (reader_throughput.py's set)
run through the shipped reader, one question per call, under each configuration; configurations
take turns for --rounds rounds and the median ms/question of each is reported with its ratio to
the previous default (bf16 autocast over fp32 weights, fixed batches of 16). Forward passes
only: tokenizing and decoding are the same for every configuration.

    .venv/bin/python benchmarks/reader_levers.py                     # torch configurations
    .venv/bin/python benchmarks/reader_levers.py --compile --openvino # also torch.compile, OpenVINO
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _common import DEFAULT_DATASETS, reader_model, table  # noqa: E402
from _machine import format_machine, machine_info  # noqa: E402
from reader_throughput import build_jobs, fixed_batches  # noqa: E402


def torch_runner(model, plan, autocast: bool = False):  # type: ignore[no-untyped-def]
    import torch

    from qa_system.reader.windows import pad_batch

    def run(windows) -> None:  # type: ignore[no-untyped-def]
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            for batch in plan([w.length for w in windows]):
                arrays = pad_batch([windows[i] for i in batch], 0)
                model(**{k: torch.from_numpy(v) for k, v in arrays.items()}).start_logits.float()
    return run


def openvino_runner(model, plan, sample, folder: Path):  # type: ignore[no-untyped-def]
    import openvino as ov
    import torch

    from qa_system.reader.windows import pad_batch

    arrays = pad_batch(sample[:2], 0)
    path = folder / "reader.onnx"
    torch.onnx.export(copy.deepcopy(model).float(), tuple(torch.from_numpy(arrays[k]) for k in
                      ("input_ids", "attention_mask", "token_type_ids")), str(path),
                      input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["start", "end"],
                      dynamic_axes={n: {0: "b", 1: "s"} for n in ("input_ids", "attention_mask", "token_type_ids",
                                                                   "start", "end")}, opset_version=17, dynamo=False)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "bf16",
                                                          "INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1})
    request = compiled.create_infer_request()

    def run(windows) -> None:  # type: ignore[no-untyped-def]
        for batch in plan([w.length for w in windows]):
            request.infer(pad_batch([windows[i] for i in batch], 0))
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also torch.compile (inductor, weight freezing)")
    ap.add_argument("--openvino", action="store_true", help="also OpenVINO bf16 (pip install openvino onnx)")
    args = ap.parse_args()

    import torch

    from qa_system.config import load_settings
    from qa_system.reader import ExtractiveReader
    from qa_system.reader.windows import BF16_BATCH_COST, plan_batches
    from qa_system.types import Passage

    torch.set_num_threads(1)
    model_dir, _ = reader_model(None, Path(tempfile.gettempdir()))
    reader = ExtractiveReader(model_dir, settings=load_settings(torch_threads=1), precision="fp32").load()
    state = reader._loaded()
    per_question = [
        reader._tokenize(state, [job["question"]], [[Passage(i, str(i), "b", None, t, 0, len(t), 1.0)
                                                     for i, t in enumerate(job["passages"])]])
        for job in build_jobs(args.datasets, args.questions, 10, 13)]
    fp32 = state.model
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)
    eager = copy.deepcopy(bf16)
    eager.set_attn_implementation("eager")
    fixed = lambda lengths: fixed_batches(lengths, 16)  # noqa: E731
    planned = lambda lengths: plan_batches(lengths, 16, BF16_BATCH_COST)  # noqa: E731
    runs = {
        "bf16 autocast, fixed batches of 16 (previous default)": torch_runner(fp32, fixed, autocast=True),
        "fp32, fixed batches of 16": torch_runner(fp32, fixed),
        "bf16 weights, fixed batches of 16": torch_runner(bf16, fixed),
        "bf16 weights, eager attention, cost-model batches": torch_runner(eager, planned),
        "bf16 weights, cost-model batches (default)": torch_runner(bf16, planned),
    }
    if args.compile:
        import torch._inductor.config as inductor

        inductor.freezing = True
        runs["bf16 weights, cost-model batches, torch.compile"] = torch_runner(
            torch.compile(copy.deepcopy(bf16), dynamic=True), planned)
    folder = tempfile.TemporaryDirectory(prefix="reader-levers-")
    if args.openvino:
        runs["OpenVINO bf16, cost-model batches"] = openvino_runner(fp32, planned, per_question[0], Path(folder.name))
    for run in runs.values():  # warm-up (and compile)
        run(per_question[0])
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.rounds):
        for name, run in runs.items():
            began = time.perf_counter()
            for windows in per_question:
                run(windows)
            times[name].append(1000 * (time.perf_counter() - began) / len(per_question))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{t[-1]:.0f}" for t in times.values()), flush=True)
    base = statistics.median(next(iter(times.values())))
    print(f"\nreader forward passes, {len(per_question)} questions x 10 passages, one question per call, "
          f"1 thread, median of {args.rounds} interleaved rounds")
    print(table(["configuration", "ms/question", "min", "max", "speed vs previous default"],
                [[name, f"{statistics.median(t):.0f}", f"{min(t):.0f}", f"{max(t):.0f}",
                  f"{base / statistics.median(t):.2f}x"] for name, t in times.items()]))
    print(format_machine(machine_info()))


if __name__ == "__main__":
    main()
