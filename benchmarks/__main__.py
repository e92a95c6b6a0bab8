"""`python -m benchmarks` (make bench): training overhead, then serving throughput and latency."""

import sys

from benchmarks import serving, training

argv = sys.argv
sys.argv = [argv[0]]
training.main()
serving.main()
