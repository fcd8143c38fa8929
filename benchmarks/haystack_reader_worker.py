"""Runs Haystack's extractive reader over a JSON job; executed INSIDE the separate Haystack venv.

It imports nothing from qa_system (which is not installed there). Input (``--job``):

    {"model": folder, "threads": n, "max_seq_length": 384, "stride": 128, "batch_size": 16,
     "warmup": 1, "questions": [{"id": ..., "question": ..., "passages": [text, ...]}, ...]}

Output (``--out``): reader name and versions, load time, total seconds over all questions (after
the warm-up), and the top-1 answer text of each question ("" if none).
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import metadata
from pathlib import Path


def load_reader(job: dict):
    """haystack-ai 3.x: TransformersExtractiveReader from transformers-haystack; haystack-ai 2.x:
    its built-in ExtractiveReader (the same component before it moved out)."""
    kwargs = dict(model=job["model"], top_k=1, no_answer=False, max_seq_length=job["max_seq_length"],
                  stride=job["stride"], max_batch_size=job["batch_size"])
    try:
        from haystack_integrations.components.readers.transformers import TransformersExtractiveReader

        return TransformersExtractiveReader(**kwargs), "transformers-haystack TransformersExtractiveReader"
    except ImportError:
        from haystack.components.readers import ExtractiveReader

        return ExtractiveReader(**kwargs), "haystack-ai ExtractiveReader (fallback)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--job", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    job = json.loads(Path(args.job).read_text(encoding="utf-8"))

    import torch
    from haystack import Document

    torch.set_num_threads(int(job["threads"]))
    began = time.perf_counter()
    reader, name = load_reader(job)
    reader.warm_up()
    load_s = time.perf_counter() - began

    def read(q: dict) -> str:
        result = reader.run(query=q["question"], documents=[Document(content=p) for p in q["passages"]])
        spans = [a for a in result["answers"] if a.data]
        return spans[0].data if spans else ""

    for q in job["questions"][: job.get("warmup", 1)]:
        read(q)
    answers = {}
    began = time.perf_counter()
    for q in job["questions"]:
        answers[q["id"]] = read(q)
    seconds = time.perf_counter() - began

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    out = {"reader": name, "haystack_ai": version("haystack-ai"),
           "transformers_haystack": version("transformers-haystack"),
           "torch": torch.__version__, "transformers": version("transformers"), "threads": torch.get_num_threads(),
           "load_s": load_s, "seconds": seconds, "answers": answers}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
