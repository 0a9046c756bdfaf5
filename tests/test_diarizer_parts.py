"""Pieces of the diarizer's recipe: minimum-duration Viterbi, speech-mask smoothing, speech
detectors, automatic cluster sizes, the configuration's new keys."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from em.diarization.cluster import (MAX_GAUSSIANS, MIN_CLUSTERS, Settings, auto_size,
                                    gaussians_for)
from em.diarization.config import ConfigError, read_config
from em.diarization.features import smooth, speech_frames
from em.diarization.viterbi import segment


def _runs(labels):
    change = np.flatnonzero(np.diff(labels)) + 1
    return np.diff(np.r_[0, change, len(labels)])


def _brute_force(scores, L):
    """Best total score over labelings whose runs, except the last, last >= L frames."""
    T, K = scores.shape
    best = -np.inf
    for lab in itertools.product(range(K), repeat=T):
        lab = np.array(lab)
        if (_runs(lab)[:-1] >= L).all():
            best = max(best, scores[np.arange(T), lab].sum())
    return best


@pytest.mark.parametrize("seed", range(40))
def test_viterbi_is_the_best_labelling_with_a_minimum_duration(seed):
    rng = np.random.default_rng(seed)
    T, K, L = int(rng.integers(1, 9)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    scores = rng.normal(size=(T, K))
    got = segment(scores, L)
    assert got.shape == (T,) and got.min() >= 0 and got.max() < K
    assert (_runs(got)[:-1] >= L).all()
    assert scores[np.arange(T), got].sum() == pytest.approx(_brute_force(scores, L))


def test_viterbi_follows_clear_turns_and_ignores_short_blips():
    T, L = 600, 50
    truth = (np.arange(T) // 200) % 2                 # turns of 200 frames
    scores = np.where(np.eye(2)[truth] > 0, 0.0, -1.0)
    scores[290:300] = [[0.0, -2.0]] * 10   # mid-turn blip: +20 for 0, but 50 frames cost 40
    got = segment(scores, L)
    assert (got == truth).all()
    assert (segment(scores, 1)[290:300] == 0).all()   # without the constraint the blip wins


def test_smoothing_fills_short_pauses_and_drops_short_speech():
    mask = np.zeros(100, bool)
    mask[10:40] = True
    mask[42:70] = True          # a 2-frame pause: filled
    mask[80:83] = True          # 3 frames of speech: dropped
    out = smooth(mask, min_speech=5, min_pause=5)
    assert out[10:70].all() and not out[80:83].any() and not out[:10].any()
    assert mask[40:42].sum() == 0                     # the input is not changed


@pytest.mark.parametrize("detector", ["webrtcvad", "energy"])
def test_speech_detectors_find_a_tone_burst_and_not_the_silence(detector):
    sr = 16000
    t = np.arange(3 * sr) / sr
    x = np.zeros_like(t, dtype=np.float32)
    burst = (t > 1.0) & (t < 2.0)
    # a voiced-like harmonic signal (webrtcvad looks for speech-band energy)
    x[burst] = 0.3 * sum(np.sin(2 * np.pi * f * t[burst]) / k for k, f in
                         enumerate((150, 300, 450, 600, 900), 1))
    x += 1e-4 * np.random.default_rng(0).standard_normal(len(x)).astype(np.float32)
    mask = speech_frames(x, sr, detector=detector)
    frames = np.arange(len(mask)) * 0.01 + 0.015
    assert mask[(frames > 1.1) & (frames < 1.9)].mean() > 0.9
    assert mask[(frames < 0.8) | (frames > 2.3)].mean() < 0.05


def test_auto_sizes_grow_with_speech_and_respect_given_values():
    short = auto_size(3000, Settings())
    long = auto_size(60000, Settings())
    assert MIN_CLUSTERS <= short[0] <= long[0] <= 16
    assert 1 <= short[1] < long[1] <= MAX_GAUSSIANS
    assert short[1] == gaussians_for(3000 // short[0])
    assert auto_size(3000, Settings(initial_clusters=7, M=3)) == (7, 3)


def test_a_given_count_caps_the_automatic_clusters():
    n = 60000                                                    # 16 clusters by the rule
    assert auto_size(n, Settings(speakers=2))[0] == 2 + Settings().extra_clusters
    assert auto_size(n, Settings(max_speakers=3, extra_clusters=5))[0] == 8
    assert auto_size(n, Settings(speakers=20))[0] == 16          # never above the rule's
    assert auto_size(n, Settings(speakers=2, initial_clusters=10))[0] == 10   # as given


def test_gaussians_follow_the_frames_of_a_cluster():
    sizes = [gaussians_for(n) for n in (1, 50, 149, 151, 1000, 10 ** 6)]
    assert sizes == [1, 1, 1, 2, 10, MAX_GAUSSIANS]


def _cfg(tmp_path, extra):
    (tmp_path / "f.htk").write_bytes(b"")
    path = tmp_path / "c.cfg"
    path.write_text("[Diarizer]\nbasename = b\nmfcc_feats = f.htk\noutput_cluster = o.rttm\n"
                    "gmm_output = o.gmm\n" + extra)
    return path


def test_config_new_keys(tmp_path):
    cfg = read_config(_cfg(tmp_path, "resegmentation = viterbi\nmin_duration = 80\n"
                                     "speech_detector = energy\ninitial_clusters = auto\n"))
    s = cfg.settings
    assert (s.resegmentation, s.min_duration, s.speech_detector) == ("viterbi", 80, "energy")
    assert s.initial_clusters == "auto" and s.M == "auto" and s.speakers == "auto"
    s = read_config(_cfg(tmp_path, "merge_threshold = 0.25\nspeakers = 3\n")).settings
    assert (s.merge_threshold, s.speakers) == (0.25, 3)
    assert read_config(_cfg(tmp_path, "")).settings == Settings()


@pytest.mark.parametrize("extra, key", [("resegmentation = hmm\n", "resegmentation"),
                                        ("speech_detector = silero\n", "speech_detector"),
                                        ("min_duration = 0\n", "min_duration"),
                                        ("M_mfcc = automatic\n", "M_mfcc"),
                                        ("merge_threshold = low\n", "merge_threshold"),
                                        ("merge_threshold = nan\n", "merge_threshold"),
                                        ("merge_threshold = 1e9\n", "merge_threshold"),
                                        ("speakers = 0\n", "speakers")])
def test_config_rejects_bad_values_naming_the_key(tmp_path, extra, key):
    with pytest.raises(ConfigError, match=key):
        read_config(_cfg(tmp_path, extra))
