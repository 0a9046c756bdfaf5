"""From a configuration to an RTTM, a GMM file and (with a reference) DER."""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np

from em import EMWarning
from em.diarization.cluster import Settings, diarize
from em.diarization.config import Config
from em.io import read_htk, read_rttm, segments_from_labels, write_rttm
from em.io.files import atomic_write
from em.io.spnsp import read_spnsp

FRAME_S = 0.01


class DiarizerError(ValueError):
    """A problem with the input that stops the diarizer; the message says which."""


def load_features(cfg: Config):
    """(features (N, D) float32, speech mask (N,) bool, frame period s, seconds of audio)."""
    if cfg.mfcc_feats is not None:
        X, header = read_htk(cfg.mfcc_feats)
        period = header.frame_period_s
        speech = read_spnsp(cfg.spnsp_file) if cfg.spnsp_file else np.ones(len(X), bool)
    else:
        from em.diarization.features import mfcc, read_wav, speech_frames
        samples = read_wav(cfg.audio_file)
        X, period = mfcc(samples), FRAME_S
        speech = read_spnsp(cfg.spnsp_file) if cfg.spnsp_file else speech_frames(samples)
    if len(speech) != len(X):
        raise DiarizerError(f"{cfg.spnsp_file}: {len(speech)} speech labels for {len(X)} "
                            "feature frames")
    if not speech.any():
        raise DiarizerError("no speech frames to cluster")
    if speech.sum() < cfg.seg_length:
        raise DiarizerError(f"only {int(speech.sum())} speech frames, fewer than one segment "
                            f"(seg_length = {cfg.seg_length})")
    return X, speech, period, len(X) * period


def write_gmms(path, gmms, names) -> None:
    """Text file: a header line, then per speaker 'speaker NAME M D', 'weights ...' and per
    component 'mean ...' and 'var ...' lines (diagonal covariances)."""
    lines = [f"# em diarizer GMMs: {len(gmms)} speakers, diagonal covariance"]
    for g, name in zip(gmms, names):
        c = g.components
        lines.append(f"speaker {name} {g.M} {g.D}")
        lines.append("weights " + " ".join(f"{w:.8g}" for w in c.weights))
        for mu, var in zip(c.means, c.vars):
            lines.append("mean " + " ".join(f"{v:.8g}" for v in mu))
            lines.append("var " + " ".join(f"{v:.8g}" for v in var))
    atomic_write(path, ("\n".join(lines) + "\n").encode())


def der(reference_turns, hypothesis_turns, collar: float, skip_overlap: bool,
        seconds: float) -> float:
    """Diarization error rate with pyannote.metrics (NIST conventions), scored over the whole
    recording [0, seconds]."""
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    def annotation(turns):
        a = Annotation()
        for i, t in enumerate(turns):
            a[Segment(t.onset, t.onset + t.duration), i] = t.speaker
        return a
    metric = DiarizationErrorRate(collar=collar, skip_overlap=skip_overlap)
    return float(metric(annotation(reference_turns), annotation(hypothesis_turns),
                        uem=Timeline([Segment(0, seconds)])))


def run(cfg: Config, out=print, plot=None) -> dict:
    """Diarize the recording of ``cfg``; returns the figures it printed."""
    t0 = time.perf_counter()
    X, speech, period, seconds = load_features(cfg)
    Xs = np.ascontiguousarray(X[speech])
    settings = Settings(initial_clusters=cfg.initial_clusters, M=cfg.M_mfcc,
                        em_iterations=cfg.em_iterations, KL_ntop=cfg.KL_ntop,
                        num_seg_iters_init=cfg.num_seg_iters_init,
                        num_seg_iters=cfg.num_seg_iters, seg_length=cfg.seg_length)

    def progress(step):
        verdict = f"merge {step.merged}" if step.merged else "no pair gains: stop"
        out(f"  {step.clusters:3d} clusters, best delta-BIC {step.best_gain:12.2f}  {verdict}")

    reference = read_rttm(cfg.reference_rttm) if cfg.reference_rttm else None
    for path in (cfg.output_cluster, cfg.gmm_output):
        parent = Path(path).parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise DiarizerError(f"{path}: cannot write there (no such writable directory)")
    out(f"{cfg.basename}: {seconds:.1f} s, {len(X)} frames ({int(speech.sum())} speech), "
        f"D={X.shape[1]}, {cfg.initial_clusters} initial clusters of {cfg.M_mfcc} Gaussians")
    with warnings.catch_warnings(record=True) as caught:      # one summary line, not a stream
        warnings.simplefilter("always", EMWarning)
        result = diarize(Xs, settings, progress)
    reseeded = sum(issubclass(w.category, EMWarning) for w in caught)
    for w in caught:
        if not issubclass(w.category, EMWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if reseeded:
        out(f"note: {reseeded} trainings re-seeded a component that lost its mass")
    labels = np.full(len(X), -1)
    labels[speech] = result.labels
    turns = segments_from_labels(labels, period, cfg.basename)
    written = []
    try:                                   # both outputs or neither
        write_rttm(cfg.output_cluster, turns)
        written.append(cfg.output_cluster)
        write_gmms(cfg.gmm_output, result.gmms, [f"spk{k}" for k in range(len(result.gmms))])
    except BaseException:
        for path in written:
            os.unlink(path)
        raise
    elapsed = time.perf_counter() - t0
    figures = {"speakers": len(result.gmms), "seconds": seconds, "elapsed": elapsed,
               "speed": seconds / elapsed}
    out(f"speakers: {len(result.gmms)}; wrote {cfg.output_cluster} and {cfg.gmm_output}")
    out(f"time: {elapsed:.2f} s for {seconds:.1f} s of audio ({figures['speed']:.0f}x real time)")
    if reference is not None:
        for collar in (0.25, 0.0):
            for skip in (False, True):
                value = der(reference, turns, collar, skip, seconds)
                figures[f"der_c{collar}_{'nooverlap' if skip else 'overlap'}"] = value
                out(f"DER {100 * value:5.1f}%  (collar {collar:.2f} s, overlap "
                    f"{'not scored' if skip else 'scored'})")
    if plot:
        from em.diarization.plot import timeline
        timeline(plot, turns, reference, seconds)
        out(f"timeline: {plot}")
    return figures
