"""Command line for response caches: ``python -m envs.data SUBCOMMAND ...``.

Subcommands:
    convert-llama SRC OUT [--benchmarks mmlu,triviaqa] [--splits test,train]
        read the llama-cascades pickles in SRC and write them to OUT in the canonical cache format
    validate DIR
        load a canonical cache with every check and print its summary; exit 1 with the error when it is malformed
    build --backend transformers|openai --model ID[=NAME] ... --out DIR [--task capitals] [--limit N]
        ask real models every query of a task, grade the replies and write a cache (provenance "generated");
        resumable, see envs/data/build.py

Each subcommand is one ``_register_*`` function that adds its parser and sets ``handler``; add new ones to
``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import numpy as np

from envs.data.build import csv_list, register_build
from envs.data.cache import CacheError, ResponseCache, load_cache, write_cache
from envs.data.llama_cascades import SPLITS, cache_rows, load_llama_cascades

Handler = Callable[[argparse.Namespace], None]


def format_summary(cache: ResponseCache) -> str:
    """A readable summary of ``cache``: identity, size, and per model its prices, accuracy and mean tokens, overall
    and per domain."""
    lines = [
        f"cache {cache.name!r} (provenance {cache.provenance}): {cache.n_queries} queries, {len(cache.models)} models",
        f"source: {cache.source}",
        f"{'model':<16} {'$/1M in':>8} {'$/1M out':>8} {'accuracy':>8} {'tok in':>8} {'tok out':>8}",
    ]
    for m, model in enumerate(cache.models):
        lines.append(
            f"{model:<16} {cache.price_in[m]:>8.2f} {cache.price_out[m]:>8.2f} {np.nanmean(cache.score[:, m]):>8.3f} "
            f"{cache.input_tokens[:, m].mean():>8.1f} {cache.output_tokens[:, m].mean():>8.1f}"
        )
    domains = sorted(set(cache.domains))
    if len(domains) > 1:
        lines.append("accuracy by domain:")
        lines.append(f"{'domain':<16} {'queries':>8} " + " ".join(f"{m:>14}" for m in cache.models))
        domain_of = np.array(cache.domains, dtype=object)
        for domain in domains:
            rows = cache.score[domain_of == domain]
            lines.append(f"{domain:<16} {len(rows):>8} " + " ".join(f"{v:>14.3f}" for v in np.nanmean(rows, axis=0)))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------- subcommands


def _convert_llama(args: argparse.Namespace) -> None:
    cache = load_llama_cascades(args.src, benchmarks=args.benchmarks, splits=args.splits)
    queries, responses = cache_rows(cache)
    out = write_cache(args.out, cache.meta, queries, responses)
    print(f"wrote {out}")
    print(format_summary(cache))


def _register_convert_llama(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert-llama",
        help="convert the llama-cascades pickles to a canonical cache",
        description="Read the llama-cascades folder (real results of five Llama models on MMLU, MedMCQA, TriviaQA, "
        "TruthfulQA and any other benchmark in the same layout) and write it as a canonical cache "
        "directory (validated, then swapped in atomically).",
    )
    p.add_argument("src", help="the llama-cascades folder (holding <bench>_llama_<split>.pkl)")
    p.add_argument("out", help="output cache directory (created if needed; new, empty or a cache directory)")
    p.add_argument(
        "--benchmarks",
        type=csv_list,
        default=None,
        help="comma-separated benchmarks, e.g. mmlu,triviaqa (default: all in SRC)",
    )
    p.add_argument("--splits", type=csv_list, default=list(SPLITS), help="comma-separated splits (default: test,train)")
    p.set_defaults(handler=_convert_llama)


def _validate(args: argparse.Namespace) -> None:
    print(format_summary(load_cache(args.dir)))


def _register_validate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("validate", help="load a canonical cache with every check and print its summary")
    p.add_argument("dir", help="cache directory (meta.json, queries.csv[.gz], responses.csv[.gz])")
    p.set_defaults(handler=_validate)


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _register_convert_llama,
    _register_validate,
    register_build,
]


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m envs.data`` parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m envs.data", description="Build, convert and check response caches."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for register in SUBCOMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; return 0, or 1 after printing the :class:`CacheError` to stderr."""
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except CacheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
