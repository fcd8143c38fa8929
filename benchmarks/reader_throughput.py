"""Reader throughput at k = 10 passages per question: ours vs the book's loop vs Haystack.

Same model folder, same questions, same passages (each SQuAD v1.1 dev question with its own
paragraph and 9 other paragraphs of the same article, shuffled), same torch thread count:

  (a) ours: qa_system's ExtractiveReader in its default precision for this machine (bf16 where
      the CPU computes it natively), several questions per read_batch() call and one question
      per call; where the default is bf16, also (a0) the bf16 path before the reader-speed work
      (fp32 weights under autocast, fixed batches: the baseline) and fp32; with --int8 also int8
      dynamic quantisation;
  (b) the book's plain loop (NLP with Transformers, ch. 7): tokenizer + AutoModelForQuestionAnswering,
      one passage at a time, argmax of start and end logits, best passage by start+end logit;
  (c) Haystack's extractive reader — haystack-ai 3.x with transformers-haystack's
      TransformersExtractiveReader (haystack-ai 2.x's ExtractiveReader as a fallback) — run by
      benchmarks/haystack_reader_worker.py inside its own venv (created here on first use).

Reported for each thread count: passages/s, ms per question, time relative to (a) batched, and
top-1 EM/F1 of each on the same questions (no-answer disabled everywhere: the best span is the
answer).

    .venv/bin/python benchmarks/reader_throughput.py                # full: 100 questions
    .venv/bin/python benchmarks/reader_throughput.py --quick        # smoke test: 4 questions
    .venv/bin/python benchmarks/reader_throughput.py --threads 1,2  # the issue's check: one core, then two
    .venv/bin/python benchmarks/reader_throughput.py --int8 --skip-haystack --skip-book
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _common import DEFAULT_DATASETS, REPO, read_squad_file, reader_model, sample, table  # noqa: E402
from _machine import format_machine, machine_info  # noqa: E402

WORKER = Path(__file__).resolve().parent / "haystack_reader_worker.py"
TORCH_SPEC = "torch==2.13.0"  # the CPU build on this kind of machine; install it before haystack


def build_jobs(datasets: Path, n: int, k: int, seed: int) -> list[dict]:
    paragraphs, questions = read_squad_file(datasets / "squad" / "dev-v1.1.json")
    by_title: dict[str, list[str]] = {}
    for p in paragraphs:
        by_title.setdefault(p.title, []).append(p.context)
    every = [p.context for p in paragraphs]
    rng = random.Random(seed)
    jobs = []
    for q in sample(questions, n, seed):
        others = [c for c in by_title[q.title] if c != q.context]
        chosen = rng.sample(others, min(k - 1, len(others)))
        while len(chosen) < k - 1:
            extra = rng.choice(every)
            if extra != q.context and extra not in chosen:
                chosen.append(extra)
        passages = chosen + [q.context]
        rng.shuffle(passages)
        jobs.append({"id": q.id, "question": q.question, "passages": passages, "answers": list(q.answers)})
    return jobs


def fixed_batches(lengths: list[int], size: int) -> list[list[int]]:
    """The batch planner before the cost model: longest first, cut every ``size`` windows."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i: i + size] for i in range(0, len(order), size)]


def previous_bf16_path(reader):  # type: ignore[no-untyped-def]
    """``reader`` (loaded in fp32) reading as the bf16 path did before the reader-speed work, kept
    as the baseline: fp32 weights under bfloat16 autocast, fixed batches of ``reader_batch_size``."""
    import numpy as np
    import torch

    from qa_system.reader.windows import pad_batch

    def infer(state, windows):  # type: ignore[no-untyped-def]
        results = [None] * len(windows)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            for batch in fixed_batches([w.length for w in windows], state.params.batch_size):
                arrays = pad_batch([windows[i] for i in batch], state.tokenizer.pad_token_id)
                out = state.model(**{k: torch.from_numpy(v) for k, v in arrays.items()})
                starts, ends = out.start_logits.float().numpy(), out.end_logits.float().numpy()
                for row, i in enumerate(batch):
                    n = windows[i].length
                    results[i] = (np.array(starts[row, :n]), np.array(ends[row, :n]))
        return results

    reader._infer = infer
    return reader


def run_ours(model: str, jobs: list[dict], threads: int, per_call: int, warmup: int,
             precision: str = "fp32", previous_bf16: bool = False) -> tuple[float, dict]:
    from qa_system.config import load_settings
    from qa_system.reader import ExtractiveReader
    from qa_system.types import Passage

    # every passage read: these passages are shuffled with equal retrieval scores, so reading the
    # best ones first (measured by benchmarks/early_exit.py and query_latency.py) has nothing to go by
    reader = ExtractiveReader(model, settings=load_settings(torch_threads=threads, reader_first_passages=0),
                             precision="fp32" if previous_bf16 else precision).load()
    if previous_bf16:
        reader = previous_bf16_path(reader)

    def passages(job: dict) -> list[Passage]:
        return [Passage(i, f"{job['id']}-{i}", "bench", None, t, 0, len(t), 1.0) for i, t in enumerate(job["passages"])]

    for job in jobs[:warmup]:
        reader.read(job["question"], passages(job), top_n=1)
    answers = {}
    began = time.perf_counter()
    for lo in range(0, len(jobs), per_call):
        group = jobs[lo: lo + per_call]
        results = reader.read_batch([j["question"] for j in group], [passages(j) for j in group], top_n=1)
        for job, result in zip(group, results, strict=True):
            answers[job["id"]] = result.answers[0].text if result.answers else ""
    return time.perf_counter() - began, answers


def run_book_loop(model: str, jobs: list[dict], threads: int, max_length: int, warmup: int) -> tuple[float, dict]:
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model)
    qa_model = AutoModelForQuestionAnswering.from_pretrained(model).eval()

    def read(job: dict) -> str:
        best, best_score = "", float("-inf")
        for context in job["passages"]:
            inputs = tokenizer(job["question"], context, return_tensors="pt", truncation="only_second",
                               max_length=max_length)
            with torch.no_grad():
                outputs = qa_model(**inputs)
            start = int(torch.argmax(outputs.start_logits))
            end = int(torch.argmax(outputs.end_logits)) + 1
            score = float(outputs.start_logits[0, start] + outputs.end_logits[0, end - 1])
            if score > best_score:
                best_score = score
                best = tokenizer.decode(inputs["input_ids"][0][start:end], skip_special_tokens=True)
        return best

    for job in jobs[:warmup]:
        read(job)
    began = time.perf_counter()
    answers = {job["id"]: read(job) for job in jobs}
    return time.perf_counter() - began, answers


def ensure_haystack_venv(venv: Path) -> tuple[Path, str]:
    """The Haystack venv's python, creating and filling the venv on first use."""
    python = venv / "bin" / "python"
    probe = ("import haystack, torch\ntry:\n import haystack_integrations.components.readers.transformers\n"
             "except ImportError:\n from haystack.components.readers import ExtractiveReader")
    if python.exists() and subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0:
        return python, "existing"
    print(f"creating the Haystack venv at {venv} (torch first, then haystack; several minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run(pip + [TORCH_SPEC], check=True)
    if subprocess.run(pip + ["haystack-ai", "transformers-haystack"]).returncode == 0:
        return python, "haystack-ai + transformers-haystack"
    print("transformers-haystack is not installable: falling back to haystack-ai 2.x's ExtractiveReader", flush=True)
    subprocess.run(pip + ["haystack-ai>=2,<3"], check=True)
    return python, "haystack-ai 2.x (fallback)"


def run_haystack(venv: Path, model: str, jobs: list[dict], threads: int, max_length: int, stride: int,
                 batch_size: int, warmup: int) -> dict:
    python, how = ensure_haystack_venv(venv)
    with tempfile.TemporaryDirectory(prefix="haystack-job-") as folder:
        job_path, out_path = Path(folder) / "job.json", Path(folder) / "out.json"
        job_path.write_text(json.dumps({
            "model": str(Path(model).resolve()) if Path(model).exists() else model, "threads": threads,
            "max_seq_length": max_length, "stride": stride, "batch_size": batch_size, "warmup": warmup,
            "questions": [{"id": j["id"], "question": j["question"], "passages": j["passages"]} for j in jobs],
        }))
        env = dict(os.environ, HAYSTACK_TELEMETRY_ENABLED="False", HF_HUB_OFFLINE="1",
                   TRANSFORMERS_VERBOSITY="error", TOKENIZERS_PARALLELISM="false")
        env.pop("PYTHONPATH", None)
        subprocess.run([str(python), str(WORKER), "--job", str(job_path), "--out", str(out_path)], check=True, env=env)
        result = json.loads(out_path.read_text())
    result["venv"] = f"{venv} ({how})"
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--k", type=int, default=10, help="passages per question")
    ap.add_argument("--reader-model", help="QA model folder (default: packaged reader, else a random-head MiniLM)")
    ap.add_argument("--cache", type=Path, default=REPO / "stores" / "bench-reader")
    ap.add_argument("--threads", help="torch threads for every system, or a comma list run one after the other "
                    "(e.g. 1,2; default: torch's default)")
    ap.add_argument("--batch-questions", type=int, default=8, help="questions per read_batch() call for (a)")
    ap.add_argument("--haystack-venv", type=Path, default=Path("/tmp/haystack-venv"))
    ap.add_argument("--skip-haystack", action="store_true")
    ap.add_argument("--int8", action="store_true", help="also (a) batched with int8 dynamic quantisation")
    ap.add_argument("--skip-book", action="store_true", help="leave out (b), the book's loop")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--quick", action="store_true", help="smoke test: 4 questions, 1 warm-up")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.quick:
        args.questions, args.warmup = 4, 1

    import torch

    from qa_system.config import load_settings
    from qa_system.evaluation.squad_metrics import evaluate
    from qa_system.hardware import resolve_precision

    thread_counts = [int(t) for t in args.threads.split(",")] if args.threads else [torch.get_num_threads()]
    settings = load_settings()
    max_length, stride, batch = settings.reader_max_seq_length, settings.reader_doc_stride, settings.reader_batch_size
    model, trained = reader_model(args.reader_model, args.cache)
    jobs = build_jobs(args.datasets, args.questions, args.k, args.seed)
    gold = {j["id"]: j["answers"] for j in jobs}
    n_passages = sum(len(j["passages"]) for j in jobs)
    default = resolve_precision(settings.reader_precision, settings.device)
    per_call = args.batch_questions

    records, haystack = [], None
    for threads in thread_counts:
        runs: list[tuple[str, float, dict]] = []
        seconds, answers = run_ours(model, jobs, threads, per_call, args.warmup, precision=default)
        runs.append((f"(a) ours, default ({default}), {per_call} questions per call", seconds, answers))
        seconds, answers = run_ours(model, jobs, threads, 1, args.warmup, precision=default)
        runs.append((f"(a) ours, default ({default}), 1 question per call", seconds, answers))
        if default == "bf16":
            seconds, answers = run_ours(model, jobs, threads, per_call, args.warmup, previous_bf16=True)
            runs.append((f"(a0) previous bf16 path (autocast, fixed batches), {per_call} questions per call",
                         seconds, answers))
        if default != "fp32":
            seconds, answers = run_ours(model, jobs, threads, per_call, args.warmup, precision="fp32")
            runs.append((f"(a) ours, fp32, {per_call} questions per call", seconds, answers))
        if args.int8:
            seconds, answers = run_ours(model, jobs, threads, per_call, args.warmup, precision="int8")
            runs.append((f"(a) ours, int8 dynamic quantisation, {per_call} questions per call", seconds, answers))
        if not args.skip_book:
            seconds, answers = run_book_loop(model, jobs, threads, max_length, args.warmup)
            runs.append(("(b) book loop, one passage at a time", seconds, answers))
        if not args.skip_haystack:
            haystack = run_haystack(args.haystack_venv, model, jobs, threads, max_length, stride, batch, args.warmup)
            runs.append((f"(c) Haystack {haystack['reader']}", haystack["seconds"], haystack["answers"]))

        base = runs[0][1]
        rows = []
        for name, secs, ans in runs:
            scores = evaluate(gold, ans)
            rows.append([name, f"{n_passages / secs:.1f}", f"{1000 * secs / len(jobs):.0f}", f"{secs / base:.2f}x",
                         f"{scores.exact_match:.3f}", f"{scores.f1:.3f}"])
            records.append({"system": name, "threads": threads, "seconds": secs, "passages_per_s": n_passages / secs,
                            "ms_per_question": 1000 * secs / len(jobs), "time_vs_ours": secs / base,
                            "exact_match": scores.exact_match, "f1": scores.f1})
        print(f"\nreader throughput: {len(jobs)} SQuAD v1.1 dev questions x {args.k} passages ({n_passages} passages), "
              f"model {model}{'' if trained else ' (random QA head: EM/F1 meaningless)'}; windows of {max_length} "
              f"tokens, stride {stride}, at most {batch} a batch; {threads} torch threads everywhere; "
              f"{args.warmup} warm-up questions")
        print(table(["system", "passages/s", "ms/question", "time vs (a) default", "EM", "F1"], rows))
        if haystack:
            print(f"haystack: haystack-ai {haystack['haystack_ai']}, "
                  f"transformers-haystack {haystack['transformers_haystack']}, "
                  f"torch {haystack['torch']}, transformers {haystack['transformers']}, {haystack['threads']} threads; "
                  f"venv {haystack['venv']}; "
                  "note: it feeds the model input_ids and attention_mask only (no token_type_ids)")
    if not args.skip_book:
        print("(b) truncates each passage to one window (no stride), as the book's loop does")
    info = machine_info()
    print(format_machine(info))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": records, "questions": len(jobs), "k": args.k, "model": model,
                                         "trained_reader": trained, "haystack": haystack and {
                                             k: v for k, v in haystack.items() if k != "answers"},
                                         "machine": info}, indent=2))


if __name__ == "__main__":
    main()
