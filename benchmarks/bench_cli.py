"""How fast the CLI answers: `anime --help` and `anime list` against a bare `import torch`.

Each command runs in a fresh interpreter; the three are interleaved in every round so they see the
same machine load, and the report gives medians, the ratios to `import torch` and peak RSS
(``ru_maxrss`` of the child). Usage: ``python benchmarks/bench_cli.py [--rounds 7]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CASES = {
    "import torch": [sys.executable, "-c", "import torch"],
    "anime --help": [sys.executable, "-m", "anime_core.cli", "--help"],
    "anime list": [sys.executable, "-m", "anime_core.cli", "list"],
    "anime plugins": [sys.executable, "-m", "anime_core.cli", "plugins"],
}


def _once(cmd: list[str]) -> float:
    """Wall seconds of one fresh process."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _rss(cmd: list[str]) -> float:
    """Peak RSS in MB of ``cmd`` alone (a wrapper process waits for it and reports its children's peak)."""
    # ru_maxrss of RUSAGE_CHILDREN is the maximum over all children, so each measurement runs in its own wrapper
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
        "stderr=subprocess.DEVNULL, check=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for cmd in CASES.values():  # warm the page cache once
        _once(cmd)
    for _ in range(args.rounds):
        for name, cmd in CASES.items():
            times[name].append(_once(cmd))
    torch_s = statistics.median(times["import torch"])
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; median of {args.rounds} rounds")
    print("| command | median s | / import torch | peak RSS MB |")
    print("| --- | --- | --- | --- |")
    for name, cmd in CASES.items():
        med = statistics.median(times[name])
        print(f"| `{name}` | {med:.3f} | {med / torch_s:.2f} | {_rss(cmd):.0f} |")


if __name__ == "__main__":
    main()
