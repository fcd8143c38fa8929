"""`qa-system` command line. The only place (with the HTTP layer) that turns errors into exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .config import ENV_PREFIX, REINDEX_BATCH_SIZE, Settings, load_settings
from .errors import InputError, QASystemError, StoreError
from .hardware import READER_PRECISIONS, allocator_hint

EXIT_OK, EXIT_ERROR, EXIT_PARTIAL = 0, 1, 3
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a command killed by SIGPIPE
MAX_QUESTIONS_BYTES = 64 * 2**20  # ask --questions: about 65,000 questions at the longest allowed


def _setting_default(name: str, otherwise: str | None = None) -> str:
    """Help text for an option whose default is setting ``name``: its environment variable, else
    ``otherwise`` or the setting's built-in value."""
    value = getattr(Settings(), name) if otherwise is None else otherwise
    shown = format(value, "g") if isinstance(value, float) else str(value)
    return f"(default: ${ENV_PREFIX}{name.upper()} or {shown})"


def _store_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", type=Path, metavar="DIR", help=f"store directory {_setting_default('store_dir')}")
    p.add_argument("--db-url", metavar="URL",
                   help="SQLAlchemy URL of the SQL database, e.g. postgresql+psycopg://... "
                        + _setting_default("db_url", "SQLite in the store directory"))
    p.add_argument("--vector-backend", choices=("faiss", "pgvector"), default=None,
                   help="where the vectors live: faiss (index files in the store directory) or pgvector (in "
                        "the PostgreSQL database, so that several machines serve one store) "
                        + _setting_default("vector_backend", "what the store uses; a new one: faiss"))


def _open(args: argparse.Namespace, *, create: bool = False, questions: Sequence[tuple[str, str]] = (),
          **extra: Any) -> Any:
    """The store of ``args``, opened (models load when first used). Only ``create`` (ingest) makes a
    new SQLite store: elsewhere a mistyped ``--store`` is an error, not a new empty store; a
    ``--store`` that is a file is an error everywhere. ``questions`` (``(where, text)`` pairs;
    ``where`` prefixes the error, "" for none) are checked first."""
    from .errors import QuestionError
    from .system import QASystem

    settings = load_settings(store_dir=args.store, db_url=args.db_url,
                             vector_backend=getattr(args, "vector_backend", None), **extra)
    system = QASystem(settings)
    for where, question in questions:
        try:
            system.validate_question(question)
        except QuestionError as e:
            raise QuestionError(f"{where}: {e}" if where else str(e)) from None
    _check_store(settings, create=create)
    return system.load(verify=getattr(args, "verify", True))


def _check_store(settings: Settings, *, create: bool) -> None:
    """StoreError when the store folder cannot be one, or (without ``create``) holds no SQLite store."""
    from .storage.opening import check_store_path

    check_store_path(Path(settings.store_dir))  # a file, or under one, is no store (nor can become one)
    if not create and settings.sqlite_path is not None and not settings.sqlite_path.is_file():
        raise StoreError(f"no store at {settings.store_dir}: `qa-system ingest PATH --store {settings.store_dir}` "
                         "creates one")


def _parse_filters(items: Sequence[str] | None) -> dict[str, list[str]] | None:
    if not items:
        return None
    filters: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise QASystemError(f"--filter expects KEY=VALUE, got {item!r}")
        filters.setdefault(key, []).append(value)
    return filters


def cmd_ingest(args: argparse.Namespace) -> int:
    from .ingest import is_supported, scan_input_files
    from .ingestion import scan_report

    scan = scan_input_files(args.paths)
    if not any(is_supported(path) for path in scan.files):  # say so before a store is made or a model loads
        return _print_ingest_report(args, scan_report(scan))
    if args.ray is not None:
        from .ray_ingest import import_ray

        import_ray()  # without the extra: say how to install it, before a store is made
        if args.ray_workers is not None and args.ray_workers < 1:
            raise QASystemError(f"--ray-workers must be at least 1, got {args.ray_workers}")
    elif args.ray_workers is not None:
        raise QASystemError("--ray-workers needs --ray")
    qa = _open(args, create=True)
    with qa:
        if args.ray is not None:
            report = qa.ingest_on_ray(args.paths, address=args.ray, workers=args.ray_workers,
                                      progress=not args.no_progress, csv_text_column=args.csv_text_column,
                                      csv_title_column=args.csv_title_column)
        else:
            report = qa.ingest(args.paths, progress=not args.no_progress, csv_text_column=args.csv_text_column,
                               csv_title_column=args.csv_title_column)
    return _print_ingest_report(args, report)


def _print_ingest_report(args: argparse.Namespace, report: Any) -> int:
    """Print ``report`` (text or JSON); the exit code: 1 when nothing could be read, 3 on failures
    with ``--strict``."""
    problem = report.problem()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for failure in report.failed:
            print(f"failed: {failure.source}: {failure.reason}", file=sys.stderr)
        for note in report.notes:
            print(f"note: {note}", file=sys.stderr)
        if args.verbose:
            for path in report.unsupported:
                print(f"skipped (unsupported type): {path}", file=sys.stderr)
        print(report.summary())
    if problem:
        from .ingest import SUPPORTED_EXTENSIONS

        supported = f"; supported types: {' '.join(sorted(SUPPORTED_EXTENSIONS))}" if report.unsupported else ""
        print(f"error: nothing was ingested: {problem}{supported}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_PARTIAL if report.failed and args.strict else EXIT_OK


def _answer_json(result: Any, models: Any) -> dict[str, Any]:
    return {
        "question": result.question,
        "has_answer": result.has_answer,
        "confidence_threshold": result.confidence_threshold,
        "no_answer_score": result.no_answer_score,
        "answers": [asdict(a) for a in result.answers],
        "timings": dict(result.timings),
        "models": models.as_dict(),
    }


def _read_questions(name: str) -> tuple[str, list[tuple[int, str]]]:
    """What to call file ``name`` (``-``: standard input) in messages, and its non-blank lines with
    their line numbers. InputError, naming the file, when it cannot be read, is binary, is not
    UTF-8 or holds no question."""
    from .errors import InputError

    label = "standard input" if name == "-" else name
    try:
        if name == "-":
            data = sys.stdin.buffer.read(MAX_QUESTIONS_BYTES + 1)
        else:
            with open(name, "rb") as f:
                data = f.read(MAX_QUESTIONS_BYTES + 1)
    except OSError as e:
        raise InputError(f"cannot read the questions file {label}: {e.strerror or e}") from None
    if len(data) > MAX_QUESTIONS_BYTES:
        raise InputError(f"{label} is over {MAX_QUESTIONS_BYTES // 2**20} MiB: split it into several files")
    if b"\0" in data:
        raise InputError(f"{label} is a binary file, not one question per line")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{label} is not UTF-8 text (byte {e.start}): give one question per line") from None
    questions = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not questions:
        raise InputError(f"{label} holds no question (one per line; blank lines are skipped)")
    return label, questions


def _ask_file(args: argparse.Namespace, qa: Any, questions: list[tuple[int, str]], filters: Any) -> int:
    """Answer ``questions`` in batches; one JSON object per line on stdout, in their order."""
    from tqdm import tqdm

    models = None
    with qa, tqdm(total=len(questions), desc="ask", unit="q", disable=args.no_progress, file=sys.stderr,
                  dynamic_ncols=True) as bar:
        for lo in range(0, len(questions), args.batch_size):
            batch = questions[lo : lo + args.batch_size]
            results = qa.ask_many([q for _, q in batch], top_k_retriever=args.top_k_retriever,
                                  top_k_reader=args.top_k_reader, filters=filters)
            models = models or qa.describe_models()
            for (line, _), result in zip(batch, results, strict=True):
                print(json.dumps({"line": line, **_answer_json(result, models)}, ensure_ascii=False))
            sys.stdout.flush()
            bar.update(len(batch))
    return EXIT_OK


def cmd_ask(args: argparse.Namespace) -> int:
    if (args.question is None) == (args.questions is None):
        raise QASystemError("give one question, or --questions FILE (not both)")
    if args.batch_size <= 0:
        raise QASystemError(f"--batch-size must be positive, got {args.batch_size}")
    filters = _parse_filters(args.filter)
    if args.questions is not None:
        label, questions = _read_questions(args.questions)
        checks = [(f"{label}, line {n}", q) for n, q in questions]
    else:
        checks = [("", args.question)]
    qa = _open(args, questions=checks, reader_model=args.reader_model,
               no_answer_threshold=args.no_answer_threshold, retrieval_weight=args.retrieval_weight,
               lexical_weight=args.lexical_weight, reader_precision=args.reader_precision,
               reranker=args.reranker, rerank_top_n=args.rerank_top_n)
    if args.questions is not None:
        return _ask_file(args, qa, questions, filters)
    with qa:
        result = qa.ask(args.question, top_k_retriever=args.top_k_retriever, top_k_reader=args.top_k_reader,
                        filters=filters)
        models = qa.describe_models()
    if args.json:
        print(json.dumps(_answer_json(result, models), indent=2, ensure_ascii=False))
        return EXIT_OK
    print(f"Q: {result.question}")
    if not result.answers:
        print("No answer found (no passages matched).")
        return EXIT_OK
    if not result.has_answer:
        print("The reader thinks the documents do not answer this; its best guesses:")
    weight = models.reader.retrieval_weight if models.reader is not None else None
    weighed = bool(weight) and any(a.passage_score is not None for a in result.answers)
    if weighed:
        print(f"(best first by reader score + {weight:g} x retrieval score)")
    for rank, a in enumerate(result.answers, 1):
        title = f" — {a.title}" if a.title else ""
        scores = (f"reader score {a.score:.2f}, retrieval {a.passage_score:.2f}"
                  if weighed and a.passage_score is not None else f"score {a.score:.2f}")
        if a.confidence is not None:
            scores = f"confidence {100 * a.confidence:.0f}%, {scores}"
        print(f"\n{rank}. {a.text}    ({scores})")
        print(f"   source: {a.source}{title}  [chars {a.start}-{a.end}]")
        print(f"   context: …{' '.join(a.context.split())}…")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    from .ingest import source_path

    sources = [source_path(s) if Path(s.split("#", 1)[0]).exists() else s for s in args.source or []]
    with _open(args) as qa:
        n = qa.delete(document_ids=args.id or [], sources=sources)
    print(f"deleted {n} document(s)")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    args.verify = False
    with _open(args) as qa:
        report = qa.repair() if args.repair else qa.check()
    print(report.summary())
    return EXIT_OK if report.ok else EXIT_ERROR


def cmd_compact(args: argparse.Namespace) -> int:
    with _open(args, auto_compact=False) as qa:
        result = qa.compact(force=args.all)
        stats = qa.stats()
    if args.json:
        print(json.dumps({**asdict(result), "segments": stats.segments, "tombstones": stats.tombstones}, indent=2))
    else:
        print(f"{result.summary()}; now {stats.segments} segments, {stats.tombstones} tombstones")
    return EXIT_OK


def cmd_reindex(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .system import QASystem

    if args.batch_size <= 0:
        raise QASystemError(f"--batch-size must be positive, got {args.batch_size}")
    settings = load_settings(store_dir=args.store, db_url=args.db_url,
                             vector_backend=getattr(args, "vector_backend", None))
    _check_store(settings, create=False)
    bars: list[Any] = []  # made at the first report, once the model has loaded: its rate is the embedding's

    def show(event: Any) -> None:
        if not bars:
            bars.append(tqdm(total=event.total, initial=event.done, desc="reindex", unit="chunk",
                             disable=args.no_progress, file=sys.stderr, dynamic_ncols=True))
        bar = bars[0]
        bar.total = max(event.total, bar.total)
        bar.update(event.done - bar.n)
        resumed = f", {event.resumed} saved by an interrupted run" if event.resumed else ""
        bar.set_postfix_str(f"{event.stage}{resumed}")

    try:
        with QASystem(settings) as qa:
            result = qa.reindex(args.model, batch_size=args.batch_size, progress=show)
    finally:
        for bar in bars:
            bar.close()
    if result.discarded is not None:
        print(f"note: the unfinished reindex to {result.discarded!r} was discarded", file=sys.stderr)
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        print(result.summary())
    return EXIT_OK


def cmd_feedback_export(args: argparse.Namespace) -> int:
    from .feedback_export import feedback_to_squad

    with _open(args) as qa:
        dataset, counts = feedback_to_squad(qa.all_feedback(), unanswerable_from_wrong=not args.no_unanswerable,
                                            skip_stale=args.skip_stale)
    out: Path = args.output
    if out.is_dir():
        raise InputError(f"{out} is a folder: give the path of the JSON file to write")
    if not out.parent.is_dir():
        raise InputError(f"the folder of {out} does not exist")
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(dataset, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(partial, out)  # whole or not at all
    print(f"{out}: {counts.summary()}")
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    with _open(args) as qa:
        stats = qa.stats()
    print(json.dumps(asdict(stats), indent=2, default=str))
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from .service.server import run_server
    except ImportError as e:  # fastapi/uvicorn missing
        raise QASystemError(f"the service needs the 'service' extra (pip install 'qa_system[service]'): {e}") from e
    hint = None if load_settings().device.startswith("cuda") else allocator_hint("serving")
    if hint:
        print(hint, file=sys.stderr)
    run_server(host=args.host, port=args.port, workers=args.workers, store_dir=args.store, db_url=args.db_url,
               log_level=args.log_level, vector_backend=args.vector_backend)
    return EXIT_OK


def cmd_train_reader(args: argparse.Namespace) -> int:
    from .training.commands import train_reader_command

    return train_reader_command(args)


def cmd_train_retriever(args: argparse.Namespace) -> int:
    from .training.retriever_commands import train_retriever_command

    return train_retriever_command(args)


def cmd_train_reranker(args: argparse.Namespace) -> int:
    from .training.reranker_commands import train_reranker_command

    return train_reranker_command(args)


def cmd_eval_reader(args: argparse.Namespace) -> int:
    from .training.commands import eval_reader_command

    return eval_reader_command(args)


def cmd_average_readers(args: argparse.Namespace) -> int:
    from .training.commands import average_readers_command

    return average_readers_command(args)


def cmd_fit_threshold(args: argparse.Namespace) -> int:
    from .training.commands import fit_threshold_command

    return fit_threshold_command(args)


DESCRIPTION = """\
Answer questions from your own documents. `ingest` reads files and folders into a store; `ask`
then answers a question with passages quoted from them, each with its score, its source and its
character offsets in that document. `qa-system ingest --help` lists the file types.

typical use:
  qa-system ingest docs/ --store .qa_store
  qa-system ask "How do I reset my password?" --store .qa_store
  qa-system ask --questions questions.txt --store .qa_store > answers.jsonl
  qa-system serve --store .qa_store         # the same over HTTP (needs the 'service' extra)

Settings also come from QA_SYSTEM_* environment variables (qa_system/config.py); an option given
on the command line wins. `qa-system COMMAND --help` describes a command and its options."""


def package_version() -> str:
    """The installed distribution's version (``pip install``), else the source tree's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qa_system")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from . import __version__

        return __version__


class _HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help when it has a default worth showing and its
    help does not already say what the default is (defaults from settings are written out)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or isinstance(default, bool) or default == []
                or default is argparse.SUPPRESS):
            return text
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text
        return f"{text} (default: %(default)s)"


class _TopHelpFormatter(argparse.RawDescriptionHelpFormatter, _HelpFormatter):
    """The top-level help keeps its description's lines (the example commands)."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose subcommands share its help formatter, whose description may be a
    function (called when help is shown, so that building the parser imports nothing heavy),
    and which can require one of several options (a usage error, exit 2, without one)."""

    def __init__(self, *args: Any, formatter_class: type[argparse.HelpFormatter] = _HelpFormatter,
                 **kwargs: Any) -> None:
        super().__init__(*args, formatter_class=formatter_class, **kwargs)
        self._one_of_required: list[tuple[str, ...]] = []

    def require_one_of(self, *options: str) -> None:
        """Parsing fails unless at least one of ``options`` (flags, e.g. ``--id``) is given."""
        self._one_of_required.append(options)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        namespace, extras = super().parse_known_args(args, namespace)
        for options in self._one_of_required:
            dests = [o.lstrip("-").replace("-", "_") for o in options]
            if not any(getattr(namespace, d, None) for d in dests):
                self.error(f"give at least one of {' or '.join(options)}")
        return namespace, extras

    def format_help(self) -> str:
        if callable(self.description):
            self.description = self.description()
        return super().format_help()


def _ingest_description() -> str:
    from .ingest import SUPPORTED_EXTENSIONS

    return ("Add files and folders to the store (folders are walked recursively). Supported file types: "
            f"{', '.join(sorted(SUPPORTED_EXTENSIONS))}; other files are skipped and counted in the summary. "
            "A JSON-lines/JSON file holds one document per record (`text`, optional `id`, `title`, other scalar "
            "fields become metadata); a CSV file one per row. Re-ingesting unchanged input adds nothing; a "
            "changed file replaces its old version.")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qa-system", description=DESCRIPTION, formatter_class=_TopHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}",
                        help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", help="add files and folders to the store", description=_ingest_description)
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="files and folders to ingest (file types: see above)")
    _store_options(p)
    p.add_argument("--csv-text-column", default="text", metavar="NAME",
                   help="the column of a CSV file that holds each document's text (default: text)")
    p.add_argument("--csv-title-column", metavar="NAME",
                   help="the column of a CSV file that holds each document's title (default: none, no titles)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on standard error")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="parse, chunk and embed on a Ray cluster (needs the 'ray' extra): auto (the cluster "
                        "`ray start` made here, or $RAY_ADDRESS), local (a Ray started for this ingest), or the "
                        "cluster's address (ray://HOST:10001); this process writes to the store")
    p.add_argument("--ray-workers", type=int, metavar="N",
                   help="Ray worker actors, each with its own embedder (default: the cluster's CPUs)")
    p.add_argument("--strict", action="store_true", help=f"exit {EXIT_PARTIAL} if any file failed (default: exit 0)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a summary")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="also list every file skipped for its type (the summary counts them by extension)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("ask", help="answer a question (or a file of them) from the store",
                       description="Answer a question from the store: the best answers, each with its scores, "
                                   "source, character offsets and context. With --questions FILE, answer every "
                                   "line of FILE and print JSON lines.")
    p.add_argument("question", nargs="?", help="the question (or give --questions FILE)")
    p.add_argument("--questions", metavar="FILE",
                   help="answer every non-blank line of FILE (UTF-8; - for standard input) in batches, and "
                        "print one JSON object per question and line, in order, with its line number "
                        "(timings are those of its batch)")
    p.add_argument("--batch-size", type=int, default=16, metavar="N",
                   help="questions answered together with --questions (default: 16)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar with --questions")
    _store_options(p)
    p.add_argument("--top-k-retriever", type=int, metavar="N",
                   help=f"passages retrieved and read per question {_setting_default('top_k_retriever')}")
    p.add_argument("--top-k-reader", type=int, metavar="N",
                   help=f"answers given, best first {_setting_default('top_k_reader')}")
    p.add_argument("--filter", action="append", metavar="KEY=VALUE",
                   help="search only documents whose metadata KEY equals VALUE; repeatable: values of one key "
                        "are alternatives, different keys must all match (default: all documents)")
    p.add_argument("--reader-model", metavar="MODEL",
                   help="a Hugging Face QA model name or folder "
                        + _setting_default("reader_model", "the packaged reader"))
    p.add_argument("--reader-precision", choices=list(READER_PRECISIONS),
                   help="fp32, bf16 (autocast), int8 (dynamic quantisation, CPU), or auto: bf16 where the "
                        f"hardware computes it natively {_setting_default('reader_precision')}")
    p.add_argument("--no-answer-threshold", type=float, metavar="MARGIN",
                   help="answer only when the best span beats the no-answer score by more than this "
                        + _setting_default("no_answer_threshold", "the value fitted with the reader model"))
    p.add_argument("--retrieval-weight", type=float, metavar="W",
                   help="rank answers by reader score + W x retrieval score (W >= 0); 0: reader score alone "
                        + _setting_default("retrieval_weight"))
    p.add_argument("--reranker", metavar="DIR",
                   help="re-rank the retrieved passages with this cross-encoder folder (qa-system train-reranker) "
                        + _setting_default("reranker", "off"))
    p.add_argument("--rerank-top-n", type=int, metavar="N",
                   help=f"passages the re-ranker re-scores {_setting_default('rerank_top_n')}")
    p.add_argument("--lexical-weight", type=float, metavar="W",
                   help="hybrid retrieval: passages rank by (1 - W) x cosine + W x full-text rank / best "
                        f"rank; 0: dense alone {_setting_default('lexical_weight')}")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (answers, scores, timings, models) instead of text")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("delete", help="remove documents from SQL and the index",
                       description="Remove documents (their chunks and vectors too). Give at least one --id or "
                                   "--source; both may be repeated.")
    _store_options(p)
    p.add_argument("--id", action="append", metavar="ID",
                   help="a document id, as `ask --json` and `stats` show it (repeatable)")
    p.add_argument("--source", action="append", metavar="SOURCE",
                   help="a document's source: a file path, or path#record-id for a JSON-lines/CSV record "
                        "(repeatable)")
    p.require_one_of("--id", "--source")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("check", help="check that SQL and the vector index agree",
                       description="Check that the SQL database, the vector index and the full-text index agree; "
                                   "exit 1 if they do not.")
    _store_options(p)
    p.add_argument("--repair", action="store_true",
                   help="fix disagreements (re-embeds missing vectors, rebuilds the full-text index)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("compact", help="merge the vector index's segments",
                       description="Merge index segments as the merge policy says (every write adds one; "
                                   "writes also merge in the background unless $QA_SYSTEM_AUTO_COMPACT is 0), "
                                   "dropping the vectors of deleted chunks. Searches and writes go on meanwhile.")
    _store_options(p)
    p.add_argument("--all", action="store_true",
                   help="merge every segment into one (a large one is built for approximate search)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_compact)

    p = sub.add_parser("reindex", help="re-embed every passage with another embedding model",
                       description="Re-embed every passage of the store with an embedding model and make it the "
                                   "store's model (a store opened with another model is refused). Questions and "
                                   "writes go on with the old model meanwhile; the new vectors replace the old ones "
                                   "at once at the end. Interrupted, it continues where it stopped when run again "
                                   "with the same model. The same model as the store's rebuilds its vectors.")
    p.add_argument("--model", required=True, metavar="NAME_OR_PATH",
                   help="the new embedding model: a sentence-transformers name or folder (the default model "
                        "is all-MiniLM-L6-v2, shipped offline); then set $QA_SYSTEM_EMBEDDING_MODEL to it")
    _store_options(p)
    p.add_argument("--batch-size", type=int, default=REINDEX_BATCH_SIZE, metavar="N",
                   help="passages embedded and saved per step; interrupted, at most one step is redone "
                        f"(default: {REINDEX_BATCH_SIZE})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on standard error")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a summary line")
    p.set_defaults(func=cmd_reindex)

    p = sub.add_parser("feedback", help="what agents said of answers: export it as training data",
                       description="Feedback given on the search page or POST /v1/feedback.")
    feedback_sub = p.add_subparsers(dest="feedback_command", required=True, metavar="ACTION")
    p = feedback_sub.add_parser(
        "export", help="write confirmed and corrected answers as SQuAD training data",
        description="Write the feedback as a SQuAD 2.0-format file for `qa-system train-reader --train`: answers "
                    "confirmed right or marked 'the answer is here' become answers in the passage the person saw "
                    "(stored as it was, so feedback on documents changed since still makes right examples); a "
                    "question whose answers in a passage were only marked wrong becomes unanswerable there.")
    p.add_argument("output", type=Path, metavar="OUT.json", help="the file to write (replaced whole)")
    p.add_argument("--format", choices=["squad"], default="squad", help="the file format (default: squad)")
    p.add_argument("--no-unanswerable", action="store_true",
                   help="leave out questions whose answers were only marked wrong")
    p.add_argument("--skip-stale", action="store_true", help="leave out feedback on documents changed or deleted since")
    _store_options(p)
    p.set_defaults(func=cmd_feedback_export)

    p = sub.add_parser("stats", help="store statistics", description="Print the store's counts and sizes as JSON.")
    _store_options(p)
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("serve", help="serve the HTTP API (FastAPI under uvicorn)",
                       description="Serve /v1/ask, /v1/documents, /v1/stats, /healthz, /readyz and /metrics. "
                                   "API keys and limits come from QA_SYSTEM_* variables (docker/README.md).")
    _store_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing the store (default: 1)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level")
    p.set_defaults(func=cmd_serve)

    from .training.commands import (
        add_average_readers_arguments,
        add_eval_reader_arguments,
        add_fit_threshold_arguments,
        add_train_reader_arguments,
    )

    add_train_reader_arguments(sub.add_parser("train-reader", help="fine-tune an extractive QA reader"))
    sub.choices["train-reader"].set_defaults(func=cmd_train_reader)
    add_eval_reader_arguments(sub.add_parser("eval-reader", help="SQuAD EM/F1 of a reader on gold contexts"))
    sub.choices["eval-reader"].set_defaults(func=cmd_eval_reader)
    add_fit_threshold_arguments(
        sub.add_parser("fit-threshold", help="re-fit a reader's no-answer threshold on dev data"))
    sub.choices["fit-threshold"].set_defaults(func=cmd_fit_threshold)
    add_average_readers_arguments(sub.add_parser("average-readers", help="average the weights of readers of one base"))
    sub.choices["average-readers"].set_defaults(func=cmd_average_readers)
    from .training.retriever_commands import add_train_retriever_arguments

    add_train_retriever_arguments(sub.add_parser(
        "train-retriever", help="fine-tune the embedder on (question, passage) pairs",
        description="Fine-tune a sentence-transformers embedder with in-batch and mined hard negatives "
                    "(docs/retrieval-training.md)."))
    sub.choices["train-retriever"].set_defaults(func=cmd_train_retriever)
    from .training.reranker_commands import add_train_reranker_arguments

    add_train_reranker_arguments(sub.add_parser(
        "train-reranker", help="train a cross-encoder that re-ranks the retrieved passages",
        description="Train a cross-encoder from the product's MiniLM on the pairs of train-retriever, with "
                    "mined hard negatives (docs/retrieval-training.md#re-ranker)."))
    sub.choices["train-reranker"].set_defaults(func=cmd_train_reranker)
    from .evaluation.commands import add_eval_arguments, eval_command

    add_eval_arguments(sub.add_parser("eval", help="retriever recall@k and QA EM/F1 benchmarks (SubjQA, open SQuAD)"))
    sub.choices["eval"].set_defaults(func=eval_command)
    return parser


def _quiet_libraries() -> None:
    """Model-loading chatter (weight reports, per-file progress bars) is noise on a CLI."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: Sequence[str] | None = None) -> int:
    _quiet_libraries()
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        code = func(args)
        sys.stdout.flush()  # a closed pipe shows up here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        # whoever read our output stopped early (`qa-system stats | head -1`): not an error of ours.
        # Point stdout at /dev/null so the exit's own flush does not fail again, and exit like SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except QASystemError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
