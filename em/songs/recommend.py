"""Tag-based song recommendation with a GMM-UBM on MSD timbre features (the 2011 manual's
second application).

A song *has* a tag when the tag (case-insensitive) is one of its artist's Echo Nest terms with
``artist_terms_freq >= min_term_freq`` (default 0.5: the term is at least half as frequent as
the artist's most frequent one) or one of its MusicBrainz tags with a count >= 1.

Tagged songs are split 70% train / 30% test; a UBM (``components`` diagonal Gaussians) is
trained on a random 30% of all segments, and the tag model on the train songs' segments: by
default a GMM of the same size trained separately (the 2011 method), or with ``adapt`` the UBM
MAP-adapted to them (Reynolds et al. 2000: means only unless ``adapt`` names more of 'w', 'm',
'v'; ``relevance`` r).  A song's score is its mean segment log-likelihood under the tag model
minus that under the UBM.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from em import GMM


class RecommendError(ValueError):
    """The collection cannot answer this request (no such tag, too few songs); says why."""


@dataclass
class Collection:
    """Songs as flat arrays: song i's segments are ``timbre[offsets[i]:offsets[i+1]]``."""
    track_id: np.ndarray        # (S,) str
    title: np.ndarray           # (S,) str
    artist: np.ndarray          # (S,) str
    offsets: np.ndarray         # (S+1,) int64
    timbre: np.ndarray          # (segments, 12) float32
    tags: list                  # S lists of (lower-case tag, Echo Nest freq or -1 for MusicBrainz)

    def __len__(self):
        return len(self.track_id)

    def segments(self, songs) -> np.ndarray:
        return np.concatenate([self.timbre[self.offsets[i]:self.offsets[i + 1]] for i in songs])


def has_tag(collection: Collection, tag: str, min_term_freq: float = 0.5) -> np.ndarray:
    """Boolean mask of the songs that have ``tag`` (see the module docstring)."""
    tag = tag.strip().lower()
    return np.array([any(t == tag and (f < 0 or f >= min_term_freq) for t, f in song)
                     for song in collection.tags], dtype=bool)


def mean_logliks(gmms, collection: Collection, songs: np.ndarray) -> list:
    """Mean segment log-likelihood of each song under each model: the songs' segments are
    gathered once and scored in one call per model."""
    if len(songs) == 0:
        return [np.zeros(0) for _ in gmms]
    lengths = np.diff(collection.offsets)[songs]
    X = collection.segments(songs)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    return [np.add.reduceat(g.score(X), starts) / lengths for g in gmms]


@dataclass
class Ranking:
    tag: str
    train: np.ndarray           # song indices the tag model was trained on
    test: np.ndarray            # held-out tagged songs, best first
    test_scores: np.ndarray
    unlabelled: np.ndarray      # songs without the tag, best first
    unlabelled_scores: np.ndarray

    def precision_at(self, k: int) -> float:
        """Fraction of held-out tagged songs among the top k of test + unlabelled songs."""
        scores = np.r_[self.test_scores, self.unlabelled_scores]
        is_test = np.r_[np.ones(len(self.test), bool), np.zeros(len(self.unlabelled), bool)]
        top = np.argsort(-scores, kind="stable")[:k]
        return float(is_test[top].mean()) if len(top) else 0.0


def recommend(collection: Collection, tag: str, *, components: int = 32, seed: int = 0,
              min_term_freq: float = 0.5, train_fraction: float = 0.7,
              ubm_fraction: float = 0.3, adapt: str | None = None, relevance: float = 16.0,
              backend="auto") -> Ranking:
    """Train the UBM and the tag model (separately, or with ``adapt`` -- e.g. 'm' -- adapted
    from the UBM), score the held-out tagged and the unlabelled songs."""
    tagged = has_tag(collection, tag, min_term_freq)
    labelled = np.flatnonzero(tagged)
    if len(labelled) == 0:
        raise RecommendError(f"no song has the tag {tag!r} (artist term with frequency >= "
                             f"{min_term_freq} or MusicBrainz tag); try another tag")
    rng = np.random.default_rng(seed)
    order = rng.permutation(labelled)
    n_train = int(round(train_fraction * len(order)))
    if n_train < 1 or n_train == len(order):
        raise RecommendError(f"only {len(labelled)} song(s) have the tag {tag!r}: the "
                             f"{train_fraction:.0%}/{1 - train_fraction:.0%} split needs at "
                             "least one training and one test song")
    train, test = np.sort(order[:n_train]), order[n_train:]
    unlabelled = np.flatnonzero(~tagged)
    if len(unlabelled) == 0:
        raise RecommendError(f"every one of the {len(collection)} songs has the tag {tag!r}: "
                             "there is no song without it to recommend")
    X_train = collection.segments(train)
    if len(X_train) < components:
        raise RecommendError(f"the {len(train)} training song(s) have {len(X_train)} segments, "
                             f"fewer than the {components} Gaussians of the tag model")
    ubm_rows = rng.random(len(collection.timbre)) < ubm_fraction
    X_ubm = collection.timbre[ubm_rows]
    if len(X_ubm) < components:
        raise RecommendError(f"{len(X_ubm)} segments for the UBM, fewer than {components}")

    def trained(what, X, seed):
        gmm = GMM(components, X.shape[1], "diag", seed=seed, backend=backend)
        try:
            gmm.train(X)
        except ValueError as exc:                  # e.g. fewer distinct segments than Gaussians
            raise RecommendError(f"cannot train the {what} on {len(X)} segments: {exc}") from None
        return gmm
    if adapt:
        ubm = trained("UBM", X_ubm, seed + 1)
        model = ubm.adapt(X_train, relevance, adapt)
    else:                                          # the 2011 method
        model, ubm = trained("tag model", X_train, seed), trained("UBM", X_ubm, seed + 1)

    def ranked(songs):
        tag_ll, ubm_ll = mean_logliks((model, ubm), collection, songs)
        s = tag_ll - ubm_ll
        best = np.argsort(-s, kind="stable")
        return songs[best], s[best]
    test, test_scores = ranked(test)
    unlabelled, unlabelled_scores = ranked(unlabelled)
    return Ranking(tag, train, test, test_scores, unlabelled, unlabelled_scores)
