"""Choose among code variants by timing them on the real data, and remember the choice.

The tuning file (``<cache>/tuning.json``) maps a problem key -- backend, kernel, M (rounded up to
a power of two), D, cvtype, dtype, the order of magnitude of N, the target (ISA and vector
width) and a tag of the compiled code (which covers the CPU) -- to the variant to run and the
times measured, so a new process skips tuning; an entry from another width or CPU has another
key, so it is re-tuned.  Variants are timed in interleaved rounds and each keeps its best time
(a busy machine slows some calls, never speeds one up); while a variant's own times still
spread, the rounds are repeated (at most twice).  A winner whose margin over the default
is within the noise of the measurements is not taken: the default runs, and the record says
so.  ``EM_AUTOTUNE=0`` switches tuning off (the default variant runs, nothing is written).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
import warnings
from pathlib import Path
from typing import Callable

from filelock import FileLock

from em.specializer.cache import tuning_file

ENV_VAR = "EM_AUTOTUNE"


def enabled() -> bool:
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


ROUNDS = 3              # timed calls per variant, after one warm-up call each
NOISE = 0.03            # relative margin below which a winner is not trusted
UNSTEADY = 0.10         # a candidate's own spread beyond which the rounds are timed again,
RETRIES = 2             # at most this many more times (a burst of load on a shared machine)


def problem_key(backend: str, kernel: str, M: int, D: int, cvtype: str, dtype: str, N: int,
                target: str, tag: str) -> str:
    magnitude = int(math.floor(math.log10(max(N, 1))))
    bucket = 1 << max(0, int(M) - 1).bit_length()
    return f"{backend}/{kernel}/M{bucket}/D{D}/{cvtype}/{dtype}/N1e{magnitude}/{target}/{tag}"


_WARNED: set[str] = set()


def read(path: Path | None = None) -> dict:
    """The whole tuning file: {key: record}.  Absent: {}.  Unreadable, or entries of the wrong
    shape: those are discarded with one warning (per file and process), never an exception."""
    path = path or tuning_file()
    if path.is_dir():                           # a folder where the file should be: ours, removed
        _damaged(path, "a folder, not a file")
        shutil.rmtree(path, ignore_errors=True)
        return {}
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        _damaged(path, str(exc))
        return {}
    if not isinstance(data, dict):
        _damaged(path, f"a JSON {type(data).__name__}, not an object")
        return {}
    good = {k: r for k, r in data.items()
            if isinstance(r, dict) and isinstance(r.get("variant"), str)}
    if len(good) < len(data):
        _damaged(path, f"{len(data) - len(good)} entries without a variant name")
    return good


def _damaged(path: Path, why: str) -> None:
    if str(path) not in _WARNED:
        _WARNED.add(str(path))
        warnings.warn(f"em: tuning file {path} is damaged ({why}); its choices are discarded "
                      "and measured again", RuntimeWarning, stacklevel=4)


def _write(key: str, record: dict, path: Path) -> None:
    with FileLock(str(path) + ".lock", timeout=60):
        data = read(path)
        data[key] = record
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        try:
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def time_calls(candidates: dict[str, Callable[[], object]], rounds: int = ROUNDS,
               warm: bool = True) -> dict:
    """{name: [times]}: one warm-up call each (unless ``warm`` is False), then ``rounds``
    rounds calling each in turn (so a burst of load hits every candidate, not just one)."""
    for fn in candidates.values() if warm else ():
        fn()
    times = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def spread(ts: list[float]) -> float:
    """How far a candidate's second-best time lies above its best (0 for one time)."""
    own = sorted(ts)
    return (own[1] - own[0]) / own[0] if len(own) > 1 and own[0] > 0 else 0.0


def decide(times: dict[str, list[float]], default: str) -> dict:
    """The tuning record for measured times: the fastest by best time, unless its margin over
    the default is within the noise (NOISE, or the spread of the default's own timings)."""
    best = {name: min(ts) for name, ts in times.items()}
    winner = min(best, key=best.get)
    margin = (best[default] - best[winner]) / best[default] if best[default] > 0 else 0.0
    noise = max(NOISE, spread(times[default]))
    within = winner != default and margin <= noise
    return {"variant": default if within else winner, "times_s": best,
            "margin": round(margin, 4), "noise": round(noise, 4), "within_noise": within,
            "when": time.strftime("%F %T")}


def measure(candidates: dict[str, Callable[[], object]], default: str) -> dict:
    """The tuning record (:func:`decide`) of timing ``candidates``; while some candidate's own
    times spread beyond UNSTEADY, the rounds are timed again (at most RETRIES more times) and
    every round's times kept: a burst of load had made a 1.7x faster variant lose to the
    default on this project's shared VM."""
    times = time_calls(candidates)
    for _ in range(RETRIES):
        if max(spread(ts) for ts in times.values()) <= UNSTEADY:
            break
        for name, ts in time_calls(candidates, warm=False).items():
            times[name] += ts
    return decide(times, default)


_KEY_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()


def _key_lock(key: str) -> threading.Lock:
    with _GUARD:
        return _KEY_LOCKS.setdefault(key, threading.Lock())


def _remembered(key: str, candidates) -> str | None:
    record = read().get(key)
    return record["variant"] if record and record["variant"] in candidates else None


def choose(key: str, candidates: dict[str, Callable[[], object]], default: str,
           memo: dict | None = None, forced: str | None = None) -> str:
    """The variant to run for ``key``: ``forced`` if given (it must be a candidate), else
    remembered, else timed now (if tuning is on), else ``default``.

    ``candidates`` maps variant names to zero-argument calls that run the kernel on the data.
    One thread (and one process, through a lock beside the tuning file) tunes a key at a time
    and the others take its choice, so the result never depends on who tuned first.
    """
    if forced is not None:
        if forced not in candidates:
            raise ValueError(f"variant {forced!r} is not one of {list(candidates)}")
        return forced
    with _key_lock(key):
        if memo is not None and key in memo:
            return memo[key]
        choice = _remembered(key, candidates)
        if choice is None:
            choice = default if not enabled() else _tune(key, candidates, default)
        if memo is not None:
            memo[key] = choice
    return choice


def _tune(key: str, candidates, default: str) -> str:
    try:
        path = tuning_file()
        lock = FileLock(str(path) + ".tuning", timeout=600)
        lock.acquire()
    except OSError:                             # an unusable cache only costs re-tuning
        return measure(candidates, default)["variant"]
    try:
        choice = _remembered(key, candidates)   # another process may have tuned meanwhile
        if choice is None:
            record = measure(candidates, default)
            choice = record["variant"]
            try:
                _write(key, record, path)
            except OSError:
                pass
        return choice
    finally:
        lock.release()
