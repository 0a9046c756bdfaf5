"""em.sklearn: scikit-learn's checks, and scikit-learn's results from the same initialisation."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn import cluster, mixture
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from em import backends
from em.sklearn import BayesianGaussianMixture, GaussianMixture, KMeans

# scikit-learn's own KMeans fails these two checks and lists them as expected failures
# (sklearn.utils._test_common.instance_generator.PER_ESTIMATOR_XFAIL_CHECKS): k-means++
# draws its seeds by sample weight, which is not the same draw as repeating the samples.
KMEANS_XFAIL = {name: "sample_weight is not equivalent to removing/repeating samples "
                      "(scikit-learn's KMeans fails it too)"
                for name in ("check_sample_weight_equivalence_on_dense_data",
                             "check_sample_weight_equivalence_on_sparse_data")}


@parametrize_with_checks([GaussianMixture(), BayesianGaussianMixture(), KMeans(n_clusters=3)],
                         expected_failed_checks=lambda e: KMEANS_XFAIL
                         if isinstance(e, KMeans) else {})
def test_scikit_learn_checks(estimator, check):
    check(estimator)


def blobs(n=600, D=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(3, D))
    X = np.concatenate([rng.normal(size=(n // 3, D)) * s + c
                        for c, s in zip(centres, (0.5, 1.0, 2.0))])
    return X.astype(dtype)


# Two initialisations (n_init) can reach the same solution with its components in another
# order; their bounds then tie within rounding, and which one is kept depends on the CPU's
# rounding (on an AMD EPYC the BGMM test kept the other one).  So fitted models are compared
# up to the order of their components: ``aligned`` puts ours in theirs' order.
def component_order(ours, theirs) -> np.ndarray:
    """p with ours' component p[j] matching theirs' j (means, or cluster centres, nearest)."""
    name = "cluster_centers_" if hasattr(theirs, "cluster_centers_") else "means_"
    a, b = getattr(ours, name), getattr(theirs, name)
    rows, p = linear_sum_assignment(np.linalg.norm(b[:, None] - a[None], axis=2))
    return p


def aligned(est, p, name):
    """Fitted attribute ``name`` of ``est`` with its components in the order ``p``."""
    value = getattr(est, name)
    per_component = not (getattr(est, "covariance_type", None) == "tied"
                         and name.startswith(("covariances", "precisions")))
    if isinstance(value, tuple):                     # a Dirichlet process's two concentrations
        return tuple(v[p] for v in value)
    return value[p] if per_component and np.ndim(value) else value


def labels_in(p, labels):
    """Our labels as theirs' indices (the inverse of ``p``)."""
    return np.argsort(p)[labels]


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical", "tied"])
@pytest.mark.parametrize("seed", [0, 1])
def test_gaussian_mixture_gives_scikit_learns_result(covariance_type, seed):
    X = blobs(seed=seed)
    kw = dict(n_components=3, covariance_type=covariance_type, random_state=seed, tol=1e-6,
              n_init=2)
    ours, theirs = GaussianMixture(**kw).fit(X), mixture.GaussianMixture(**kw).fit(X)
    assert ours.n_iter_ == theirs.n_iter_ and ours.converged_ == theirs.converged_
    assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(ours.lower_bounds_, theirs.lower_bounds_, rtol=1e-10)
    p = component_order(ours, theirs)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        np.testing.assert_allclose(aligned(ours, p, name), getattr(theirs, name), rtol=1e-8,
                                   atol=1e-10, err_msg=name)
    np.testing.assert_array_equal(labels_in(p, ours.predict(X)), theirs.predict(X))
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-10)
    assert ours.bic(X) == pytest.approx(theirs.bic(X), rel=1e-10)


def test_warm_started_fits_continue_as_scikit_learns():
    X = np.random.default_rng(3).normal(size=(500, 3))        # one blob: slow to converge
    kw = dict(n_components=4, covariance_type="diag", random_state=0, max_iter=2,
              warm_start=True, tol=1e-9)
    for mine, theirs in ((GaussianMixture(**kw), mixture.GaussianMixture(**kw)),
                         (BayesianGaussianMixture(**kw), mixture.BayesianGaussianMixture(**kw))):
        for _ in range(3):                   # each fit continues where the last one stopped
            for est in (mine, theirs):
                with pytest.warns(Warning, match="did not converge"):
                    est.fit(X)
            assert mine.n_iter_ == theirs.n_iter_ == 2 and not mine.converged_
            assert mine.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-12)
            np.testing.assert_allclose(mine.lower_bounds_, theirs.lower_bounds_, rtol=1e-12)
            for name in ("weights_", "means_", "covariances_"):
                np.testing.assert_allclose(getattr(mine, name), getattr(theirs, name),
                                           rtol=1e-9, err_msg=name)


def test_gaussian_mixture_on_float32_follows_scikit_learn():
    X32 = blobs(seed=4, dtype=np.float32)
    ours = GaussianMixture(3, covariance_type="diag", random_state=0).fit(X32)
    theirs = mixture.GaussianMixture(3, covariance_type="diag", random_state=0).fit(X32)
    np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-4, atol=1e-4)


VARIATIONAL = ("weight_concentration_", "mean_precision_", "means_", "degrees_of_freedom_",
               "covariances_", "precisions_cholesky_")


def assert_same_variational_fit(ours, theirs, X, rtol):
    p = component_order(ours, theirs)
    for name in VARIATIONAL + ("weights_",):
        np.testing.assert_allclose(aligned(ours, p, name), getattr(theirs, name), rtol=rtol,
                                   atol=rtol * 1e-2, err_msg=name)
    np.testing.assert_array_equal(labels_in(p, ours.predict(X)), theirs.predict(X))


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical", "tied"])
@pytest.mark.parametrize("prior_type", ["dirichlet_process", "dirichlet_distribution"])
@pytest.mark.parametrize("seed", [0, 1])
def test_bayesian_gaussian_mixture_gives_scikit_learns_result(covariance_type, prior_type, seed,
                                                              monkeypatch):
    X = blobs(seed=seed)
    kw = dict(n_components=3, covariance_type=covariance_type, random_state=seed, tol=1e-6,
              n_init=2, weight_concentration_prior_type=prior_type)
    backend, passes = backends.get_backend("auto"), []
    fused = backend.fused_stats
    monkeypatch.setattr(backend, "fused_stats", lambda *a, **k: passes.append(1) or fused(*a, **k))
    ours = BayesianGaussianMixture(**kw, backend=backend).fit(X)
    theirs = mixture.BayesianGaussianMixture(**kw).fit(X)
    # the iterations ran on the backend (tied: scikit-learn's own code)
    assert len(passes) > ours.n_iter_ if covariance_type != "tied" else not passes
    assert ours.n_iter_ == theirs.n_iter_ and ours.converged_ == theirs.converged_
    assert ours.converged_ and ours.n_iter_ > 2
    assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-9)
    np.testing.assert_allclose(ours.lower_bounds_, theirs.lower_bounds_, rtol=1e-9)
    assert_same_variational_fit(ours, theirs, X, rtol=1e-7)


def test_bayesian_gaussian_mixture_on_float32_follows_scikit_learn():
    X32 = blobs(seed=4, dtype=np.float32)
    kw = dict(n_components=3, random_state=0, tol=1e-4)
    ours = BayesianGaussianMixture(**kw).fit(X32)
    theirs = mixture.BayesianGaussianMixture(**kw).fit(X32)
    assert ours.converged_ and theirs.converged_ and ours.n_iter_ == theirs.n_iter_
    assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-7)
    assert_same_variational_fit(ours, theirs, X32, rtol=1e-5)


def test_bayesian_gaussian_mixture_on_many_float32_samples_stops_as_in_float64():
    # tol bounds the change of a sum over all samples: float32 passes could not resolve it
    X32 = blobs(n=60000, seed=4, dtype=np.float32)
    kw = dict(n_components=3, random_state=0)
    ours = BayesianGaussianMixture(**kw).fit(X32)
    theirs = mixture.BayesianGaussianMixture(**kw).fit(X32.astype(np.float64))
    assert ours.converged_ and ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-6)


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_kmeans_gives_scikit_learns_result(backend):
    X = blobs(n=900, D=5, seed=2)
    for kw in (dict(n_clusters=4, random_state=0), dict(n_clusters=3, random_state=1, n_init=3),
               dict(n_clusters=3, init=X[[0, 300, 600]], n_init=1)):
        ours = KMeans(**kw, backend=backend).fit(X)
        theirs = cluster.KMeans(**kw).fit(X)
        assert ours.n_iter_ == theirs.n_iter_
        assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-10)
        p = component_order(ours, theirs)
        np.testing.assert_allclose(ours.cluster_centers_[p], theirs.cluster_centers_,
                                   rtol=1e-10)
        np.testing.assert_array_equal(labels_in(p, ours.labels_), theirs.labels_)
        for data in (X, X[::7].tolist()):                          # predict: our argmax pass
            labels = ours.predict(data)
            assert labels.dtype == np.int32
            np.testing.assert_array_equal(labels_in(p, labels), theirs.predict(data))
        np.testing.assert_array_equal(ours.predict(X), ours.labels_)
        # float32 rows on a float64 fit (scikit-learn's own predict refuses them)
        np.testing.assert_array_equal(ours.predict(X.astype(np.float32)), ours.labels_)


def test_kmeans_weighted_samples_are_scikit_learns():
    X = blobs(seed=5)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    ours = KMeans(3, random_state=0).fit(X, sample_weight=w)
    theirs = cluster.KMeans(3, random_state=0).fit(X, sample_weight=w)
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_)


def test_in_a_pipeline_and_a_grid_search_like_scikit_learn():
    X = blobs(seed=6)
    grid = {"gaussianmixture__n_components": [1, 2, 3, 4],
            "gaussianmixture__covariance_type": ["full", "diag"]}
    found = []
    for gm in (GaussianMixture(random_state=0), mixture.GaussianMixture(random_state=0)):
        search = GridSearchCV(make_pipeline(StandardScaler(), gm), grid, cv=3).fit(X)
        found.append((search.best_params_, search.cv_results_["mean_test_score"]))
    assert found[0][0] == found[1][0]
    np.testing.assert_allclose(found[0][1], found[1][1], rtol=1e-8)
    labels = make_pipeline(StandardScaler(), KMeans(3, random_state=0)).fit_predict(X)
    assert len(np.unique(labels)) == 3


ESTIMATORS = {
    "gmm": lambda: GaussianMixture(3, covariance_type="full", n_init=2, random_state=0),
    "bgmm": lambda: BayesianGaussianMixture(n_components=4, covariance_type="diag",
                                            max_iter=500, random_state=0),
    "kmeans": lambda: KMeans(3, n_init=2, random_state=0),
}


def _fitted_attributes(est):
    names = ("cluster_centers_", "inertia_") if isinstance(est, KMeans) else \
        ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bound_")
    return {n: getattr(est, n) for n in names + ("n_iter_",)}


@pytest.mark.parametrize("name", ESTIMATORS)
def test_estimators_fit_and_score_arrays_on_disk_as_in_memory(tmp_path, name, monkeypatch):
    import em.backends.chunked
    X = blobs(n=3000, D=4, seed=7)
    np.save(tmp_path / "x.npy", X)
    monkeypatch.setattr(em.backends.chunked, "CHUNK_MB", 0.02)           # 655 rows a chunk
    disk = np.load(tmp_path / "x.npy", mmap_mode="r")
    ref, est = ESTIMATORS[name]().fit(X), ESTIMATORS[name]()
    labels = est.fit_predict(disk)
    p = component_order(est, ref)              # chunked sums round otherwise: near ties
    np.testing.assert_array_equal(labels_in(p, labels), ref.predict(X))
    for attr, want in _fitted_attributes(ref).items():
        np.testing.assert_allclose(aligned(est, p, attr), want, rtol=1e-9, atol=1e-12,
                                   err_msg=attr)
    assert est.score(disk) == pytest.approx(ref.score(X), rel=1e-10)
    np.testing.assert_array_equal(labels_in(p, est.predict(disk)), ref.predict(X))
    if name != "kmeans":
        np.testing.assert_allclose(est.score_samples(disk), ref.score_samples(X), rtol=1e-10)
        np.testing.assert_allclose(est.predict_proba(disk)[:, p], ref.predict_proba(X),
                                   rtol=1e-8, atol=1e-12)


def test_large_arrays_on_disk_initialise_on_a_sample_and_iterate_on_all(tmp_path,
                                                                        monkeypatch):
    h5py = pytest.importorskip("h5py")
    import em.sklearn.shared
    monkeypatch.setattr(em.sklearn.shared, "INIT_ROWS", 500)      # where it is read
    X = blobs(n=6000, D=3, seed=8)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["x"] = X
    with h5py.File(tmp_path / "x.h5", "r") as f:
        bgmm = BayesianGaussianMixture(n_components=3, random_state=0).fit(f["x"])
        km = KMeans(3, random_state=0).fit(f["x"])
        assert bgmm.converged_ and bgmm.n_features_in_ == 3
        # the priors scikit-learn takes from X come from all rows, not the sample
        np.testing.assert_allclose(bgmm.mean_prior_, X.mean(axis=0), rtol=1e-10)
        np.testing.assert_allclose(bgmm.covariance_prior_, np.cov(X.T), rtol=1e-10)
        assert len(km.labels_) == len(X)
        assert km.inertia_ == pytest.approx(-km.score(f["x"]), rel=1e-12)
    ref = BayesianGaussianMixture(n_components=3, random_state=0).fit(X)
    assert bgmm.score(X) == pytest.approx(ref.score(X), rel=1e-3)
    assert km.inertia_ == pytest.approx(KMeans(3, random_state=0).fit(X).inertia_, rel=1e-3)


def test_what_needs_x_in_memory_says_so(tmp_path):
    np.save(tmp_path / "x.npy", blobs(seed=9))
    disk = np.load(tmp_path / "x.npy", mmap_mode="r")
    with pytest.raises(ValueError, match="tied.*needs X in memory"):
        GaussianMixture(2, covariance_type="tied").fit(disk)
    with pytest.raises(ValueError, match="sample_weight.*needs X in memory"):
        KMeans(2).fit(disk, sample_weight=np.ones(len(disk)))


@pytest.mark.parametrize("make", [
    lambda cv: (GaussianMixture, mixture.GaussianMixture, dict(n_components=3,
                                                                covariance_type=cv)),
    lambda cv: (BayesianGaussianMixture, mixture.BayesianGaussianMixture,
                dict(n_components=4, covariance_type=cv, max_iter=500,
                     weight_concentration_prior_type="dirichlet_distribution")),
], ids=["gmm", "bgmm"])
@pytest.mark.parametrize("cv", ["full", "diag", "spherical"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scoring_on_our_kernels_gives_scikit_learns_numbers(make, cv, dtype):
    ours_cls, theirs_cls, kw = make(cv)
    X = blobs(n=900, D=4, seed=10, dtype=dtype)
    X64 = X.astype(np.float64)      # float32 data are scored in float64 (exactly these values)
    theirs = theirs_cls(**kw, random_state=0).fit(X64)
    ours = ours_cls(**kw, random_state=0).fit(X)
    ours._set_parameters(theirs._get_parameters())       # the very same fitted model
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X64), rtol=1e-12)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X64), rtol=1e-9,
                               atol=1e-14)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X64))
    assert ours.score(X) == pytest.approx(theirs.score(X64), rel=1e-12)
    if hasattr(theirs, "bic"):
        assert ours.bic(X) == pytest.approx(theirs.bic(X64), rel=1e-12)


@pytest.mark.parametrize("pair", [(GaussianMixture, mixture.GaussianMixture),
                                  (BayesianGaussianMixture, mixture.BayesianGaussianMixture)],
                         ids=["gmm", "bgmm"])
def test_verbose_output_is_scikit_learns(pair, capsys):
    X = blobs(seed=11)
    kw = dict(n_components=3, n_init=2, verbose=1, verbose_interval=2, random_state=0)
    outputs = []
    for cls in pair:
        cls(**kw).fit(X)
        outputs.append(capsys.readouterr().out)
    assert "Iteration 2" in outputs[1] and "Initialization 1" in outputs[1]
    assert outputs[0] == outputs[1]


def test_kmeans_verbose_output_is_scikit_learns(capsys):
    import re
    X = blobs(seed=12)
    outputs = []
    for cls in (KMeans, cluster.KMeans):
        cls(3, n_init=2, verbose=1, random_state=0).fit(X)
        out = capsys.readouterr().out           # inertias summed in another order: 9 digits
        outputs.append(re.sub(r"\d+\.\d+(e[-+]\d+)?", lambda m: f"{float(m[0]):.9g}", out))
    assert outputs[0].count("Initialization complete") == 2 and "Converged at" in outputs[0]
    assert outputs[0] == outputs[1]


def test_the_declared_scikit_learn_range_is_the_tested_one():
    import sklearn
    import tomllib
    from pathlib import Path

    import em.sklearn
    extras = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())[
        "project"]["optional-dependencies"]
    lo, hi = (".".join(map(str, v)) for v in em.sklearn.TESTED)
    for extra in ("sklearn", "test", "bench"):
        assert f"scikit-learn>={lo},<{hi}" in extras[extra], extras[extra]
    assert em.sklearn._tested(sklearn.__version__)
    assert [em.sklearn._tested(v) for v in ("1.6.1", "1.7.0", "1.9.1", "1.10.0rc1", "2.0")] \
        == [False, True, True, False, False]
