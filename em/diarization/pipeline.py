"""From a configuration to an RTTM, a GMM file and (with a reference) DER."""
from __future__ import annotations

import dataclasses
import os
import time
import warnings
from pathlib import Path

import numpy as np

from em import EMWarning
from em.diarization.cluster import auto_size, diarize
from em.diarization.config import Config
from em.io import read_htk, read_rttm, segments_from_labels
from em.io.files import write_files
from em.io.gmm_text import speakers_text
from em.io.rttm import rttm_text
from em.io.spnsp import read_spnsp
from em.validation import check_data

FRAME_S = 0.01


class DiarizerError(ValueError):
    """A problem with the input that stops the diarizer; the message says which."""


def check_paths(cfg: Config, plot=None) -> None:
    """Before anything is read or written: every configured input is a readable regular file,
    and every output (``plot`` too) lies in a writable directory, is not something other than a
    regular file, and is neither an input nor another output, also not through a link."""
    inputs = {"configuration file": cfg.source, "mfcc_feats": cfg.mfcc_feats,
              "audio_file": cfg.audio_file, "spnsp_file": cfg.spnsp_file,
              "reference_rttm": cfg.reference_rttm, "ubm_file": cfg.ubm_file}
    seen = {key: Path(path) for key, path in inputs.items() if path is not None}
    for key, path in seen.items():
        if not path.is_file():
            raise DiarizerError(f"{key} {path}: " + ("not a regular file" if path.exists()
                                                      else "no such file"))
        if not os.access(path, os.R_OK):
            raise DiarizerError(f"{key} {path}: not readable (permission denied)")
    outputs = {"output_cluster": cfg.output_cluster, "gmm_output": cfg.gmm_output,
               "--plot": plot}
    for key, path in outputs.items():
        if path is None:
            continue
        path = Path(path)
        parent = path.parent
        if not parent.is_dir():
            raise DiarizerError(f"{key} {path}: {parent} " + ("is not a directory"
                                if parent.exists() else "does not exist"))
        if not os.access(parent, os.W_OK | os.X_OK):
            raise DiarizerError(f"{key} {path}: directory {parent} is not writable")
        if os.path.lexists(path) and not path.is_file():
            raise DiarizerError(f"{key} {path}: exists and is not a regular file")
        for other, known in seen.items():
            if _same_file(path, known):
                raise DiarizerError(f"{key} {path} is the same file as {other} {known}: "
                                    "refusing to overwrite it")
        seen[key] = path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)               # hard and symbolic links too
    except OSError:                                 # a is not there yet
        return os.path.realpath(a) == os.path.realpath(b)


def load_features(cfg: Config):
    """(features (N, D) float32, speech mask (N,) bool, frames to cluster (N,) bool, frame
    period s, seconds of audio).  The speech frames of digital silence (short gaps inside
    speech) are not clustered: their features are the dither's."""
    source, s = cfg.mfcc_feats or cfg.audio_file, cfg.settings
    if cfg.mfcc_feats is not None:
        X, header = read_htk(cfg.mfcc_feats)
        period = header.frame_period_s
        speech = read_spnsp(cfg.spnsp_file) if cfg.spnsp_file else np.ones(len(X), bool)
    else:
        from em.diarization.features import AudioError, front_end, read_wav
        samples = read_wav(cfg.audio_file)
        try:
            X, detected, silent = front_end(
                samples, floor_db=s.spectral_floor_db,
                detector=None if cfg.spnsp_file else s.speech_detector)
        except AudioError as exc:
            raise AudioError(f"{cfg.audio_file}: {exc}") from None
        period = FRAME_S
        speech = read_spnsp(cfg.spnsp_file) if cfg.spnsp_file else detected
    if len(speech) != len(X):
        raise DiarizerError(f"{cfg.spnsp_file}: {len(speech)} speech labels for {len(X)} "
                            f"feature frames in {source}")
    X = check_data(X, name=str(source))
    clustered = speech & ~silent if cfg.mfcc_feats is None else speech
    where, n = cfg.spnsp_file or source, int(clustered.sum())
    if n == 0:
        raise DiarizerError(f"{where}: no speech frames to cluster")
    if s.resegmentation == "vote" and n < s.seg_length:
        raise DiarizerError(f"{where}: only {n} speech frames, fewer than one segment "
                            f"(seg_length = {s.seg_length})")
    if s.resegmentation == "viterbi" and n < s.min_duration:
        raise DiarizerError(f"{where}: only {n} speech frames, fewer than one segment "
                            f"(min_duration = {s.min_duration})")
    sized = "auto" not in (s.initial_clusters, s.M)
    if sized and n < s.initial_clusters * s.M:
        raise DiarizerError(f"{where}: only {n} speech frames, fewer than the "
                            f"initial_clusters x M_mfcc = {s.initial_clusters} x {s.M} "
                            "Gaussians to train")
    return X, speech, clustered, period, len(X) * period


def _ubm(cfg: Config, D: int):
    """The UBM merge_score = clr scores with (ubm_file's, or the one shipped), for D
    coefficients per frame."""
    from em.diarization.clr import UBM_FILE, check_features, load_ubm
    path = Path(cfg.ubm_file or UBM_FILE)
    try:
        ubm = load_ubm(path, cfg.settings.backend)
    except ValueError as exc:                       # the message names the file
        raise DiarizerError(f"ubm_file {exc}") from None
    try:
        check_features(ubm, D)
    except ValueError as exc:
        raise DiarizerError(f"ubm_file {path}: {exc}") from None
    return ubm


def read_reference(cfg: Config) -> list:
    """The reference RTTM's turns of this recording (``basename``); at least one."""
    turns = read_rttm(cfg.reference_rttm)
    ours = [t for t in turns if t.file == cfg.basename]
    if not ours:
        found = sorted({t.file for t in turns})
        raise DiarizerError(f"{cfg.reference_rttm}: no SPEAKER turns for recording "
                            f"'{cfg.basename}' (basename)"
                            + (f"; it has turns for {', '.join(found[:5])}" if found else ""))
    return ours


def der(reference_turns, hypothesis_turns, collar: float, skip_overlap: bool,
        seconds: float) -> float:
    """Diarization error rate with pyannote.metrics (NIST conventions), scored over the whole
    recording [0, seconds].  ``collar`` is pyannote's: the TOTAL width around each reference
    boundary (0.5 = ±0.25 s, md-eval's ``-c 0.25``)."""
    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate
    metric = DiarizationErrorRate(collar=collar, skip_overlap=skip_overlap)
    return float(metric(_annotation(reference_turns), _annotation(hypothesis_turns),
                        uem=Timeline([Segment(0, seconds)])))


def confusion(reference_turns, hypothesis_turns, mapping: dict) -> list[str]:
    """Per reference speaker: its speech, the hypothesis speaker ``mapping`` maps to it
    (:func:`speaker_mapping`) and where the rest of its time went."""
    ref, hyp = _annotation(reference_turns), _annotation(hypothesis_turns)
    lines = []
    for spk in sorted(ref.labels()):
        own = ref.label_timeline(spk)
        total = own.duration()
        parts = {}
        for h in hyp.labels():
            inter = own.crop(hyp.label_timeline(h), mode="intersection").duration()
            if inter > 0:
                parts[h] = inter
        mapped = [h for h, r in mapping.items() if r == spk]
        got = sum(parts.get(h, 0.0) for h in mapped)
        others = ", ".join(f"{h} {v:.1f} s" for h, v in sorted(parts.items(), key=lambda x: -x[1])
                           if h not in mapped)
        lines.append(f"  {spk}: {total:.1f} s, {100 * got / max(total, 1e-9):.0f}% as "
                     f"{'/'.join(mapped) or 'nobody'}" + (f"; also {others}" if others else ""))
    return lines


def speaker_mapping(reference_turns, hypothesis_turns) -> dict:
    """{hypothesis speaker: reference speaker}: the one-to-one mapping of largest overlap,
    as DER uses it."""
    from pyannote.metrics.diarization import DiarizationErrorRate
    return dict(DiarizationErrorRate().optimal_mapping(_annotation(reference_turns),
                                                       _annotation(hypothesis_turns)))


def _annotation(turns):
    from pyannote.core import Annotation, Segment
    a = Annotation()
    for i, t in enumerate(turns):
        a[Segment(t.onset, t.onset + t.duration), i] = t.speaker
    return a


def _spread(labels, clustered, speech):
    """Labels of every ``speech`` frame: the ``clustered`` frames' own, the others their
    nearest clustered frame's."""
    at, want = np.flatnonzero(clustered), np.flatnonzero(speech)
    after = np.minimum(np.searchsorted(at, want), len(at) - 1)
    before = np.maximum(after - 1, 0)
    nearest = np.where(np.abs(at[before] - want) < np.abs(at[after] - want), before, after)
    return labels[nearest]


def _count_text(s, clusters: int) -> str:
    """given, estimated, or estimated within LOW..HIGH (the speaker count bounds)."""
    if s.count != "bounded":
        return s.count
    return "estimated within {}..{}".format(*s.speaker_range(clusters))


def run(cfg: Config, out=print, plot=None, seed: int = 0) -> dict:
    """Diarize the recording of ``cfg``; returns the figures it printed.  Every input is
    checked and every output computed before the outputs are written, all or none.  ``seed``
    drives every random choice of the clustering."""
    t0 = time.perf_counter()
    check_paths(cfg, plot)
    reference = read_reference(cfg) if cfg.reference_rttm else None
    X, speech, clustered, period, seconds = load_features(cfg)
    Xs = np.ascontiguousarray(X[clustered])
    settings = dataclasses.replace(cfg.settings, seed=seed)
    K, M = auto_size(len(Xs), settings, period)
    if settings.initial_clusters == "auto":
        try:
            settings.check_counts(K)
        except ValueError as exc:
            raise DiarizerError(f"{cfg.source}: {exc} (initial_clusters = auto: sized to "
                                "the speech)") from None

    def progress(step):
        verdict = f"merge {step.merged}" if step.merged else "stop"
        clr = f", CLR {step.clr:+.2f}" if step.clr is not None else ""
        out(f"  {step.clusters:3d} clusters, best delta-BIC {step.best_gain:12.2f} "
            f"({step.per_frame:+.3f} per frame{clr})  {verdict}")

    out(f"{cfg.basename}: {seconds:.1f} s, {len(X)} frames ({int(speech.sum())} speech, "
        f"{len(Xs)} clustered), D={X.shape[1]}, {K} initial clusters of {M} Gaussians"
        + (" (sized to the speech)" if "auto" in (settings.initial_clusters, settings.M) else ""))
    ubm = _ubm(cfg, X.shape[1]) if settings.merge_score == "clr" else None
    with warnings.catch_warnings(record=True) as caught:      # one summary line, not a stream
        warnings.simplefilter("always", EMWarning)
        try:
            result = diarize(Xs, settings, progress, ubm)
        except ValueError as exc:                  # a GMM cannot be trained on these frames
            raise DiarizerError(f"{cfg.mfcc_feats or cfg.audio_file}: cannot cluster its "
                                f"speech frames ({exc})") from None
    if result.note:
        out(f"  {result.note}")
    reseeded = sum(issubclass(w.category, EMWarning) for w in caught)
    for w in caught:
        if not issubclass(w.category, EMWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if reseeded:
        out(f"note: {reseeded} trainings re-seeded a component that lost its mass")
    labels = np.full(len(X), -1)
    labels[speech] = _spread(result.labels, clustered, speech)
    turns = segments_from_labels(labels, period, cfg.basename)
    names = [f"spk{k}" for k in range(len(result.gmms))]
    outputs = {cfg.output_cluster: rttm_text(turns).encode(),
               cfg.gmm_output: speakers_text(
                   [(name, g.components.weights, g.components.means, g.components.vars)
                    for name, g in zip(names, result.gmms)]).encode()}
    elapsed = time.perf_counter() - t0              # the diarizer's own time line
    ders = {(collar, skip): der(reference, turns, collar, skip, seconds)
            for collar, skip in ((0.5, True), (0.0, False))} if reference else {}
    mapping = speaker_mapping(reference, turns) if reference else None
    if plot:
        from em.diarization.plot import timeline
        outputs[plot] = timeline(turns, reference, seconds, mapping, ders.get((0.5, True)))
    write_files(outputs)
    figures = {"speakers": len(result.gmms), "count": settings.count, "seconds": seconds,
               "elapsed": elapsed, "speed": seconds / elapsed}
    out(f"speakers: {len(result.gmms)} ({_count_text(settings, K)}); wrote {cfg.output_cluster} "
        f"and {cfg.gmm_output}")
    out(f"time: {elapsed:.2f} s for {seconds:.1f} s of audio ({figures['speed']:.0f}x real time; "
        "reading to RTTM, scoring and plot excluded)")
    for (collar, skip), value in ders.items():
        figures[f"der_c{collar}_{'nooverlap' if skip else 'overlap'}"] = value
        out(f"DER {100 * value:5.1f}%  (" + (f"collar ±{collar / 2:.2f} s, i.e. pyannote "
            f"collar={collar:g} / md-eval -c {collar / 2:g}" if collar else "no collar")
            + f"; overlap {'not scored' if skip else 'scored'})")
    if reference:
        true = len({t.speaker for t in reference})
        figures["true_speakers"] = true
        out(f"speakers found {len(result.gmms)}, true {true} "
            f"(count error {len(result.gmms) - true:+d})")
        for line in confusion(reference, turns, mapping):
            out(line)
    if plot:
        out(f"timeline: {plot}")
    return figures
