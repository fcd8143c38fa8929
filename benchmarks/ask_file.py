"""Answering a list of questions from the command line: one `qa-system ask --questions FILE`
process (batches of 16, and of 1) against one `qa-system ask` process per question (the
baseline), on the shipped sample corpus and its 20 sample questions. Wall-clock seconds,
alternating the three ways in each repeat, and each way's ratio to the baseline.

    .venv/bin/python benchmarks/ask_file.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, table
from _machine import format_machine, machine_info

CLI = [sys.executable, "-m", "qa_system.cli"]


def timed(command: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in (REPO / "data/sample_questions.jsonl").open()
                 if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        store, listing = Path(tmp) / "store", Path(tmp) / "questions.txt"
        listing.write_text("\n".join(questions) + "\n", encoding="utf-8")
        subprocess.run([*CLI, "ingest", str(REPO / "data/sample_corpus"), "--store", str(store), "--no-progress"],
                       check=True, stdout=subprocess.DEVNULL, cwd=REPO)
        ways = {
            f"one `ask` process per question ({len(questions)})": lambda: sum(
                timed([*CLI, "ask", q, "--store", str(store), "--json"]) for q in questions),
            "one `ask --questions` process, batches of 16": lambda: timed(
                [*CLI, "ask", "--questions", str(listing), "--store", str(store), "--no-progress"]),
            "one `ask --questions` process, batches of 1": lambda: timed(
                [*CLI, "ask", "--questions", str(listing), "--store", str(store), "--no-progress",
                 "--batch-size", "1"]),
        }
        seconds: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.repeats):
            for name, run in ways.items():
                seconds[name].append(run())
    baseline = statistics.median(next(iter(seconds.values())))
    print(f"{len(questions)} questions, median of {args.repeats} alternating repeats\n")
    rows = [(name, f"{s:.1f}", f"{s / len(questions):.2f}", f"{baseline / s:.1f}x")
            for name, s in ((name, statistics.median(xs)) for name, xs in seconds.items())]
    print(table(["way", "seconds", "per question", "speed vs baseline"], rows))
    print(format_machine(machine_info()))


if __name__ == "__main__":
    main()
