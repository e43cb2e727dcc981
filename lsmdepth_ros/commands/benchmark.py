"""`lsmdepth benchmark {models,training,node}`: the benchmarks in lsmdepth_ros.benchmarks."""
from __future__ import annotations

import argparse
import importlib

HELP = "run a benchmark: models (params, GFLOPs, CPU latency), training, node"

# A benchmark module exposes add_arguments(parser) + run(args) -> int, or main(argv) -> int
# (then its own flags follow the benchmark name unchanged).
BENCHMARKS = {
    "models": "lsmdepth_ros.benchmarks.models",
    "training": "lsmdepth_ros.benchmarks.training",
    "node": "lsmdepth_ros.benchmarks.node",
    "supervision": "lsmdepth_ros.benchmarks.supervision",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    sub.required = True
    for name, module_name in BENCHMARKS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        summary = (module.__doc__ or name).strip().splitlines()[0]
        p = sub.add_parser(name, help=summary, description=summary)
        if hasattr(module, "add_arguments") and hasattr(module, "run"):
            module.add_arguments(p)
            p.set_defaults(_benchmark_run=module.run)
        else:
            p.add_argument("benchmark_args", nargs=argparse.REMAINDER,
                           help="arguments passed to the benchmark (see its --help)")
            p.set_defaults(_benchmark_run=lambda a, m=module: m.main(a.benchmark_args))


def run(args: argparse.Namespace) -> int:
    return int(args._benchmark_run(args) or 0)
