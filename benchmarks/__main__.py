"""`python -m benchmarks` (make bench): training overhead, then serving throughput and latency.

Each part runs alone with its own options: `python -m benchmarks.training --help`,
`python -m benchmarks.serving --help`.
"""

import argparse
import sys

from benchmarks import serving, training

argparse.ArgumentParser(
    prog="python -m benchmarks",
    description="Runs the training benchmark, then the serving benchmark, with their defaults. "
    "For options, run python -m benchmarks.training --help or python -m benchmarks.serving "
    "--help.",
).parse_args()
sys.argv = sys.argv[:1]
training.main()
serving.main()
