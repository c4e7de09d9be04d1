"""The engine's check time with its hot-path modules compiled by mypyc, next to pure Python.

An experiment, not a build mode: two copies of lictor at REV (`git archive`), the hot-path
modules of one compiled in place with mypyc (it ships with mypy; needs a C compiler and
setuptools), then `check_time.py --worker` on each, taking alternate rounds (the order
flipped every round) so the VM's speed changes hit both alike: p50/p99 per shape and the
ratio, from one run.

    python bench/mypyc_check_time.py [--requests 1000] [--rev HEAD] [--json PATH]

Not compiled: `cedar_compiled` and `presidio_import` (mypyc refuses their tuple and `type`
subclasses), and the modules off the check's path.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from compare_systems import ROOT, checkout, source_env
from measure import percentile, run_header, write_json

HERE = Path(__file__).resolve().parent
ROUND = 50  # as check_time.py's rounds
ENFORCEMENT = (
    "action_authorization", "agent_actions", "authorization", "byte_regex", "engine",
    "limits", "normalize", "pattern_scanner", "segment_cache", "session_state",
    "tool_arguments", "tool_pins", "types", "young_objects",
    "pii/digest_cache", "pii/phone_validity", "pii/placeholder_vault", "pii/recognizers",
    "pii/scanner", "pii/stream_restorer",
)
MODULES = (*(f"lictor/enforcement/{m}.py" for m in ENFORCEMENT), "lictor/adapters/openai_chat.py")


def tree(rev: str, tmp: Path, *, compiled: bool) -> dict[str, str]:
    """The environment running lictor at `rev` from its own copy, compiled or not."""
    tmp.mkdir()
    source = checkout(rev, tmp)
    env = source_env(source, tmp / "view")
    if compiled:  # the extension modules land next to their sources, found before them
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "mypyc", "--config-file",
                        str(ROOT / "pyproject.toml"), "--explicit-package-bases", *MODULES],
                       cwd=tmp / "view", check=True, stdout=subprocess.DEVNULL)
        print(f"mypyc: {len(MODULES)} modules in {time.monotonic() - started:.0f} s",
              flush=True)
    return env


def worker(env: dict[str, str], n: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, str(HERE / "check_time.py"), "--worker",
                             "--requests", str(n)], env={**os.environ, **env},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit("a check_time worker did not start")
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    n = args.requests
    times: dict[str, dict[str, list[float]]] = {"pure": {}, "mypyc": {}}
    with tempfile.TemporaryDirectory() as tmp:
        envs = {name: tree(args.rev, Path(tmp) / name, compiled=name == "mypyc")
                for name in times}
        workers = {name: worker(env, n) for name, env in envs.items()}
        for k, start in enumerate(range(0, n, ROUND)):
            for name in list(workers)[:: 1 if k % 2 == 0 else -1]:
                proc = workers[name]
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(f"{start}\n")
                proc.stdin.flush()
                for shape, values in json.loads(proc.stdout.readline()).items():
                    times[name].setdefault(shape, []).extend(values)
        for proc in workers.values():
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait()
    results: dict[str, Any] = {**run_header(), "rev": args.rev, "requests_each": n,
                               "load": os.getloadavg()[0]}
    print(f"engine check time, {n} requests each, lictor {args.rev} pure and mypyc-compiled, "
          f"load average {results['load']:.2f}")
    print(f"{'shape':10} {'pure p50':>9} {'p99':>8} {'mypyc p50':>10} {'p99':>8}  p50 / p99 ratio")
    for shape in times["pure"]:
        row = {name: {"p50_us": round(percentile(values[shape], 0.5), 1),
                      "p99_us": round(percentile(values[shape], 0.99), 1)}
               for name, values in times.items()}
        results[shape] = row
        pure, fast = row["pure"], row["mypyc"]
        print(f"{shape:10} {pure['p50_us']:9.1f} {pure['p99_us']:8.1f} {fast['p50_us']:10.1f} "
              f"{fast['p99_us']:8.1f}  {pure['p50_us'] / fast['p50_us']:.2f}x / "
              f"{pure['p99_us'] / fast['p99_us']:.2f}x")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
