"""Benchmarks (`make bench`): each `bench_*.py` module here has a `main()` that prints the
command, its figures and their ratio to a baseline measured in the same run."""
