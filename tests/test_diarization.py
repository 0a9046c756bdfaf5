"""The clustering core of the diarizer (em.diarization) on synthetic speakers."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from em import GMM
from em.diarization import Settings, diarize
from em.diarization.cluster import gaussian_kl, resegment


def speakers(n_spk=3, turns=12, D=19, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=1.5, size=(n_spk, D))
    X, truth = [], []
    for t in range(turns):
        n = int(rng.integers(300, 800))
        X.append(rng.normal(size=(n, D)) + centres[t % n_spk])
        truth += [t % n_spk] * n
    return np.concatenate(X).astype(np.float32), np.array(truth)


def purity(labels, truth):
    return sum(Counter(truth[labels == k]).most_common(1)[0][1]
               for k in np.unique(labels)) / len(truth)


@pytest.mark.parametrize("ntop", [0, 3])
def test_finds_the_number_of_speakers(ntop):
    X, truth = speakers()
    steps = []
    r = diarize(X, Settings(initial_clusters=8, M=5, KL_ntop=ntop, initialization="uniform",
                            merge_score="bic"), progress=steps.append)
    assert len(r.gmms) == 3 == len(np.unique(r.labels))
    assert r.labels.shape == truth.shape
    assert purity(r.labels, truth) > 0.85
    assert steps and steps[-1].merged is None
    assert steps[-1].per_frame <= Settings().merge_threshold < min(s.per_frame for s in steps[:-1])


@pytest.mark.parametrize("count", [2, 4])
def test_a_known_speaker_count_is_reached_whatever_the_gains(count):
    X, truth = speakers()
    r = diarize(X, Settings(initial_clusters=8, M=5, speakers=count, initialization="uniform"))
    assert len(r.gmms) == count == len(np.unique(r.labels))
    if count == 2:                  # two of the three speakers share a cluster, none is split
        assert purity(r.labels, truth) < 0.8
        for k in range(3):
            assert Counter(r.labels[truth == k]).most_common(1)[0][1] > 0.9 * (truth == k).sum()


def test_gaussian_kl_is_a_divergence():
    X, _ = speakers(n_spk=2, turns=2)
    a = GMM(3, X.shape[1], seed=0)
    a.train(X[:500], 3)
    b = GMM(3, X.shape[1], seed=0)
    b.train(X[-500:], 3)
    assert gaussian_kl(a, a) == pytest.approx(0.0, abs=1e-9)
    assert gaussian_kl(a, b) > 1.0
    assert gaussian_kl(a, b) == pytest.approx(gaussian_kl(b, a))


def test_resegment_takes_window_majorities():
    X, truth = speakers(n_spk=2, turns=2)
    gmms = []
    for k in range(2):
        g = GMM(4, X.shape[1], seed=k)
        g.train(X[truth == k], 5)
        gmms.append(g)
    labels = resegment(X, gmms, Settings(resegmentation="vote", seg_length=100))
    for start in range(0, len(X), 100):
        assert len(set(labels[start:start + 100])) == 1
    assert purity(labels, truth) > 0.9


def test_change_detection_starts_from_speaker_pure_clusters():
    """Uniform parts of a dialogue hold several turns; the segments found by change detection
    and grouped by BIC hold one speaker each."""
    from em.diarization.segmentation import change_points, initial_labels
    X, truth = speakers()
    turns = np.flatnonzero(np.diff(truth)) + 1
    found = change_points(X)
    assert all(np.abs(found - t).min() <= 10 for t in turns)          # every change, +-0.1 s
    labels = initial_labels(X, 8)
    assert len(np.unique(labels)) == 8 and purity(labels, truth) > 0.99   # boundaries +-0.1 s
    uniform = np.minimum(np.arange(len(X)) * 8 // len(X), 7)
    assert purity(uniform, truth) < 0.9


@pytest.mark.parametrize("count", [2, 3])
def test_a_given_count_from_change_detection(count):
    X, truth = speakers()
    r = diarize(X, Settings(initial_clusters=8, M=5, speakers=count))
    assert len(r.gmms) == count == len(np.unique(r.labels))
    if count == 3:
        assert purity(r.labels, truth) > 0.95


def test_models_come_back_in_the_frames_units():
    """The clustering works on standardised frames; the speakers' GMMs it returns describe
    the frames as given (each speaker's mean near its centre)."""
    X, truth = speakers()
    r = diarize(X * 10 + 100, Settings(initial_clusters=8, M=5, speakers=3))
    for k in range(3):
        own = (X * 10 + 100)[r.labels == k]
        c = r.gmms[k].components
        assert np.allclose(c.weights @ c.means, own.mean(axis=0), atol=0.5)
        assert r.gmms[k].score(own).mean() > r.gmms[(k + 1) % 3].score(own).mean()
