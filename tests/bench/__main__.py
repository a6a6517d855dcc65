"""Runs every benchmark module (`bench_*.py`), or those named: `python -m tests.bench verify`."""

import importlib
import pkgutil
import sys

import tests.bench as package


def main(argv: list[str]) -> None:
    names = sorted(
        m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("bench_")
    )
    wanted = [n for n in names if not argv or any(a in n for a in argv)]
    for name in wanted:
        print(f"\n##### {name}", flush=True)
        importlib.import_module(f"tests.bench.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
