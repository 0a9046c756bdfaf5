"""Agglomerative speaker clustering with GMMs and BIC merging (the ICSI recipe).

0. Standardise the frames (each feature to mean 0, variance 1 over the recording): every
   model's variances then stay above ``variance_floor`` of the recording's (``reg_covar``).
1. Initial clusters: speaker-change detection and BIC clustering of the segments
   (:mod:`em.diarization.segmentation`; ``initialization = 'changes'``), or ``'uniform'``
   contiguous parts (the 2011 recipe), ``initial_clusters`` of them; train one diagonal GMM
   per cluster.  By default (:func:`auto_size`) one cluster per 10 s of speech, at least 12
   and at most 16, and each cluster's Gaussians sized to its frames (:func:`gaussians_for`,
   Anguera's cluster complexity ratio), re-sized after every re-segmentation.
2. Re-segment: a Viterbi pass of an ergodic HMM whose states are the clusters, each a chain of
   ``min_duration`` sub-states sharing its GMM (:mod:`em.diarization.viterbi`), or with
   ``resegmentation='vote'`` the 2011 rule (each window of ``seg_length`` frames goes to the
   cluster whose GMM wins most of its frames); retrain; ``num_seg_iters_init`` times.
3. Agglomerate: the pair to merge is the one of the largest cross-likelihood ratio of the
   clusters' UBM-adapted models (``merge_score = 'clr'``, :mod:`em.diarization.clr`: the same
   clusters give the same pair whatever the seed), or, with ``'bic'`` (the 2011 recipe), of
   the largest BIC gain over the candidate pairs (all, or the ``KL_ntop`` closest by a
   symmetric KL divergence between moment-matched Gaussians); its gain is that of a merged GMM
   with M1 + M2 components trained on both clusters' frames (:func:`em.compute_distance_BIC`).
   While the smallest cluster has fewer than ``min_speaker_frames`` frames (too little speech
   for a speaker; pyannote's ``min_cluster_size``) or, with the count not given, than
   ``min_speaker_share`` of all (pyannote too caps it at a tenth on short recordings, whose
   speakers may all have less) it is merged into its closest whatever the score.  Otherwise,
   with the count not given and ``'clr'``: with ``count_rule = 'gap'`` merge down to
   ``min_speakers`` (or one cluster) and keep the clusters before the largest fall of the best
   pair's CLR from one merge to the next (a scale-free stop: the CLR's level moves with the
   voices and channel, its fall at the first merge of two speakers less so), never before a
   merge whose CLR exceeds ``clr_threshold``, and one cluster when the last merge gains by the
   ``'bic'`` rule (one speaker alone); with ``'threshold'`` merge while the CLR exceeds
   ``clr_threshold``.  With ``'bic'`` merge while
   the gain per frame exceeds ``merge_threshold`` (0 is the classic penalty-free rule).  Merge
   on while there are more clusters than ``max_speakers``, never below ``min_speakers``; with a
   known ``speakers`` count, merge down to it whatever the gains.  Re-segment and retrain
   ``num_seg_iters`` times after each merge; repeat.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from em import GMM, compute_distance_BIC
from em.diarization.clr import check_features, clr_matrix, load_ubm
from em.diarization.features import standardise
from em.diarization.segmentation import initial_labels
from em.diarization.settings import Settings
from em.diarization.viterbi import segment


SECONDS_PER_CLUSTER = 10.0      # auto size: one initial cluster per this much speech,
MIN_CLUSTERS = 12               # ... at least this many, at most 16
FRAMES_PER_GAUSSIAN = 100       # auto size: a cluster's Gaussians from its frames, 1..128
MAX_GAUSSIANS = 128


def auto_size(n_frames: int, s: Settings, frame_s: float = 0.01) -> tuple[int, int]:
    """(initial clusters, Gaussians per cluster): the configured values, or ones scaled to the
    amount of speech (Imseng & Friedland's rule), with a floor of ``MIN_CLUSTERS``: short
    dialogue has short turns, and fewer clusters start mixed (development set: 2 -> 12
    clusters took the known-count DER from 19.6% to 10.7%); short recordings get fewer
    Gaussians per cluster instead.  With a given count (or a most), at most ``extra_clusters``
    more than it: the change-detection start is pure enough, and every merge of large GMMs is
    a chance to join two speakers (development set, issue 22)."""
    K = s.initial_clusters if s.initial_clusters != "auto" else \
        int(np.clip(round(n_frames * frame_s / SECONDS_PER_CLUSTER), MIN_CLUSTERS, 16))
    most = s.speakers if s.speakers != "auto" else s.max_speakers
    if s.initial_clusters == "auto" and most != "auto":
        K = min(K, most + s.extra_clusters)
    M = s.M if s.M != "auto" else gaussians_for(n_frames // K)
    return K, M


def gaussians_for(n_frames: int) -> int:
    """Gaussians of a cluster model sized to its frames (Anguera's cluster complexity ratio)."""
    return int(np.clip(round(n_frames / FRAMES_PER_GAUSSIAN), 1, MAX_GAUSSIANS))


@dataclass
class Step:
    """One agglomeration step, for progress lines."""
    clusters: int
    best_gain: float
    per_frame: float                   # best_gain over the pair's frames
    merged: tuple | None
    clr: float | None = None           # the pair's CLR (merge_score = 'clr')


@dataclass
class Result:
    labels: np.ndarray                 # (N,) cluster index per frame, 0..K-1
    gmms: list
    steps: list = field(default_factory=list)
    note: str = ""                     # how the count was chosen, where a rule chose it


def _train(X, M, s: Settings, rng) -> GMM:
    g = GMM(min(M, len(X)), X.shape[1], "diag", seed=int(rng.integers(2**31)),
            reg_covar=s.variance_floor, backend=s.backend)
    g.train(X, s.em_iterations, loglik=False)
    return g


def resegment(X: np.ndarray, gmms: list, s: Settings) -> np.ndarray:
    """Per-frame labels by the configured re-segmentation (see the module docstring)."""
    scores = np.stack([g.score(X) for g in gmms], axis=1)      # (N, K)
    if s.resegmentation == "viterbi":
        return segment(scores, s.min_duration)
    return vote(scores.argmax(axis=1), len(gmms), s.seg_length)


def vote(best: np.ndarray, K: int, seg_length: int) -> np.ndarray:
    """Each window of seg_length frames goes to the cluster most of its frames prefer."""
    labels = np.empty(len(best), dtype=np.int64)
    for start in range(0, len(best), seg_length):
        sl = slice(start, start + seg_length)
        labels[sl] = np.bincount(best[sl], minlength=K).argmax()
    return labels


def _compact(labels, gmms):
    """Drop clusters that lost all their frames; renumber 0..K-1."""
    used = np.unique(labels)
    remap = np.full(len(gmms), -1)
    remap[used] = np.arange(len(used))
    return remap[labels], [gmms[k] for k in used]


def _retrain(X, labels, gmms, s: Settings, rng):
    out = []
    for k, g in enumerate(gmms):
        Xk = X[labels == k]
        M = gaussians_for(len(Xk)) if s.M == "auto" else g.M
        if M != g.M:                                # resized to its frames: a fresh model
            g = _train(Xk, M, s, rng)
        elif len(Xk) >= g.M:
            g.train(Xk, s.em_iterations, loglik=False)
        out.append(g)
    return out


def gaussian_kl(g1: GMM, g2: GMM) -> float:
    """Symmetric KL divergence between the single Gaussians matching each GMM's moments."""
    def moments(g):
        w, mu, var = g.components.weights, g.components.means, g.components.vars
        m = w @ mu
        v = w @ (var + mu * mu) - m * m
        return m, np.maximum(v, 1e-12)
    m1, v1 = moments(g1)
    m2, v2 = moments(g2)
    d2 = (m1 - m2) ** 2
    return float(0.5 * np.sum(v1 / v2 + v2 / v1 - 2 + d2 * (1 / v1 + 1 / v2)))


def _candidates(X, labels, gmms, s: Settings, ubm, small: int | None):
    """(the pairs to train a merged GMM for, the CLR of the one or None): of the pairs with
    cluster ``small`` when it is given (too little speech for a speaker), else of all, the one
    of the largest CLR (``merge_score = 'clr'``), or all (the ``KL_ntop`` closest by
    :func:`gaussian_kl`)."""
    K = len(gmms)
    pairs = [(min(small, k), max(small, k)) for k in range(K) if k != small] \
        if small is not None else list(itertools.combinations(range(K), 2))
    if s.merge_score == "clr":
        score = clr_matrix(X, labels, K, ubm, s.relevance)
        pair = max(pairs, key=lambda p: score[p])
        return [pair], float(score[pair])
    if s.KL_ntop and s.KL_ntop < len(pairs):
        kl = [gaussian_kl(gmms[a], gmms[b]) for a, b in pairs]
        pairs = [pairs[i] for i in np.argsort(kl, kind="stable")[:s.KL_ntop]]
    return pairs, None


def diarize(X: np.ndarray, s: Settings, progress: Callable[[Step], None] | None = None,
            ubm: GMM | None = None) -> Result:
    """Cluster the frames of X (N x D) into speakers; see the module docstring.  ``ubm``: for
    ``merge_score = 'clr'`` (default: the one shipped, :func:`em.diarization.clr.load_ubm`)."""
    s.check_counts()
    # Standardised frames: the models' variances are then floored relative to the recording's
    # (reg_covar = variance_floor), and the GMMs returned are in the frames' own units.
    Z, centre, scale = standardise(X)
    if s.merge_score == "clr":
        ubm = ubm or load_ubm(backend=s.backend)
        check_features(ubm, X.shape[1])
    # The BLAS calls here are tiny, and BLAS worker threads spin after each one, taking cores
    # from the OpenMP kernels that follow: one BLAS thread (measured 10-25% faster overall).
    with threadpool_limits(1, user_api="blas"):
        result = _diarize(Z, s, progress, ubm)
    result.gmms = [_unscaled(g, centre, scale) for g in result.gmms]
    return result


def _unscaled(g: GMM, centre, scale) -> GMM:
    c = g.components
    return GMM(g.M, g.D, "diag", c.means * scale + centre, c.vars * scale ** 2, c.weights,
               reg_covar=g.reg_covar, backend=g.backend)


def _initial_labels(X, K, s: Settings) -> np.ndarray:
    """Per-frame initial cluster 0..K'-1 (K' <= K): see the module docstring, step 1."""
    if s.initialization == "changes":
        return initial_labels(X, K)
    return np.minimum(np.arange(len(X)) * K // len(X), K - 1)


def _diarize(X, s, progress, ubm):
    rng = np.random.default_rng(s.seed)
    N = len(X)
    K, M = auto_size(N, s)
    K = max(1, min(K, N // max(M, 1)))
    labels = _initial_labels(X, K, s)
    gmms = [_train(Xk, gaussians_for(len(Xk)) if s.M == "auto" else M, s, rng)
            for Xk in (X[labels == k] for k in range(labels.max() + 1))]
    low, _ = s.speaker_range(len(gmms))
    labels, gmms = _refine(X, labels, gmms, s, rng, s.num_seg_iters_init, low)
    steps, stops = [], []               # stops: (the CLR's fall, from, to, labels, gmms)
    low, high = s.speaker_range(len(gmms))
    gap = s.merge_score == "clr" and s.count_rule == "gap" and low < high
    fewest = s.min_speaker_frames if s.count == "given" else \
        min(s.min_speaker_frames, s.min_speaker_share * N)
    while len(gmms) > low:
        parts = [X[labels == k] for k in range(len(gmms))]
        own = [float(g.score(d).sum()) for g, d in zip(gmms, parts)]
        counts = np.bincount(labels, minlength=len(gmms))
        small = int(counts.argmin()) if counts.min() < fewest else None
        best = (-np.inf, None, None)
        pairs, clr = _candidates(X, labels, gmms, s, ubm, small)
        for a, b in pairs:
            merged, gain = compute_distance_BIC(gmms[a], gmms[b], (parts[a], parts[b]),
                                                em_iters=s.merge_iterations or s.em_iterations,
                                                own_loglik=(own[a], own[b]))
            if gain > best[0]:
                best = (gain, (a, b), merged)
        gain, pair, merged = best
        per_frame = gain / (len(parts[pair[0]]) + len(parts[pair[1]]))
        alike = clr > s.clr_threshold if clr is not None else per_frame > s.merge_threshold
        go = alike or len(gmms) > high or small is not None
        if gap and not go:              # a candidate stop (after a merge): merge on
            if steps and not (len(gmms) == 2 and per_frame > s.merge_threshold):
                before = steps[-1].clr
                stops.append((before - clr, before, clr, labels,      # copies: training
                              [_unscaled(g, 0.0, 1.0) for g in gmms]))   # changes the models
            go = True
        step = Step(len(gmms), float(gain), float(per_frame), pair if go else None, clr)
        steps.append(step)
        if progress:
            progress(step)
        if not go:
            break
        a, b = pair
        gmms[a] = merged
        del gmms[b]
        labels = np.where(labels == b, a, labels)
        labels = np.where(labels > b, labels - 1, labels)
        labels, gmms = _refine(X, labels, gmms, s, rng, s.num_seg_iters, low)
    note = ""
    if gap and len(gmms) == 1 and steps[-1].per_frame > s.merge_threshold:
        note = (f"one speaker: the last merge's delta-BIC per frame, {steps[-1].per_frame:+.3f}, "
                "passes merge_threshold")
    elif stops:
        _, before, clr, labels, gmms = max(stops, key=lambda stop: stop[0])
        note = (f"kept {len(gmms)} clusters: the best pair's CLR fell most there, from "
                f"{before:+.2f} to {clr:+.2f}")
    return Result(labels, gmms, steps, note)


def _refine(X, labels, gmms, s: Settings, rng, rounds: int, keep: int):
    """``rounds`` of re-segmentation and retraining; a round that would leave fewer than
    ``keep`` clusters is not taken (a given speaker count stays given)."""
    for _ in range(rounds):
        new, kept = _compact(resegment(X, gmms, s), gmms)
        if len(kept) < keep:
            break
        labels, gmms = new, _retrain(X, new, kept, s, rng)
    return labels, gmms
