"""Diarizer accuracy and speed on real voices with known truth; prints one table row per run.

Recordings (all real speech, ``benchmarks/data/LICENSE.txt`` and ``examples/data``):

* ``sample``    the bundled 30 s two-speaker conversation, with its reference RTTM.
* ``voices``    4 speakers joined with known truth: the sample's two speakers (their turns
                without overlap) plus a LibriVox reader and a "cards" speaker (pocketsphinx test
                data), cut into 1.5-4 s pieces and shuffled (``--seeds`` orders), 0.3 s of quiet
                between pieces.  Front end: our librosa MFCCs and speech detector.
* ``tidigits``  2 speakers (TIDIGITS man/woman, 31 utterances, Sphinx MFCC c1..c12) alternating;
                speech = frames whose c0 is above the utterance's 30th percentile.
* ``tiled``     speed case: the sample's speech frames repeated to ``--minutes`` of audio.
* ``devset``    the development set written by ``benchmarks/build_devset.py`` (``--devset DIR``,
                default ``benchmarks/devset/``): every recording through ``pipeline.run`` with
                its own configuration as written (the default settings; ``--set KEY=VALUE``,
                repeated, replaces configuration keys for experiments; ``--initial-clusters``
                etc. do not apply) for each of ``--seeds`` clustering seeds, outputs written to
                a temporary directory; one table, a row per recording.  In the default case
                list when the folder has a ``manifest.json``.

``--protocol loso`` (leave one source out, on the development set): every candidate setting of
the grid (``CANDIDATES``, ``--grid`` picks, ``--candidate NAME:KEY=VALUE,...`` adds) runs on
every recording for every seed with the true speaker count given.  For each source S of the
manifest (a recording belongs to each source it lists) the candidate with the lowest DER over
the recordings outside S (duration-weighted, median over seeds) is scored on S's recordings; a
recording's row uses the candidate chosen without any of its sources, also run with the count
estimated.  Finished runs are cached in ``DIR/loso_cache.json`` (keyed by the candidate's keys,
the recording's files, the seed, git HEAD and em/diarization/*.py), so a repeated or interrupted
run reuses them.  One table, then a line checking the targets (``TARGETS``).

    python benchmarks/bench_diarizer.py                      # every case, default settings
    python benchmarks/bench_diarizer.py --cases voices --seeds 5 --initial-clusters 16
    python benchmarks/bench_diarizer.py --cases tiled --profile
    python benchmarks/bench_diarizer.py --cases devset --only nl2 --set resegmentation=viterbi
    python benchmarks/bench_diarizer.py --protocol loso --seeds 2
    python benchmarks/bench_diarizer.py --build-ubm em/diarization/ubm.h5   # the shipped UBM
    python benchmarks/bench_diarizer.py --protocol loso --only _1m --seeds 1 --grid default,merge0 \
        --candidate md50:resegmentation=viterbi,min_duration=50
"""
from __future__ import annotations

import argparse
import configparser
import contextlib
import cProfile
import hashlib
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from em import EMWarning                                          # noqa: E402
from em.diarization.cluster import Settings, diarize               # noqa: E402
from em.diarization.pipeline import der                            # noqa: E402
from em.io import read_htk, read_rttm, segments_from_labels        # noqa: E402
from em.io.rttm import Turn                                        # noqa: E402

DATA = ROOT / "benchmarks" / "data"
SAMPLE = ROOT / "examples" / "data"
DEVSET = ROOT / "benchmarks" / "devset"
SR = 16000


def _turns(spans, name):
    return [Turn(name, 1, on, dur, spk) for on, dur, spk in spans]


def sample_case(seed=0):
    from em.io.spnsp import read_spnsp
    X, _ = read_htk(SAMPLE / "sample.htk")
    return X, read_spnsp(SAMPLE / "sample.spnsp"), read_rttm(SAMPLE / "sample.rttm"), len(X) / 100


def _speaker_audio():
    """{speaker: [1-D float32 arrays]} of single-speaker real speech."""
    from em.diarization.features import read_wav
    wav = read_wav(SAMPLE / "sample.wav")
    ref = read_rttm(SAMPLE / "sample.rttm")
    talk = {}
    for t in ref:                   # keep the parts of each turn that no other turn overlaps
        lo, hi = t.onset, t.onset + t.duration
        for u in ref:
            if u is not t and u.onset < hi and u.onset + u.duration > lo:
                if u.onset <= lo:
                    lo = max(lo, u.onset + u.duration)
                else:
                    hi = min(hi, u.onset)
        if hi - lo > 1.0:
            talk.setdefault(t.speaker, []).append(wav[int(lo * SR):int(hi * SR)])
    for who in ("cards", "librivox"):
        talk[who] = [read_wav(p) for p in sorted((DATA / "voices").glob(who + "-*.wav"))]
    return talk


def voices_case(seed=0):
    from em.diarization.features import mfcc, speech_frames
    rng = np.random.default_rng(seed)
    pieces = []
    for spk, clips in _speaker_audio().items():
        for clip in clips:
            at = 0
            while len(clip) - at >= int(1.5 * SR):
                n = min(len(clip) - at, int(rng.uniform(1.5, 4.0) * SR))
                pieces.append((spk, clip[at:at + n]))
                at += n
    order = rng.permutation(len(pieces))
    gap = (rng.standard_normal(int(0.3 * SR)) * 1e-4).astype(np.float32)
    audio, spans, t = [], [], 0.0
    for i in order:
        spk, piece = pieces[i]
        audio += [gap, piece]
        t += len(gap) / SR
        spans.append((t, len(piece) / SR, spk))
        t += len(piece) / SR
    samples = np.concatenate(audio)
    return mfcc(samples), speech_frames(samples), _turns(spans, "voices"), len(samples) / SR


def tidigits_case(seed=0):
    files = {w: sorted((DATA / "tidigits").glob(w + ".*.htk")) for w in ("man", "woman")}
    rng = np.random.default_rng(seed)
    for v in files.values():
        rng.shuffle(v)
    feats, speech, truth = [], [], []
    for pair in zip(files["man"], files["woman"]):
        for k, path in enumerate(pair):
            X, _ = read_htk(path)
            feats.append(X[:, :12])
            speech.append(X[:, 12] > np.percentile(X[:, 12], 30))
            truth.append(np.where(speech[-1], k, -1))       # silent frames are not a turn
    mask = np.concatenate(speech)
    ref = segments_from_labels(np.concatenate(truth), 0.01, "tidigits")
    return np.concatenate(feats), mask, ref, len(mask) / 100


def tiled_case(seed=0, minutes=10.0):
    X, speech, _, seconds = sample_case()
    reps = int(np.ceil(minutes * 60 / seconds))
    rng = np.random.default_rng(seed)
    Xt = np.tile(X, (reps, 1))
    Xt += rng.standard_normal(Xt.shape).astype(np.float32) * 1e-3
    ref = [Turn("tiled", 1, r * seconds + t.onset, t.duration, t.speaker)
           for r in range(reps) for t in read_rttm(SAMPLE / "sample.rttm")]
    return Xt, np.tile(speech, reps), ref, reps * seconds


def cli_speed(settings, minutes=10.0, runs=3):
    """``examples/cluster.py`` in fresh processes on the tiled recording written as HTK + spnsp
    + RTTM files: the diarizer's own 'time:' line (features read to outputs written; compiled
    kernels cached after the first run) and the whole process wall time."""
    import subprocess
    import tempfile
    from em.io import write_rttm
    from em.io.htk import write_htk
    X, speech, ref, seconds = tiled_case(0, minutes)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_htk(tmp / "t.htk", X, parm_kind="USER")
        (tmp / "t.spnsp").write_text("\n".join("1" if v else "0" for v in speech) + "\n")
        write_rttm(tmp / "t.rttm", ref)
        (tmp / "t.cfg").write_text(
            "[Diarizer]\nbasename = tiled\nmfcc_feats = t.htk\nspnsp_file = t.spnsp\n"
            "reference_rttm = t.rttm\noutput_cluster = out.rttm\ngmm_output = out.gmm\n"
            + "".join(f"{k} = {v}\n" for k, v in _cfg_values(settings).items()))
        for run in range(runs):
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, str(ROOT / "examples" / "cluster.py"), "-c",
                                  str(tmp / "t.cfg")], capture_output=True, text=True, check=True)
            wall = time.perf_counter() - t0
            line = next(x for x in out.stdout.splitlines() if x.startswith("time:"))
            der_line = next(x for x in out.stdout.splitlines() if x.startswith("DER"))
            print(f"cli run {run}: {line[6:]}; process wall {wall:.2f} s; {der_line}")


def _cfg_values(s: Settings) -> dict:
    """The diarizer.cfg keys for Settings s."""
    return {"initial_clusters": s.initial_clusters, "M_mfcc": s.M, "seg_length": s.seg_length,
            "em_iterations": s.em_iterations, "KL_ntop": s.KL_ntop}


# ------------------------------------------------------------------ the development set

PATH_KEYS = ("basename", "mfcc_feats", "audio_file", "spnsp_file", "reference_rttm",
             "output_cluster", "gmm_output")


def parse_overrides(items, what="--set") -> dict:
    """``KEY=VALUE`` items -> {configuration key: value text}; the values are checked where
    the diarizer reads them (``configure``); paths and the basename cannot be set."""
    from em.diarization.config import KEYS
    out = {}
    for item in items:
        key, eq, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not eq or key not in KEYS or key in PATH_KEYS:
            settable = ", ".join(k for k in KEYS if k not in PATH_KEYS)
            raise ValueError(f"{what} {item!r}: {key!r} is not a configuration key this "
                             f"diarizer knows; want KEY=VALUE with KEY one of {settable}")
        out[key] = raw
    return out


def configure(path: Path, keys: dict, tmp: Path):
    """The configuration file ``path`` with ``keys`` (configuration key: value) written into
    it and its outputs sent to ``tmp``, read as the diarizer reads a file (which checks every
    key and value: a ConfigError naming the key)."""
    from em.diarization.config import KEYS, SECTION, read_config
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(path, encoding="utf-8")
    section = parser[SECTION]
    for key in list(section):                   # relative paths: relative to the original
        if KEYS.get(key, (None,))[0] is Path and section[key].strip():
            section[key] = str(path.parent.resolve() / section[key].strip())
    section.update({k: str(v) for k, v in keys.items()})
    section["output_cluster"] = str(tmp / f"{path.stem}.hyp.rttm")
    section["gmm_output"] = str(tmp / f"{path.stem}.gmm")
    written = tmp / path.name
    with open(written, "w", encoding="utf-8") as f:
        parser.write(f)
    return read_config(written)


def diarize_file(path, keys: dict, seed: int) -> dict:
    """pipeline.run on the configuration file ``path`` with ``keys``: its figures."""
    from em.diarization.pipeline import run
    with tempfile.TemporaryDirectory(prefix="bench_devset_") as tmp:
        cfg = configure(Path(path), keys, Path(tmp))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EMWarning)
            return run(cfg, out=lambda *_: None, seed=seed)


def _condition(c: dict) -> str:
    """The manifest's condition, short: clean, pink15, white10+gain, tel+mulaw, dc ..."""
    parts = ["orig"] if c.get("original") else []
    if c.get("noise"):
        parts.append(f"{c['noise']}{c['snr_db']:g}")
    parts += [short for key, short in (("gains", "gain"), ("telephone", "tel"),
                                       ("mulaw", "mulaw"), ("dc", "dc")) if c.get(key)]
    parts += [f"{name}{abs(c[key]):g}" for key, name in
              (("jumps_db", "jumps"), ("floor_dbfs", "floor"), ("clip_db", "clip")) if key in c]
    return "+".join(parts) or "clean"


def _recordings(folder: Path, only) -> list:
    """The manifest's recordings whose name contains ``only`` (an empty list, said, if none)."""
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        print(f"devset: no {manifest}; run `python benchmarks/build_devset.py` first "
              "(case skipped)")
        return []
    recordings = [r for r in json.loads(manifest.read_text(encoding="utf-8"))["recordings"]
                  if only is None or only in r["name"]]
    if not recordings:
        print(f"devset: no recording in {manifest} has {only!r} in its name")
    return recordings


def devset_case(folder: Path, seeds: int, overrides: dict, only=None, prof=None,
                told: bool = False) -> None:
    """Every recording of the development set (names containing ``only``) through
    ``pipeline.run`` for seeds 0..seeds-1; one row per recording, then a TOTAL line."""
    recordings = _recordings(folder, only)
    if not recordings:
        return
    minutes = sum(r["duration_s"] for r in recordings) / 60
    print(f"devset: {len(recordings)} recordings, {minutes:.1f} min, seeds 0..{seeds - 1}, "
          + ("the true speaker count given, " if told else "")
          + ("settings: each configuration with " + ", ".join(f"{k}={v}" for k, v in
                                                               overrides.items())
             if overrides else "settings: each configuration as written (defaults)"))
    print("DER: ±0.25 s collar (pyannote collar=0.5), overlap not scored, median over seeds; "
          "worst-med: worst seed minus median, points; DER0: no collar, overlap scored, "
          "median; x RT: audio seconds per second of processing (WAV to outputs), median")
    print(f"{'recording':21s} {'dur s':>6s} {'spk':>3s} {'cond':16s} {'DER':>6s} "
          f"{'worst-med':>9s} {'DER0':>6s} {'speakers':>10s} {'x RT':>5s}")
    rows, t_start = [], time.perf_counter()
    for rec in recordings:
        name = rec["name"]
        keys = {**overrides, **({"speakers": rec["n_speakers"]} if told else {})}
        runs = []
        for seed in range(seeds):
            if prof:
                prof.enable()
            try:
                runs.append(diarize_file(folder / rec["cfg"], keys, seed))
            finally:
                if prof:
                    prof.disable()
        ders = [r["der_c0.5_nooverlap"] for r in runs]
        med = float(np.median(ders))
        row = {"duration": rec["duration_s"], "der": med, "spread": max(ders) - med,
               "right": sum(r["speakers"] == r["true_speakers"] for r in runs),
               "runs": len(runs)}
        rows.append(row)
        print(f"{name:21s} {rec['duration_s']:6.1f} {runs[0]['true_speakers']:3d} "
              f"{_condition(rec['condition']):16s} {100 * med:5.1f}% "
              f"{100 * row['spread']:+9.1f} "
              f"{100 * np.median([r['der_c0.0_overlap'] for r in runs]):5.1f}% "
              f"{','.join(str(r['speakers']) for r in runs):>10s} "
              f"{np.median([r['speed'] for r in runs]):5.0f}", flush=True)
    dur = np.array([r["duration"] for r in rows])
    der_ = np.array([r["der"] for r in rows])
    right, n_runs = sum(r["right"] for r in rows), sum(r["runs"] for r in rows)
    stable = sum(r["spread"] <= 0.03 for r in rows)
    print(f"{'TOTAL':21s} {dur.sum():6.1f}  DER {100 * np.average(der_, weights=dur):.1f}% "
          f"weighted by duration, {100 * der_.mean():.1f}% unweighted; right speaker count "
          f"{right}/{n_runs} runs ({100 * right / n_runs:.0f}%); worst seed within 3 points of "
          f"the median {stable}/{len(rows)} recordings ({100 * stable / len(rows):.0f}%); "
          f"elapsed {time.perf_counter() - t_start:.0f} s", flush=True)


# ------------------------------------------------------------------ leave one source out

# the grid --protocol loso chooses from: name -> configuration keys over each recording's own
# configuration ("default": as written); keys only, checked where the diarizer reads them
_BASE = {"resegmentation": "viterbi", "initialization": "changes", "extra_clusters": 2,
         "spectral_floor_db": 60, "merge_score": "clr", "relevance": 4.0,
         "min_speaker_frames": 1000, "min_speaker_share": 0.1, "count_rule": "gap",
         "clr_threshold": 2.5}              # the defaults, spelled out
CANDIDATES = {                     # every key explicit: the recordings' files say the 2011 recipe
    "default": _BASE,
    "bic": {**_BASE, "merge_score": "bic"},
    "small0": {**_BASE, "min_speaker_frames": 0},
    "small300": {**_BASE, "min_speaker_frames": 300},
    "small600": {**_BASE, "min_speaker_frames": 600},
    "share1": {**_BASE, "min_speaker_share": 1.0},         # no cap for short recordings
    "rel10": {**_BASE, "relevance": 10.0},
    "rel16": {**_BASE, "relevance": 16.0},
    "floor40": {**_BASE, "spectral_floor_db": 40},
    "floor0": {**_BASE, "spectral_floor_db": 0},
    "extra4": {**_BASE, "extra_clusters": 4},
    "changes16": {**_BASE, "extra_clusters": 128},          # 12-16 clusters, as uniform
    "uniform16": {**_BASE, "initialization": "uniform", "extra_clusters": 128},  # issue 12
    "no_var_floor": {**_BASE, "variance_floor": 1e-6},
    "vote": {**_BASE, "resegmentation": "vote"},
    "md50": {**_BASE, "min_duration": 50},
    # the count estimated (--count estimated): the CLR's largest fall (the default; a pair
    # above clr_threshold always merged), or merging while the CLR exceeds clr_threshold
    **{f"clr{t:g}": {**_BASE, "clr_threshold": t} for t in (1.0, 1.6, 4.0)},
    **{f"thr{t:g}": {**_BASE, "count_rule": "threshold", "clr_threshold": t}
       for t in (1.3, 1.6, 2.0)},
    "thr1.6_share1": {**_BASE, "count_rule": "threshold", "clr_threshold": 1.6,
                      "min_speaker_share": 1.0},               # the first session's default
}
# the grid each --count compares by default (the CLR stop acts only with the count estimated)
# (share1 is the default with the count given; the estimated grid is the gap rule's own knobs:
# twelve candidates, the others included, overfit the folds -- BENCHMARKS.md, issue 23)
GRIDS = {"given": [n for n in CANDIDATES if not n.startswith(("clr", "thr", "share"))],
         "estimated": ["default", "clr1", "clr1.6", "clr4", "share1"]}
# DER targets (±0.25 s collar, overlap not scored): clean two-speaker recordings, other
# two-speaker ones and the bundled sample's, every recording; worst seed minus median
TARGETS = {"clean2": 0.05, "other2": 0.10, "any": 0.20, "spread": 0.03}
# with the count estimated (--count estimated; issue 23): share of runs with the right count,
# DER of clean and other two-speaker recordings (no bound on the others)
COUNT_TARGETS = {"right": 0.85, "clean2": 0.10, "other2": 0.15, "any": 1.0}
GIVEN = {True: "given", False: "estimated"}


def parse_candidate(text: str) -> tuple[str, dict]:
    """``NAME:KEY=VALUE,KEY=VALUE`` -> (NAME, {KEY: VALUE})."""
    name, colon, items = text.partition(":")
    if not colon or not name.strip():
        raise ValueError(f"--candidate {text!r}: want NAME:KEY=VALUE,KEY=VALUE")
    return name.strip(), parse_overrides([i for i in items.split(",") if i.strip()],
                                         f"--candidate {name.strip()}:")


def _target(rec, told: bool = True) -> float:
    """The DER a recording must stay within (TARGETS, or COUNT_TARGETS with the count
    estimated; the sample's are two-speaker)."""
    limits = TARGETS if told else COUNT_TARGETS
    if rec["n_speakers"] != 2:
        return limits["any"]
    clean = not set(rec["condition"]) - {"description"}
    return limits["clean2"] if clean else limits["other2"]


def _code_version() -> str:
    """git HEAD and a hash of em/diarization/*.py: the diarizer the cached runs came from."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    h = hashlib.sha256()
    for f in sorted((ROOT / "em" / "diarization").glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    return f"{head}:{h.hexdigest()[:16]}"


def _files_hash(folder: Path, rec) -> str:
    h = hashlib.sha256()
    for key in ("cfg", "wav", "rttm"):
        h.update((folder / rec[key]).read_bytes())
    return h.hexdigest()[:16]


def _save_cache(path: Path, cache: dict) -> None:
    """Writes the cache (atomically), merged with the file's entries: another run may share
    the file."""
    if path.is_file():
        cache.update({k: v for k, v in json.loads(path.read_text()).items() if k not in cache})
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache))
    tmp.replace(path)


def _loso_run(job):
    """One (cfg path, keys, seed) run in a worker: the figures the table needs."""
    path, keys, seed = job
    r = diarize_file(path, keys, seed)
    return {"der": r["der_c0.5_nooverlap"], "der0": r["der_c0.0_overlap"],
            "speakers": r["speakers"], "speed": r["speed"], "seconds": r["seconds"]}


# the diarizer's UBM: examples/train_ubm.py with these arguments on the development set's WAV
# files (the shipped em/diarization/ubm.h5: --build-ubm; each LOSO fold: without its sources)
UBM_ARGS = ("-M", "64", "--var-floor", "0.01", "--iters", "30", "--seed", "0")


def build_ubm(wavs, out: Path) -> Path:
    """examples/train_ubm.py UBM_ARGS on ``wavs``, written to ``out`` (in a child process: an
    OpenMP runtime started here would hang the --jobs workers forked after it)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "examples/train_ubm.py",
                    *(os.path.relpath(w, ROOT) for w in wavs), *UBM_ARGS,
                    "-o", os.path.abspath(out)], check=True, cwd=ROOT)    # names in the file
    return out


def fold_ubm(folder: Path, held_out: set) -> Path:
    """The UBM trained on the development set's recordings outside the ``held_out`` sources
    (built once into ``folder/ubm/`` for each version of the front end and UBM_ARGS)."""
    every = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["recordings"]
    front = hashlib.sha1(repr(UBM_ARGS).encode() + b"".join(
        (ROOT / "em" / "diarization" / f).read_bytes() for f in ("features.py", "settings.py")))
    out = folder / "ubm" / f"without-{'+'.join(sorted(held_out))}-{front.hexdigest()[:10]}.h5"
    if not out.is_file():
        build_ubm([folder / r["wav"] for r in every if not held_out & set(r["source"])], out)
    return out


def loso_case(folder: Path, seeds: int, overrides: dict, candidates: dict, only=None,
              jobs: int = 1, told: bool = True) -> int:
    """The leave-one-source-out protocol (the module's docstring); 0, or 2 on a bad candidate."""
    from em.diarization.config import ConfigError
    recordings = _recordings(folder, only)
    if not recordings:
        return 0
    grid = {name: {**overrides, **keys} for name, keys in candidates.items()}
    with tempfile.TemporaryDirectory() as tmp:         # every candidate read once, up front
        for name, keys in grid.items():
            try:
                configure(folder / recordings[0]["cfg"], keys, Path(tmp))
            except ConfigError as exc:
                print(f"error: candidate {name!r}: {str(exc).split(': ', 1)[-1]}",
                      file=sys.stderr)
                return 2
    code, cache_path = _code_version(), folder / "loso_cache.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    ubms = {r["name"]: fold_ubm(folder, set(r["source"])) for r in recordings}
    files = {r["name"]: _files_hash(folder, r) + hashlib.sha1(ubms[r["name"]].read_bytes()
                                                                 ).hexdigest()[:12]
             for r in recordings}

    def key(cand, rec, seed, told):
        return json.dumps([code, files[rec["name"]], sorted(grid[cand].items()), rec["name"],
                           seed, told])

    def execute(todo):
        """Runs the (candidate, recording, seed, told) not in the cache, saving each."""
        todo = [t for t in todo if key(*t) not in cache]
        audio = sum(t[1]["duration_s"] for t in todo)
        print(f"loso: {len(todo)} runs to do ({audio / 60:.1f} min of audio), "
              f"{jobs} job(s)", flush=True)
        args = [(str(folder / r["cfg"]), {**grid[c], "ubm_file": str(ubms[r["name"]]),
                                          **({"speakers": r["n_speakers"]} if told else {})},
                 seed)
                for c, r, seed, told in todo]
        t0, done = time.perf_counter(), 0.0
        with ProcessPoolExecutor(jobs) if jobs > 1 else contextlib.nullcontext() as pool:
            results = pool.map(_loso_run, args) if pool else map(_loso_run, args)
            for i, (t, r) in enumerate(zip(todo, results)):
                cache[key(*t)] = r
                _save_cache(cache_path, cache)
                done += t[1]["duration_s"]
                spent = time.perf_counter() - t0
                print(f"[{i + 1}/{len(todo)}] {t[0]} {t[1]['name']} seed {t[2]} "
                      f"{'told' if t[3] else 'estimated'}: DER {100 * r['der']:.1f}%, "
                      f"{r['speakers']} speakers, {r['seconds'] / r['speed']:.1f} s; "
                      f"elapsed {spent:.0f} s, left ~{spent * (audio - done) / done:.0f} s",
                      flush=True)

    def ders(cand, rec, given=told):
        return [cache[key(cand, rec, seed, given)]["der"] for seed in range(seeds)]

    def choose(held_out: set) -> str:
        """The candidate with the lowest DER over the recordings outside held_out's sources;
        the first candidate when there are none."""
        train = [r for r in recordings if not held_out & set(r["source"])]
        if not train:
            return next(iter(grid))
        w = [r["duration_s"] for r in train]
        return min(grid, key=lambda c: np.average([np.median(ders(c, r)) for r in train],
                                                   weights=w))

    execute([(c, r, seed, told) for c in grid for r in recordings for seed in range(seeds)])
    chosen = {r["name"]: choose(set(r["source"])) for r in recordings}
    execute([(chosen[r["name"]], r, seed, not told) for r in recordings
             for seed in range(seeds)])
    _loso_table(recordings, chosen, choose, ders, seeds, key, cache, told)
    return 0


def _loso_table(recordings, chosen, choose, ders, seeds, key, cache, told):
    """The LOSO table: a row per recording, per source, the total; then the targets line
    (TARGETS with the count given, COUNT_TARGETS with it estimated)."""
    print(f"LOSO: DER ±0.25 s collar, overlap not scored, the count {GIVEN[told]}, median over "
          "seeds; cand: the candidate chosen without the recording's sources; worst-med: "
          "points; found: speakers found per seed with the count estimated; "
          f"{GIVEN[not told]}: median DER with the count {GIVEN[not told]}; x RT: median")
    print(f"{'recording':22s} {'fold':28s} {'cand':14s} {'dur s':>6s} {'spk':>3s} "
          f"{'cond':16s} {'DER':>6s} {'worst':>6s} {'w-med':>6s} {'found':>8s} "
          f"{GIVEN[not told][:9]:>9s} {'x RT':>5s}")
    rows, misses, counts = [], [], []
    for rec in recordings:
        name, c = rec["name"], chosen[rec["name"]]
        d = ders(c, rec)
        med, worst = float(np.median(d)), max(d)
        runs = {given: [cache[key(c, rec, seed, given)] for seed in range(seeds)]
                for given in (True, False)}
        found = [e["speakers"] for e in runs[False]]
        counts += [n - rec["n_speakers"] for n in found]
        speed = np.median([e["speed"] for e in runs[told]])
        limit = _target(rec, told)
        miss = [text for bad, text in ((med > limit, f"DER {100 * med:.1f}% > {100 * limit:g}%"),
                                       (worst - med > TARGETS["spread"],
                                        f"worst seed +{100 * (worst - med):.1f}"),
                                       (not told and max(abs(n - rec["n_speakers"])
                                                         for n in found) > 1,
                                        "count off by more than one")) if bad]
        misses += [f"{name}: {', '.join(miss)}"] if miss else []
        rows.append((rec, med))
        print(f"{name:22s} {'+'.join(rec['source']):28s} {c:14s} {rec['duration_s']:6.1f} "
              f"{rec['n_speakers']:3d} {_condition(rec['condition']):16s} {100 * med:5.1f}% "
              f"{100 * worst:5.1f}% {100 * (worst - med):+6.1f} "
              f"{','.join(map(str, found)):>8s} "
              f"{100 * np.median([e['der'] for e in runs[not told]]):8.1f}% {speed:5.0f}"
              + ("  <-- MISS" if miss else ""), flush=True)
    for source in sorted({s for r in recordings for s in r["source"]}):
        c = choose({source})
        mine = [r for r in recordings if source in r["source"]]
        w = [r["duration_s"] for r in mine]
        der_ = np.average([np.median(ders(c, r)) for r in mine], weights=w)
        right = np.mean([cache[key(chosen[r["name"]], r, seed, False)]["speakers"] ==
                         r["n_speakers"] for r in mine for seed in range(seeds)])
        print(f"{'source ' + source:22s} {'held out':28s} {c:14s} {sum(w):6.1f} "
              f"{'':3s} {f'{len(mine)} recordings':16s} {100 * der_:5.1f}%  "
              f"count estimated right in {right:.0%} of the runs")
    dur = np.array([r["duration_s"] for r, _ in rows])
    total = np.average([m for _, m in rows], weights=dur)
    counts = np.array(counts)
    print(f"{'TOTAL':22s} {'':28s} {'':14s} {dur.sum():6.1f} {'':3s} "
          f"{f'{len(rows)} recordings':16s} {100 * total:5.1f}%  (duration-weighted); "
          f"count estimated: right in {np.mean(counts == 0):.0%} of the runs, within one in "
          f"{np.mean(abs(counts) <= 1):.0%}")
    if told:
        rule = (f"DER <= {100 * TARGETS['clean2']:g}% clean two-speaker, <= "
                f"{100 * TARGETS['other2']:g}% other two-speaker and the sample's, <= "
                f"{100 * TARGETS['any']:g}% every recording")
    else:
        rule = (f"the count right in >= {COUNT_TARGETS['right']:.0%} of the runs and never off "
                f"by more than one; DER <= {100 * COUNT_TARGETS['clean2']:g}% clean "
                f"two-speaker, <= {100 * COUNT_TARGETS['other2']:g}% other two-speaker")
        if np.mean(counts == 0) < COUNT_TARGETS["right"]:
            misses.insert(0, f"the count right in {np.mean(counts == 0):.0%} of the runs")
    print(f"targets ({rule}; worst seed within {100 * TARGETS['spread']:g} points of the "
          "median): " + (f"MISSED on {len(misses)}: " + "; ".join(misses)
                         if misses else f"all met on {len(rows)} recordings"), flush=True)


CASES = {"sample": sample_case, "voices": voices_case, "tidigits": tidigits_case,
         "tiled": tiled_case}


def run_one(X, speech, ref, seconds, settings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EMWarning)
        t0 = time.perf_counter()
        result = diarize(np.ascontiguousarray(X[speech]), settings)
        elapsed = time.perf_counter() - t0
    labels = np.full(len(X), -1)
    labels[speech] = result.labels
    hyp = segments_from_labels(labels, 0.01, "hyp")
    truth = len({t.speaker for t in ref})
    return {"speakers": len(result.gmms), "truth": truth, "elapsed": elapsed,
            "xrt": seconds / elapsed, "der": der(ref, hyp, 0.5, True, seconds),
            "der0": der(ref, hyp, 0.0, False, seconds)}


def _int_or_auto(text: str):
    """An argparse type: an integer, or 'auto' (sized to the speech)."""
    return text if text == "auto" else int(text)


def main(argv=None):
    global UBM_ARGS                     # --ubm-gaussians
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=None,
                   help=f"comma-separated, of {','.join(CASES)},devset (default: all; devset "
                   "when its folder has a manifest.json)")
    p.add_argument("--seeds", type=int, default=3,
                   help="orders/seeds per case (tiled: 1; devset: clustering seeds 0..N-1)")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the tiled case")
    p.add_argument("--initial-clusters", type=_int_or_auto, default=Settings.initial_clusters)
    p.add_argument("--M", type=_int_or_auto, default=Settings.M)
    p.add_argument("--seg-length", type=int, default=Settings.seg_length)
    p.add_argument("--em-iterations", type=int, default=Settings.em_iterations)
    p.add_argument("--KL-ntop", type=int, default=Settings.KL_ntop)
    p.add_argument("--devset", type=Path, default=DEVSET, metavar="DIR",
                   help="the development set's folder (default benchmarks/devset)")
    p.add_argument("--only", metavar="SUBSTRING",
                   help="devset: only the recordings whose name contains SUBSTRING")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="devset: replace a configuration key of every recording (repeatable)")
    p.add_argument("--told", action="store_true",
                   help="devset: give each recording its true speaker count (speakers = N)")
    p.add_argument("--protocol", choices=("loso",),
                   help="loso: leave-one-source-out choice among the candidate settings on the "
                   "development set (the other cases are not run)")
    p.add_argument("--grid", metavar="NAMES",
                   help=f"loso: comma-separated candidates of {', '.join(CANDIDATES)} "
                   "(default: GRIDS[--count])")
    p.add_argument("--candidate", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                   help="loso: one more candidate (repeatable)")
    p.add_argument("--jobs", type=int, default=1, help="loso: runs in parallel (default 1)")
    p.add_argument("--count", choices=("given", "estimated"), default="given",
                   help="loso: choose the candidates by their DER with the true count given "
                   "(default) or with it estimated (then the table checks COUNT_TARGETS)")
    p.add_argument("--build-ubm", type=Path, metavar="PATH",
                   help="train the diarizer's UBM on every recording of the development set "
                   "(UBM_ARGS), write it to PATH and stop; the shipped one: "
                   "--build-ubm em/diarization/ubm.h5")
    p.add_argument("--ubm-gaussians", type=int, default=int(UBM_ARGS[1]), metavar="M",
                   help="loso and --build-ubm: Gaussians of the UBMs trained (default "
                   f"{UBM_ARGS[1]}, the shipped UBM's)")
    p.add_argument("--profile", action="store_true", help="cProfile the runs, print the top 25")
    p.add_argument("--cli", action="store_true",
                   help="also time examples/cluster.py end to end on the tiled recording")
    a = p.parse_args(argv)
    if a.cases:
        cases = a.cases.split(",")
    else:
        cases = list(CASES) + (["devset"] if (a.devset / "manifest.json").is_file() else [])
    unknown = [c for c in cases if c not in CASES and c != "devset"]
    if unknown:
        p.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}, devset")
    try:
        overrides = parse_overrides(a.overrides)
        extra = dict(parse_candidate(c) for c in a.candidate)
    except ValueError as exc:
        p.error(str(exc))
    UBM_ARGS = ("-M", str(a.ubm_gaussians), *UBM_ARGS[2:])
    if a.build_ubm:
        every = _recordings(a.devset, None)
        if not every:
            return 2
        build_ubm([a.devset / r["wav"] for r in every], a.build_ubm)
        return 0
    if a.protocol == "loso":
        names = [n for n in (a.grid or ",".join(GRIDS[a.count])).split(",") if n]
        unknown = [n for n in names if n not in CANDIDATES]
        if unknown:
            p.error(f"--grid: unknown candidate(s) {', '.join(unknown)}; choose from "
                    f"{', '.join(CANDIDATES)} or add one with --candidate")
        grid = {**{n: CANDIDATES[n] for n in names}, **extra}
        return loso_case(a.devset, a.seeds, overrides, grid, a.only, max(1, a.jobs),
                         a.count == "given")
    s = Settings(initial_clusters=a.initial_clusters, M=a.M, seg_length=a.seg_length,
                 em_iterations=a.em_iterations, KL_ntop=a.KL_ntop)
    prof = cProfile.Profile() if a.profile else None
    header = False
    for name in cases:
        if name == "devset":
            devset_case(a.devset, a.seeds, overrides, a.only, prof, a.told)
            continue
        if not header:
            print(f"settings: {s}")
            print(f"{'case':10s} {'seed':>4s} {'audio s':>8s} {'spk/truth':>9s} "
                  f"{'DER±.25':>8s} {'DER0 ov':>12s} {'time s':>7s} {'x RT':>6s}")
            header = True
        ders = []
        for seed in range(1 if name == "tiled" else a.seeds):
            kw = {"minutes": a.minutes} if name == "tiled" else {}
            X, speech, ref, seconds = CASES[name](seed, **kw)
            s.seed = seed
            if prof:
                prof.enable()
            r = run_one(X, speech, ref, seconds, s)
            if prof:
                prof.disable()
            ders.append(r["der"])
            print(f"{name:10s} {seed:4d} {seconds:8.1f} {r['speakers']:4d}/{r['truth']:<4d} "
                  f"{100 * r['der']:7.1f}% {100 * r['der0']:11.1f}% {r['elapsed']:7.2f} "
                  f"{r['xrt']:6.0f}", flush=True)
        if len(ders) > 1:
            print(f"{name:10s} mean DER {100 * np.mean(ders):.1f}%  worst {100 * max(ders):.1f}%")
    if a.cli:
        cli_speed(s, a.minutes)
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    sys.exit(main())
