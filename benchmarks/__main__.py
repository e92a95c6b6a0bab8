"""`python -m benchmarks` (make bench): the serving benchmark."""

from benchmarks.serving import main

main()
