"""`python -m benchmarks` (make bench): training overhead, search with 1 and 2 workers,
serving throughput and latency, explanation latency, then the operator at scale.

Each part runs alone with its own options: `python -m benchmarks.<part> --help` for training,
search, serving, explain and scale.
"""

import argparse
import sys

from benchmarks import explain, scale, search, serving, training

argparse.ArgumentParser(
    prog="python -m benchmarks",
    description="Runs the training, search, serving, explain and scale benchmarks with their "
    "defaults. For options, run python -m benchmarks.<part> --help.",
).parse_args()
sys.argv = sys.argv[:1]
training.main()
search.main()
serving.main()
explain.main()
scale.main()
