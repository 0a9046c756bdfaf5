"""The diarizer's settings, declared once: each field's metadata makes it a configuration key.

Metadata: ``help`` (the --help text), ``range`` ((minimum, maximum or None): a number of the
range's type; the maxima keep a typo from running for days, the clustering costs growing with
the cube of initial_clusters) or ``choices``, ``key`` (the configuration key where it differs
from the field name) and ``internal`` (not a configuration key).  A number whose default is
``"auto"`` may also be written ``auto``.  seg_length, min_duration and initial_clusters x
M_mfcc are also checked against the recording's speech frames (pipeline.load_features).
"""
from __future__ import annotations

from dataclasses import dataclass, field

COUNT_KEYS = ("speakers", "min_speakers", "max_speakers")     # also command-line flags


def _key(default, help, **meta):
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class Settings:
    """The clustering settings (and the front end's speech detector)."""

    initialization: str = _key("changes", "initial clusters: changes (speaker-change detection "
                               "and BIC clustering of the segments) or uniform (the 2011 "
                               "equal contiguous parts)", choices=("changes", "uniform"))
    initial_clusters: int | str = _key("auto", "number of clusters to start from (auto: from "
                                       "the amount of speech)", range=(1, 128))
    extra_clusters: int = _key(2, "with initial_clusters = auto and a given (or most) speaker "
                               "count: start from at most this many clusters more",
                               range=(0, 128))
    M: int | str = _key("auto", "Gaussian components per initial cluster (auto: from the "
                        "amount of speech)", range=(1, 256), key="M_mfcc")
    speakers: int | str = _key("auto", "number of speakers when known: merge down to it "
                               "(auto: estimated)", range=(1, 128))
    min_speakers: int | str = _key("auto", "fewest speakers to estimate: stop merging there "
                                   "(auto: no bound)", range=(1, 128))
    max_speakers: int | str = _key("auto", "most speakers to estimate: merge on down to it "
                                   "(auto: no bound)", range=(1, 128))
    em_iterations: int = _key(3, "EM iterations per training", range=(1, 100))
    merge_iterations: int = _key(0, "EM iterations of each candidate merged model "
                                 "(0: em_iterations)", range=(0, 1000))
    KL_ntop: int = _key(0, "merge_score = bic: GMM pairs to evaluate BIC on, closest by KL "
                        "(0 = all pairs)",
                        range=(0, None))
    num_seg_iters_init: int = _key(2, "re-segmentation rounds before merging", range=(0, 100))
    num_seg_iters: int = _key(3, "re-segmentation rounds after each merge", range=(0, 100))
    seg_length: int = _key(250, "frames per window of the 'vote' re-segmentation",
                           range=(1, None))
    resegmentation: str = _key("viterbi", "viterbi (minimum-duration HMM) or vote (the 2011 "
                               "window majority)", choices=("viterbi", "vote"))
    merge_score: str = _key("clr", "how the pair to merge is chosen: clr (the largest "
                            "cross-likelihood ratio of the clusters' UBM-adapted models) or "
                            "bic (the largest merged-GMM delta-BIC of all pairs)",
                            choices=("clr", "bic"))
    relevance: float = _key(4.0, "merge_score = clr: MAP relevance factor of the cluster "
                            "models", range=(0.1, 100.0))
    min_speaker_frames: int = _key(1000, "a cluster with fewer frames is merged into its "
                                   "closest whatever the score: too little speech to be a "
                                   "speaker (0: off)", range=(0, None))
    min_speaker_share: float = _key(0.1, "with the count not given, min_speaker_frames is at "
                                    "most this share of the recording's speech frames (short "
                                    "recordings)", range=(0.0, 1.0))
    count_rule: str = _key("gap", "merge_score = clr, count estimated: gap (merge down, keep "
                           "the clusters before the largest fall of the best pair's CLR) or "
                           "threshold (merge while it exceeds clr_threshold)",
                           choices=("gap", "threshold"))
    clr_threshold: float = _key(2.5, "merge_score = clr: a pair whose CLR exceeds this is "
                                "merged (count_rule = threshold: merge while the best pair's "
                                "does)", range=(-20.0, 20.0))
    merge_threshold: float = _key(-0.05, "merge_score = bic: merge while the best pair's "
                                  "delta-BIC per frame exceeds this (0: the classic rule, "
                                  "merge while it is positive)", range=(-10.0, 10.0))
    min_duration: int = _key(100, "frames: shortest segment of the viterbi re-segmentation",
                             range=(1, None))
    variance_floor: float = _key(0.01, "every cluster model's variances are at least this "
                                 "fraction of the recording's", range=(0.0, 1.0))
    spectral_floor_db: float = _key(60.0, "front end: each frame's mel powers floored this "
                                    "many dB under its strongest band, so a speaker's level "
                                    "moves no feature (0: only the dither's floor; 60 the "
                                    "development set's choice, 40 suits level jumps)",
                                    range=(0.0, 200.0))
    speech_detector: str = _key("auto", "for audio_file without spnsp_file: webrtcvad, energy, "
                                "or auto (webrtcvad when installed)",
                                choices=("auto", "webrtcvad", "energy"))
    seed: int = field(default=0, metadata={"internal": True})
    backend: str = field(default="auto", metadata={"internal": True})

    @property
    def count(self) -> str:
        """How the speaker count is settled: 'given', 'bounded' or 'estimated'."""
        if self.speakers != "auto":
            return "given"
        return "estimated" if self.min_speakers == self.max_speakers == "auto" else "bounded"

    def speaker_range(self, clusters: int) -> tuple[int, int]:
        """(fewest, most) speakers the merging of ``clusters`` clusters may end with."""
        if self.speakers != "auto":
            return self.speakers, self.speakers
        return (1 if self.min_speakers == "auto" else self.min_speakers,
                clusters if self.max_speakers == "auto" else self.max_speakers)

    def check_counts(self, clusters: int | None = None) -> None:
        """ValueError naming the keys where speakers, min_speakers and max_speakers contradict
        each other or exceed ``clusters`` initial clusters (merging only lowers the count);
        speakers within the bounds is allowed (it wins)."""
        given = {k: getattr(self, k) for k in COUNT_KEYS if getattr(self, k) != "auto"}
        if clusters is not None:
            given["initial_clusters"] = clusters
        pairs = [("min_speakers", "max_speakers"), ("min_speakers", "speakers"),
                 ("speakers", "max_speakers")] + [(k, "initial_clusters") for k in COUNT_KEYS]
        for low, high in pairs:
            if low in given and high in given and given[low] > given[high]:
                raise ValueError(f"{low} = {given[low]} is above {high} = {given[high]}")
