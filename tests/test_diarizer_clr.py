"""The diarizer's merge choice by cross-likelihood ratios of UBM-adapted cluster models."""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

from em import GMM, EMWarning
from em.diarization.clr import UBM_FILE, clr_matrix, load_ubm
from em.diarization.features import N_MFCC, read_wav, speaker_frames
from em.io.ubm import read_ubm

ROOT = Path(__file__).resolve().parents[1]


def _voices(rng, n_voices, frames, D=6):
    """Frames of ``n_voices`` synthetic voices: each a 3-Gaussian mixture around its own
    centre."""
    out = []
    for _ in range(n_voices):
        centre = rng.normal(0, 1.0, D)
        parts = [centre + rng.normal(0, 0.6, D) + rng.normal(0, 0.5, (frames // 3, D))
                 for _ in range(3)]
        out.append(np.vstack(parts))
    return out


def test_clr_scores_two_halves_of_one_voice_above_two_voices():
    rng = np.random.default_rng(0)
    background = np.vstack(_voices(rng, 20, 600))
    ubm = GMM(16, background.shape[1], "diag", seed=0, reg_covar=1e-3)
    ubm.train(background, 20, loglik=False)
    a, b = _voices(rng, 2, 900)
    X = np.vstack([a[::2], a[1::2], b])
    labels = np.repeat([0, 1, 2], [len(a[::2]), len(a[1::2]), len(b)])
    score = clr_matrix(X, labels, 3, ubm, relevance=10.0)
    assert np.allclose(score, score.T)
    assert score[0, 1] > max(score[0, 2], score[1, 2]) + 0.5


def test_the_shipped_ubm_is_the_diarizers_and_says_where_it_comes_from():
    ubm = load_ubm()
    assert (ubm.D, ubm.cvtype) == (N_MFCC, "diag")
    assert np.isclose(ubm.components.weights.sum(), 1.0)
    assert np.all(ubm.components.vars > 0)
    _, attrs = read_ubm(UBM_FILE)
    assert attrs["frames"] > 100_000 and len(attrs["files"]) >= 20


def test_read_ubm_names_a_file_that_is_not_one(tmp_path):
    bad = tmp_path / "ubm.h5"
    bad.write_text("not hdf5")
    with pytest.raises(ValueError, match="ubm.h5: not a UBM file"):
        read_ubm(bad)


def test_train_ubm_on_wav_learns_the_frames_the_diarizer_clusters(tmp_path):
    spec = importlib.util.spec_from_file_location("train_ubm", ROOT / "examples" / "train_ubm.py")
    train_ubm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_ubm)
    out = tmp_path / "ubm.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EMWarning)
        assert train_ubm.main([str(ROOT / "examples" / "data" / "sample.wav"), "-M", "4",
                               "--iters", "3", "-o", str(out)]) == 0
    arrays, attrs = read_ubm(out)
    Z = speaker_frames(read_wav(ROOT / "examples" / "data" / "sample.wav"))
    assert attrs["frames"] == len(Z) and arrays["means"].shape == (4, N_MFCC)
    assert np.allclose(Z.mean(axis=0), 0, atol=1e-4) and np.allclose(Z.std(axis=0), 1, atol=1e-3)
    assert np.allclose(arrays["weights"] @ arrays["means"], 0, atol=1e-3)


def test_diarize_names_a_ubm_of_other_features():
    from em.diarization.cluster import Settings, diarize
    X = np.random.default_rng(0).normal(size=(2000, 13)).astype(np.float32)
    with pytest.raises(ValueError, match="a UBM of 19 coefficients per frame, the frames have 13"):
        diarize(X, Settings(speakers=2))
    assert len(diarize(X, Settings(speakers=2, merge_score="bic")).gmms) == 2


def test_the_clr_threshold_decides_when_the_merging_stops():
    """With count_rule = threshold the CLR of the best pair is the stop: a threshold above every
    CLR merges nothing but clusters too small for a speaker, one below every CLR merges to a
    single cluster; the steps say the CLR they were decided on."""
    from em.diarization.cluster import Settings, diarize
    from test_diarization import speakers
    X, _ = speakers()
    runs = {}
    for t in (-20.0, 20.0):
        steps = []
        r = diarize(X, Settings(initial_clusters=8, M=5, clr_threshold=t, min_speaker_frames=0,
                                count_rule="threshold"), progress=steps.append)
        runs[t] = len(r.gmms)
        assert all(st.clr is not None for st in steps)
        assert all((st.merged is not None) == (st.clr > t) for st in steps)
    assert runs[-20.0] == 1 and runs[20.0] == 8


def _kept_by_the_largest_fall(steps, threshold):
    """The count the gap rule should keep, recomputed from the steps: the clusters before the
    merge whose CLR fell most below the previous merge's (merges above threshold excluded)."""
    falls = [(steps[i - 1].clr - st.clr, st.clusters) for i, st in enumerate(steps)
             if i and st.clr <= threshold]
    return max(falls)[1]


def test_the_gap_rule_keeps_the_clusters_before_the_largest_fall_of_the_clr():
    from em.diarization.cluster import Settings, diarize
    from test_diarization import purity, speakers
    X, truth = speakers()                           # three voices
    for threshold in (Settings().clr_threshold, 20.0):  # 20: no merge exempt from the stop
        steps = []
        s = Settings(initial_clusters=8, M=5, clr_threshold=threshold)
        r = diarize(X, s, progress=steps.append)
        assert [st.clusters for st in steps][-1] == 2 and steps[-1].merged  # merged down to 1
        assert len(r.gmms) == 3 == _kept_by_the_largest_fall(steps, threshold)
        assert r.note.startswith("kept 3 clusters: the best pair's CLR fell most there")
        assert purity(r.labels, truth) > 0.85


def test_the_gap_rule_finds_one_speaker_alone_by_the_last_merges_bic():
    from em.diarization.cluster import Settings, diarize
    from test_diarization import speakers
    X, _ = speakers(n_spk=1, turns=6)
    steps = []
    r = diarize(X, Settings(initial_clusters=6, M=5), progress=steps.append)
    assert len(r.gmms) == 1 and r.note.startswith("one speaker")
    assert steps[-1].per_frame > Settings().merge_threshold


def test_short_recordings_cap_the_smallest_speaker_at_a_share_of_the_speech():
    """Two voices of 770 and 930 frames: below min_speaker_frames (1000) both, so without the
    cap (share 1) every cluster is too small for a speaker and all merge into one; capped at a
    tenth of the speech (the default) they stay two."""
    from em.diarization.cluster import Settings, diarize
    from test_diarization import purity, speakers
    X, truth = speakers(n_spk=2, turns=4)
    X, truth = X[:1700], truth[:1700]
    assert (np.bincount(truth) < Settings().min_speaker_frames).all()
    runs = {share: diarize(X, Settings(initial_clusters=6, M=5, min_speaker_share=share))
            for share in (0.1, 1.0)}
    assert len(runs[1.0].gmms) == 1
    assert len(runs[0.1].gmms) == 2 and purity(runs[0.1].labels, truth) > 0.95
