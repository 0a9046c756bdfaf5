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

    python benchmarks/bench_diarizer.py                      # every case, default settings
    python benchmarks/bench_diarizer.py --cases voices --seeds 5 --initial-clusters 16
    python benchmarks/bench_diarizer.py --cases tiled --profile
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
import warnings
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
            "xrt": seconds / elapsed, "der": der(ref, hyp, 0.25, False, seconds),
            "der0": der(ref, hyp, 0.0, True, seconds)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default="sample,voices,tidigits,tiled")
    p.add_argument("--seeds", type=int, default=3, help="orders/seeds per case (tiled: 1)")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the tiled case")
    p.add_argument("--initial-clusters", type=int, default=Settings.initial_clusters)
    p.add_argument("--M", type=int, default=Settings.M)
    p.add_argument("--seg-length", type=int, default=Settings.seg_length)
    p.add_argument("--em-iterations", type=int, default=Settings.em_iterations)
    p.add_argument("--KL-ntop", type=int, default=Settings.KL_ntop)
    p.add_argument("--profile", action="store_true", help="cProfile the runs, print the top 25")
    p.add_argument("--cli", action="store_true",
                   help="also time examples/cluster.py end to end on the tiled recording")
    a = p.parse_args(argv)
    s = Settings(initial_clusters=a.initial_clusters, M=a.M, seg_length=a.seg_length,
                 em_iterations=a.em_iterations, KL_ntop=a.KL_ntop)
    print(f"settings: {s}")
    print(f"{'case':10s} {'seed':>4s} {'audio s':>8s} {'spk/truth':>9s} {'DER c.25':>8s} "
          f"{'DER c0 no-ov':>12s} {'time s':>7s} {'x RT':>6s}")
    prof = cProfile.Profile() if a.profile else None
    for name in a.cases.split(","):
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
    main()
