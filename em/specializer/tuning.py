"""Choose among code variants by timing them on the real data, and remember the choice.

The tuning file (``<cache>/tuning.json``) maps a problem key -- backend, kernel, M, D, cvtype,
dtype, the order of magnitude of N and a tag of the compiled code (which covers the CPU) -- to
the winning variant and the times
measured, so a new process skips tuning.  ``EM_AUTOTUNE=0`` switches tuning off (the backend's
default variant is used, and nothing is written).
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Callable

from filelock import FileLock

from em.specializer.cache import tuning_file

ENV_VAR = "EM_AUTOTUNE"


def enabled() -> bool:
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


def problem_key(backend: str, kernel: str, M: int, D: int, cvtype: str, dtype: str, N: int,
                tag: str) -> str:
    magnitude = int(math.floor(math.log10(max(N, 1))))
    return f"{backend}/{kernel}/M{M}/D{D}/{cvtype}/{dtype}/N1e{magnitude}/{tag}"


def read(path: Path | None = None) -> dict:
    """The whole tuning file ({} when absent or unreadable)."""
    path = path or tuning_file()
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(key: str, record: dict, path: Path) -> None:
    with FileLock(str(path) + ".lock", timeout=60):
        data = read(path)
        data[key] = record
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)


def time_call(fn: Callable[[], object], reps: int = 2) -> float:
    """Best of ``reps`` timed calls after one warm-up call."""
    fn()
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def choose(key: str, candidates: dict[str, Callable[[], object]], default: str,
           memo: dict | None = None, forced: str | None = None) -> str:
    """The variant to run for ``key``: ``forced`` if given (it must be a candidate), else
    remembered, else timed now (if tuning is on), else ``default``.

    ``candidates`` maps variant names to zero-argument calls that run the kernel on the data.
    """
    if forced is not None:
        if forced not in candidates:
            raise ValueError(f"variant {forced!r} is not one of {list(candidates)}")
        return forced
    if memo is not None and key in memo:
        return memo[key]
    record = read().get(key)
    if record and record.get("variant") in candidates:
        choice = record["variant"]
    elif not enabled():
        choice = default
    else:
        times = {name: time_call(fn) for name, fn in candidates.items()}
        choice = min(times, key=times.get)
        try:
            _write(key, {"variant": choice, "times_s": times, "when": time.strftime("%F %T")},
                   tuning_file())
        except OSError:
            pass                                # a read-only cache only costs re-tuning
    if memo is not None:
        memo[key] = choice
    return choice
