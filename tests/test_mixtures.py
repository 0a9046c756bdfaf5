"""The megamix model family of em.mixture: Kmeans, GaussianMixture, VariationalGaussianMixture
and DPVariationalGaussianMixture (Dirichlet process, Pitman-Yor) on the one training driver.

* From the same responsibilities (or centres) the models equal scikit-learn's GaussianMixture,
  BayesianGaussianMixture and Lloyd KMeans after k iterations, on iris, wine and digits.
* The evidence lower bound is scikit-learn's simplified bound plus a constant, and never
  decreases; the Pitman-Yor weights are the stick-breaking expectations.
* Every backend (compiled C, emulated CUDA) trains every model like the numpy backend.
* Files (write / read_and_init, checkpoints), early stopping, simplified_model, bad input,
  reproducibility.
"""
from __future__ import annotations

import functools
import warnings

import h5py
import numpy as np
import pytest
from scipy.special import digamma
from sklearn import cluster, datasets, mixture as skm
from sklearn.mixture import _base as sk_base
from threadpoolctl import threadpool_limits

import em
import fake_pycuda
from conftest import rel_err
from em import (DPVariationalGaussianMixture, GaussianMixture, Kmeans,
                VariationalGaussianMixture, backends)

pytestmark = [pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
              # a re-seeded component would silently leave scikit-learn's path: make it fail
              pytest.mark.filterwarnings("error::em.fit.EMWarning")]

RTOL = 1e-6                        # against scikit-learn (the acceptance bound)
COVARIANCE_TYPES = ("full", "diag", "spherical")
MODELS = ("Kmeans", "GMM", "VB", "DP", "PY")
MIXTURES = MODELS[1:]
VARIATIONAL = ("VB", "DP", "PY")
PY_DISCOUNT = 0.3
MODEL_CV = [pytest.param("Kmeans", None, id="Kmeans")] + [
    pytest.param(m, cv, id=f"{m}-{cv}") for m in MIXTURES for cv in COVARIANCE_TYPES]
PRIORS = {"dirichlet_distribution": VariationalGaussianMixture,
          "dirichlet_process": DPVariationalGaussianMixture}
DATASETS = ("iris", "wine", "digits")
N_COMPONENTS = {"iris": 3, "wine": 3, "digits": 4}


# -- data and helpers -------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def dataset(name: str) -> np.ndarray:
    """A scikit-learn data set as a read-only float64 array (read-only: nothing may write it)."""
    loader = {"iris": datasets.load_iris, "wine": datasets.load_wine,
              "digits": datasets.load_digits}[name]
    X = np.asarray(loader().data, dtype=np.float64)
    if name == "digits":
        # digits: the 61 pixel columns that are not constant (3 of the 64 are 0 in every
        # image), so that every covariance is definite with the default reg_covar=1e-6
        X = X[:, X.std(axis=0) > 0]
    X = np.ascontiguousarray(X)
    X.setflags(write=False)
    return X


def responsibilities(n: int, K: int, seed: int = 0) -> np.ndarray:
    """(n, K) soft responsibilities, rows on the simplex."""
    return np.random.default_rng(seed).dirichlet(np.ones(K), size=n)


def blobs(n: int, D: int = 3, seed: int = 0, spread: float = 5.0) -> np.ndarray:
    """n points of three unit Gaussian blobs whose centres are ``spread`` apart."""
    rng = np.random.default_rng(seed)
    centres = spread * np.eye(3, D)
    return centres[rng.integers(0, 3, n)] + rng.normal(size=(n, D))


def make(model: str, K: int, cv: str | None = "full", backend="numpy", **kw):
    """A model of the family by short name (PY: Pitman-Yor with discount PY_DISCOUNT)."""
    if model == "Kmeans":
        return Kmeans(K, backend=backend, **kw)
    if model == "GMM":
        return GaussianMixture(K, cv, backend=backend, **kw)
    if model == "VB":
        return VariationalGaussianMixture(K, covariance_type=cv, backend=backend, **kw)
    if model == "DP":
        return DPVariationalGaussianMixture(K, covariance_type=cv, backend=backend, **kw)
    return DPVariationalGaussianMixture(K, covariance_type=cv, pypcoeff=PY_DISCOUNT,
                                       backend=backend, **kw)


def parameters(model: str) -> tuple[str, ...]:
    """The public parameter attributes of a model."""
    return {"Kmeans": ("means", "log_weights"), "GMM": ("means", "cov", "log_weights")}.get(
        model, ("means", "cov", "log_weights", "alpha", "beta", "nu"))


def write_group(path, name="m", **datasets_):
    """An h5py file with one group holding ``datasets_`` (a megamix layout written by hand)."""
    with h5py.File(path, "a") as f:
        g = f.create_group(name)
        for key, value in datasets_.items():
            g.create_dataset(key, data=value)


def kmeans_at(centres, X, path, backend="numpy") -> Kmeans:
    """A Kmeans whose centres are ``centres``: Kmeans starts from centres only through a group
    of megamix's layout ('means', 'log_weights'); fit() does not re-initialise it after."""
    K = len(centres)
    write_group(path, "centres", means=centres, log_weights=np.full(K, -np.log(K)))
    km = Kmeans(K, backend=backend)
    with h5py.File(path, "r") as f:
        km.read_and_init(f["centres"], X)
    return km


def start(model, K, cv, X, path, backend="numpy", seed=0):
    """A model ready to fit from given responsibilities (Kmeans: from given centres, passed
    through the file ``path``)."""
    if model == "Kmeans":
        rng = np.random.default_rng(seed)
        centres = X[rng.choice(len(X), K, replace=False)] + 0.1 * rng.normal(size=(K, X.shape[1]))
        return kmeans_at(centres, X, path, backend)
    return make(model, K, cv, backend, init=responsibilities(len(X), K, seed))


def sklearn_from_resp(monkeypatch, estimator, X, resp):
    """Fit a scikit-learn mixture whose initial M-step is taken from ``resp``."""
    with monkeypatch.context() as m:
        m.setattr(sk_base.BaseMixture, "_initialize_parameters",
                  lambda self, X, random_state, xp=None: self._initialize(X, resp))
        # OpenBLAS's threads make scipy's tiny triangular solves ~20x slower on 2 cores
        with threadpool_limits(1, user_api="blas"):
            return estimator.fit(X)


def assert_rel(ours, theirs, tol=RTOL, what=""):
    err = rel_err(ours, theirs)
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:g}"


def assert_same_responsibilities(ours, sk, X):
    log_resp = ours.predict_log_resp(X)
    assert_rel(log_resp, sk._estimate_log_prob_resp(X)[1], what="log responsibilities")
    np.testing.assert_allclose(np.exp(log_resp), sk.predict_proba(X), rtol=RTOL, atol=1e-9)


# -- 1. EM and variational Bayes equal scikit-learn ------------------------------------------
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("cv", COVARIANCE_TYPES)
@pytest.mark.parametrize("data", DATASETS)
def test_gaussian_mixture_equals_sklearn(monkeypatch, data, cv, k):
    X = dataset(data)
    K = N_COMPONENTS[data]
    resp = responsibilities(len(X), K)
    ours = GaussianMixture(K, cv, init=resp, type_init="resp", backend="numpy")
    ours.fit(X, n_iter_fix=k)
    sk = sklearn_from_resp(monkeypatch, skm.GaussianMixture(K, covariance_type=cv, max_iter=k,
                                                            tol=0), X, resp)
    assert sk.n_iter_ == k and ours.iter == k
    assert len(ours.convergence_criterion_data) == k + 1
    assert_rel(ours.means, sk.means_, what="means")
    assert_rel(ours.cov, sk.covariances_, what="covariances")
    assert_rel(np.exp(ours.log_weights), sk.weights_, what="weights")
    assert_same_responsibilities(ours, sk, X)
    # the criterion is the log-likelihood of the final parameters (sklearn: mean per point)
    assert ours.score(X) == pytest.approx(sk.score(X) * len(X), rel=RTOL)
    assert ours.convergence_criterion_data[-1] == pytest.approx(ours.score(X), rel=1e-12)


@pytest.mark.parametrize("prior", list(PRIORS))
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("cv", COVARIANCE_TYPES)
@pytest.mark.parametrize("data", DATASETS)
def test_variational_mixture_equals_sklearn(monkeypatch, data, cv, k, prior):
    X = dataset(data)
    K = N_COMPONENTS[data]
    resp = responsibilities(len(X), K)
    kw = {"pypcoeff": 0} if prior == "dirichlet_process" else {}
    ours = PRIORS[prior](K, init=resp, type_init="resp", covariance_type=cv, backend="numpy",
                         **kw)
    ours.fit(X, n_iter_fix=k)
    sk = sklearn_from_resp(monkeypatch, skm.BayesianGaussianMixture(
        n_components=K, covariance_type=cv, max_iter=k, tol=0,
        weight_concentration_prior_type=prior), X, resp)
    assert sk.n_iter_ == k and ours.iter == k
    assert_rel(ours.means, sk.means_, what="means")
    assert_rel(ours.cov, sk.covariances_, what="covariances")
    concentration = sk.weight_concentration_
    if prior == "dirichlet_process":          # sklearn: a tuple of two (K,) arrays; ours (K, 2)
        concentration = np.stack(concentration, axis=1)
    assert_rel(ours.alpha, concentration, what="alpha")
    assert_rel(ours.beta, sk.mean_precision_, what="beta")
    assert_rel(ours.nu, sk.degrees_of_freedom_, what="nu")
    assert_rel(ours.log_weights, sk._estimate_log_weights(), what="E[log pi]")
    assert_same_responsibilities(ours, sk, X)


# The bound up to its constant.  scikit-learn's lower_bound_ is a simplified bound: terms that
# cancel once the M-step is the exact optimum are left out.  With reg_covar > 0 the M-step is
# not that optimum and the difference moves with the fixed point (by ~1e-3 on iris), so this
# runs with reg_covar=0 in both libraries, where the difference is constant to ~1e-10.
# Iris, K=4, seeds 0-2: 400 iterations reach three different fixed points for every case.
@pytest.mark.parametrize("prior", list(PRIORS))
@pytest.mark.parametrize("cv", COVARIANCE_TYPES)
def test_bound_is_sklearns_plus_a_constant(monkeypatch, cv, prior):
    X = dataset("iris")
    K, n_iter = 4, 400
    bounds, differences = [], []
    for seed in (0, 1, 2):
        resp = responsibilities(len(X), K, seed)
        ours = PRIORS[prior](K, init=resp, covariance_type=cv, reg_covar=0.0, backend="numpy")
        ours.fit(X, tol=0, n_iter_fix=n_iter)
        sk = sklearn_from_resp(monkeypatch, skm.BayesianGaussianMixture(
            n_components=K, covariance_type=cv, max_iter=n_iter, tol=0, reg_covar=0.0,
            weight_concentration_prior_type=prior), X, resp)
        history = ours.convergence_criterion_data
        bound = history[-1]
        # both ran to the same fixed point
        assert abs(history[-1] - history[-2]) <= 1e-10 * abs(bound), f"seed {seed}"
        assert abs(sk.lower_bounds_[-1] - sk.lower_bounds_[-2]) <= 1e-10 * abs(bound)
        assert_rel(ours.means, sk.means_, what=f"means, seed {seed}")
        bounds.append(bound)
        differences.append(bound - sk.lower_bound_)
    # different fixed points (else the check below would say little) ...
    assert max(bounds) - min(bounds) > 1e-3 * abs(bounds[0]), bounds
    # ... and the same difference at each
    assert max(differences) - min(differences) <= 1e-6 * min(map(abs, bounds)), differences


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("cv", COVARIANCE_TYPES)
@pytest.mark.parametrize("data", ["iris", "wine"])
def test_criterion_never_gets_worse(data, cv, model):
    """EM's log-likelihood and the variational bound (Dirichlet, DP, Pitman-Yor) never
    decrease, k-means' distortion never increases (relative 1e-9), with the default reg_covar."""
    if model == "Kmeans" and cv != "full":
        cv = None                       # one k-means case per data set is enough
    X = dataset(data)
    K, n_iter = 5, 60
    for seed in (0, 1):
        if model == "Kmeans":
            m = Kmeans(K, init="plus", random_state=seed, backend="numpy")
        else:
            m = make(model, K, cv, init=responsibilities(len(X), K, seed))
        m.fit(X, tol=0, n_iter_fix=n_iter)
        h = np.array(m.convergence_criterion_data)
        assert len(h) == n_iter + 1
        if model == "Kmeans":
            h = -h
        worse = (h[:-1] - h[1:]) / np.abs(h[1:])
        assert worse.max() <= 1e-9, f"seed {seed}: criterion fell at iteration {worse.argmax()}"


# -- 2. Kmeans equals scikit-learn's Lloyd --------------------------------------------------
@pytest.mark.parametrize("k", [1, 3, 30])
@pytest.mark.parametrize("data", DATASETS)
def test_kmeans_equals_sklearn_lloyd(tmp_path, data, k):
    X = dataset(data)
    K = N_COMPONENTS[data] + 2
    rng = np.random.default_rng(1)
    # data rows plus noise: digits are integers, and integer centres make exact distance ties
    centres = X[rng.choice(len(X), K, replace=False)] + 0.1 * rng.normal(size=(K, X.shape[1]))
    ours = kmeans_at(centres, X, tmp_path / "c.h5").fit(X, n_iter_fix=k)
    with threadpool_limits(1, user_api="blas"):
        sk = cluster.KMeans(n_clusters=K, init=centres, n_init=1, max_iter=k, tol=0,
                            algorithm="lloyd").fit(X)
    assert ours.iter == k
    assert_rel(ours.means, sk.cluster_centers_, what="centres")
    labels = ((X[:, None, :] - ours.means[None]) ** 2).sum(axis=-1).argmin(axis=1)
    np.testing.assert_array_equal(labels, sk.labels_)
    np.testing.assert_array_equal(ours.predict_assignements(X).argmax(axis=1), labels)
    distortion = ((X - ours.means[labels]) ** 2).sum()
    # score and the last history entry: the distortion of the final centres
    assert ours.score(X) == pytest.approx(distortion, rel=1e-12)
    assert ours.convergence_criterion_data[-1] == pytest.approx(distortion, rel=1e-12)
    # sklearn's inertia_ is taken with its final centres too (labels redone after the update)
    assert ours.score(X) == pytest.approx(sk.inertia_, rel=RTOL)
    np.testing.assert_allclose(np.exp(ours.log_weights), np.bincount(labels, minlength=K) / len(X),
                               rtol=1e-12)


# -- 3. Pitman-Yor ------------------------------------------------------------------------
def stick_breaking(N, alpha_0, d):
    """Transcription: sticks Beta(a_k, b_k), a_k = 1 - d + N_k,
    b_k = alpha_0 + k d + sum_{j>k} N_j (k = 1..K); E[log pi_k] = E[log V_k]
    + sum_{j<k} E[log(1 - V_j)], E[log V] = psi(a) - psi(a+b), E[log(1-V)] = psi(b) - psi(a+b)."""
    K = len(N)
    a = np.array([1.0 - d + N[k] for k in range(K)])
    b = np.array([alpha_0 + (k + 1) * d + sum(N[j] for j in range(k + 1, K)) for k in range(K)])
    e_log_v = digamma(a) - digamma(a + b)
    e_log_1mv = digamma(b) - digamma(a + b)
    e_log_pi = np.array([e_log_v[k] + sum(e_log_1mv[j] for j in range(k)) for k in range(K)])
    return np.stack([a, b], axis=1), e_log_pi


@pytest.mark.parametrize("alpha_0", [None, 2.5])
@pytest.mark.parametrize("d", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("cv", COVARIANCE_TYPES)
def test_pitman_yor_weights_are_stick_breaking_expectations(cv, d, alpha_0):
    X = dataset("iris")
    K = 5
    resp = responsibilities(len(X), K, seed=3)
    kw = {} if alpha_0 is None else {"alpha_0": alpha_0}
    a0 = 1.0 / K if alpha_0 is None else alpha_0          # the default, as scikit-learn's

    def model():
        return DPVariationalGaussianMixture(K, init=resp, pypcoeff=d, covariance_type=cv,
                                            backend="numpy", **kw)

    # n_iter_fix=0 only initialises: the parameters are the M-step of the given resp
    m0 = model().fit(X, n_iter_fix=0)
    assert m0.iter == 0 and len(m0.convergence_criterion_data) == 1
    assert m0.pypcoeff == d
    alpha, e_log_pi = stick_breaking(resp.sum(axis=0), a0, d)
    np.testing.assert_allclose(m0.alpha, alpha, rtol=1e-12)
    np.testing.assert_allclose(m0.log_weights, e_log_pi, rtol=1e-12)
    # one iteration: the counts are those of the initial parameters' responsibilities
    counts = np.exp(m0.predict_log_resp(X)).sum(axis=0)
    m1 = model().fit(X, n_iter_fix=1)
    alpha, e_log_pi = stick_breaking(counts, a0, d)
    np.testing.assert_allclose(m1.alpha, alpha, rtol=1e-9)
    np.testing.assert_allclose(m1.log_weights, e_log_pi, rtol=1e-9)


# -- 4. every backend equals the numpy backend -----------------------------------------------
BACKEND_D = 5          # one D for every model: each backend compiles 2 kernel families (diag,
BACKEND_K = 3          # full) for float64 and reuses them (test_c_backend also uses D=5)


@pytest.fixture(params=["c", "cuda-emulated"])
def other_backend(request, monkeypatch):
    if request.param == "c":
        backend = backends.get_backend("c")        # a fallback warns: an error here
        assert backend.name == "c"
        return backend
    fake_pycuda.install(monkeypatch)
    from em.backends import cuda_backend
    return cuda_backend.CudaBackend()


@pytest.mark.filterwarnings("error::RuntimeWarning")       # no silent numpy fallback
@pytest.mark.parametrize("model, cv", MODEL_CV)
def test_backend_trains_like_numpy(other_backend, tmp_path, model, cv):
    X = blobs(240, BACKEND_D, seed=2)
    ref = start(model, BACKEND_K, cv, X, tmp_path / "numpy.h5", seed=4)
    got = start(model, BACKEND_K, cv, X, tmp_path / "other.h5", backend=other_backend, seed=4)
    ref.fit(X, n_iter_fix=4)
    got.fit(X, n_iter_fix=4)
    assert other_backend.chosen(), "the backend's kernels did not run"
    tol = 1e-9                                    # float64 data, float64 accumulation
    for name in parameters(model):
        assert_rel(getattr(got, name), getattr(ref, name), tol, name)
    np.testing.assert_allclose(got.convergence_criterion_data, ref.convergence_criterion_data,
                               rtol=tol)
    assert_rel(got.predict_log_resp(X), ref.predict_log_resp(X), tol, "log responsibilities")
    assert got.score(X) == pytest.approx(ref.score(X), rel=tol)


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("model, cv", [pytest.param("Kmeans", None, id="Kmeans"),
                                       pytest.param("GMM", "full", id="GMM-full"),
                                       pytest.param("DP", "diag", id="DP-diag"),
                                       pytest.param("PY", "spherical", id="PY-spherical")])
def test_backend_trains_float32_data_like_numpy(other_backend, tmp_path, model, cv):
    """float32 data: the kernels compute distances in float32 (statistics in float64), so
    they agree with the numpy backend to float32's precision, not float64's."""
    X = blobs(240, BACKEND_D, seed=2).astype(np.float32)
    ref = start(model, BACKEND_K, cv, X, tmp_path / "numpy.h5", seed=4).fit(X, n_iter_fix=4)
    got = start(model, BACKEND_K, cv, X, tmp_path / "other.h5", backend=other_backend,
                seed=4).fit(X, n_iter_fix=4)
    tol = 1e-4
    for name in parameters(model):
        assert_rel(getattr(got, name), getattr(ref, name), tol, name)
    np.testing.assert_allclose(got.convergence_criterion_data, ref.convergence_criterion_data,
                               rtol=tol)
    assert_rel(got.predict_log_resp(X), ref.predict_log_resp(X), tol, "log responsibilities")


# -- 5. write / read_and_init ----------------------------------------------------------------
def starting(model, cv, X, K=3):
    """A model to fit: mixtures from responsibilities, Kmeans seeded by k-means++."""
    if model == "Kmeans":
        return Kmeans(K, init="plus", random_state=0, backend="numpy")
    return make(model, K, cv, init=responsibilities(len(X), K))


def trained(model, cv, X, K=3, n_iter=3):
    """A model trained a few iterations from :func:`starting`."""
    return starting(model, cv, X, K).fit(X, n_iter_fix=n_iter)


@pytest.mark.parametrize("model, cv", MODEL_CV)
def test_write_then_read_and_init_restores_the_model(tmp_path, model, cv):
    X = dataset("iris")
    m = trained(model, cv, X)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        m.write(f.create_group("model"))
    fresh = make(model, 3, cv)
    with h5py.File(tmp_path / "m.h5", "r") as f:
        fresh.read_and_init(f["model"], X)          # no warning: EMWarning is an error here
    for name in parameters(model):
        np.testing.assert_array_equal(getattr(fresh, name), getattr(m, name), err_msg=name)
    np.testing.assert_array_equal(fresh.predict_log_resp(X), m.predict_log_resp(X))
    assert fresh.score(X) == m.score(X)
    assert fresh.iter == m.iter
    if model in VARIATIONAL:
        assert fresh.pypcoeff == m.pypcoeff
    # it trains on from there, as the original run would have gone on
    fresh.fit(X, n_iter_fix=2)
    assert fresh.iter == m.iter + 2
    longer = trained(model, cv, X, n_iter=m.iter + 2)
    for name in parameters(model):
        assert_rel(getattr(fresh, name), getattr(longer, name), 1e-10, name)


def _kmeans_file_into_gaussian_mixture(group, X, cv, reg_covar=1e-6):
    g = GaussianMixture(len(group["means"]), cv, reg_covar=reg_covar, backend="numpy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g.read_and_init(group, X)
    assert [w.category for w in caught] == [em.EMWarning], [str(w.message) for w in caught]
    # the covariances are those of the points nearest each mean
    means = np.array(group["means"])
    labels = ((X[:, None, :] - means[None]) ** 2).sum(axis=-1).argmin(axis=1)
    for k in range(len(means)):
        cov = np.cov(X[labels == k].T, bias=True)
        want = {"full": cov + reg_covar * np.eye(X.shape[1]),
                "diag": np.diag(cov) + reg_covar,
                "spherical": np.diag(cov).mean() + reg_covar}[cv]
        np.testing.assert_allclose(g.cov[k], want, rtol=1e-10, err_msg=f"component {k}")
    np.testing.assert_array_equal(g.means, means)
    np.testing.assert_allclose(np.exp(g.log_weights), np.exp(np.array(group["log_weights"])),
                               rtol=1e-12)
    g.fit(X, n_iter_fix=2)                           # and it trains on
    assert np.isfinite(g.score(X))
    return g


@pytest.mark.parametrize("cv", COVARIANCE_TYPES)
def test_kmeans_file_initialises_a_gaussian_mixture(tmp_path, cv):
    """A file of megamix's Kmeans ('means', 'log_weights', no covariances), written by hand."""
    X = dataset("iris")
    km = kmeans_at(X[[0, 60, 120]] + 0.1, X, tmp_path / "c.h5").fit(X, n_iter_fix=5)
    write_group(tmp_path / "k.h5", "kmeans", means=km.means, log_weights=km.log_weights)
    with h5py.File(tmp_path / "k.h5", "r") as f:
        _kmeans_file_into_gaussian_mixture(f["kmeans"], X, cv)


def test_kmeans_written_file_initialises_a_gaussian_mixture(tmp_path):
    """The same with the file written by em's own Kmeans.write."""
    X = dataset("iris")
    km = Kmeans(3, random_state=0, backend="numpy").fit(X, n_iter_fix=5)
    with h5py.File(tmp_path / "k.h5", "w") as f:
        km.write(f.create_group("kmeans"))
    with h5py.File(tmp_path / "k.h5", "r") as f:
        _kmeans_file_into_gaussian_mixture(f["kmeans"], X, "full")



@pytest.mark.parametrize("model", MODELS)
def test_reading_another_number_of_components_warns_once_and_uses_the_files(tmp_path, model):
    X = dataset("iris")
    m = trained(model, "full", X)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        m.write(f.create_group("m"))
    fresh = make(model, 5, "full")
    with h5py.File(tmp_path / "m.h5", "r") as f, pytest.warns(em.EMWarning) as caught:
        fresh.read_and_init(f["m"], X)
    assert len(caught) == 1 and "3 components" in str(caught[0].message)
    assert fresh.n_components == 3
    np.testing.assert_allclose(fresh.predict_log_resp(X), m.predict_log_resp(X), rtol=1e-12,
                               atol=1e-12)

@pytest.mark.parametrize("model", MODELS)
def test_group_without_means_is_a_value_error_naming_it(tmp_path, model):
    X = dataset("iris")
    K, D = 3, X.shape[1]
    write_group(tmp_path / "m.h5", "m", log_weights=np.full(K, -np.log(K)),
                cov=np.repeat(np.eye(D)[None], K, axis=0))
    m = make(model, K)
    with h5py.File(tmp_path / "m.h5", "r") as f, pytest.raises(ValueError, match="'means'"):
        m.read_and_init(f["m"], X)


# -- 6. early stopping -----------------------------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
def test_early_stopping_restores_the_best_test_parameters(model):
    """Few training points, many components: the test criterion peaks, training stops after
    ``patience`` small improvements, and the parameters of the best test criterion are kept."""
    X_train, X_test = blobs(60, seed=5), blobs(600, seed=6)
    m = make(model, 8, "full", init="random", random_state=1)
    m.fit(X_train, X_test, tol=1e-4, patience=3, n_iter_max=200)
    data, test = m.convergence_criterion_data, m.convergence_criterion_test
    assert 0 < m.iter < 200
    assert len(data) == len(test) == m.iter + 1      # one entry per parameter set scored
    best = int(np.argmin(test) if model == "Kmeans" else np.argmax(test))  # k-means: distortion
    assert m.score(X_test) == pytest.approx(test[best], rel=1e-9)
    assert m.score(X_train) == pytest.approx(data[best], rel=1e-9)



@pytest.mark.parametrize("model", MODELS)
def test_tol_and_n_iter_max_stop_training(model):
    """Without test data training stops at the first iteration whose criterion per point
    improved by less than ``tol`` (patience 0), or after ``n_iter_max`` iterations."""
    X = blobs(300, seed=12)
    sign = -1.0 if model == "Kmeans" else 1.0      # k-means' history is the distortion
    m = make(model, 4, "diag", init="random", random_state=2).fit(X, tol=1e-3, n_iter_max=500)
    gains = sign * np.diff(m.convergence_criterion_data) / len(X)
    assert len(gains) == m.iter and 0 < m.iter < 500
    assert gains[-1] < 1e-3 and (gains[:-1] >= 1e-3).all(), gains
    m = make(model, 4, "diag", init="random", random_state=2).fit(X, tol=0, n_iter_max=7)
    assert m.iter == 7 and len(m.convergence_criterion_data) == 8

# -- 7. simplified_model ---------------------------------------------------------------------
def model_with_a_useless_component(model, cv, X, path):
    """The three blob components plus one far away with a tiny weight (index 1), read from a
    group written by hand: it wins no point."""
    D = X.shape[1]
    means = np.array([[0.0, 0, 0], [40, 40, 40], [5, 0, 0], [0, 5, 0]])
    w = np.array([0.33, 0.01, 0.33, 0.33])
    K = len(means)
    cov = {"full": np.repeat(np.eye(D)[None], K, axis=0), "diag": np.ones((K, D)),
           "spherical": np.ones(K)}[cv or "full"]
    extra = {}
    if model in VARIATIONAL:
        extra = {"initial parameters": np.array([1.0 / K, 1.0, D]),
                 "means prior": X.mean(axis=0),
                 "inv prec prior": {"full": np.cov(X.T), "diag": X.var(axis=0, ddof=1),
                                    "spherical": X.var(axis=0, ddof=1).mean()}[cv]}
    write_group(path, "m", means=means, log_weights=np.log(w), cov=cov, **extra)
    m = make(model, K, cv)
    with h5py.File(path, "r") as f:
        m.read_and_init(f["m"], X)
    if model == "Kmeans":
        m.fit(X, n_iter_fix=0)                        # log_weights: the shares of points won
    return m



def test_kmeans_log_weight_of_an_empty_cluster_is_minus_inf_without_a_warning(tmp_path):
    X = blobs(300)
    km = kmeans_at(np.array([[0.0, 0, 0], [40, 40, 40], [5, 0, 0]]), X, tmp_path / "c.h5")
    km.fit(X, n_iter_fix=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_weights = km.log_weights
    assert log_weights[1] == -np.inf and np.isfinite(log_weights[[0, 2]]).all()

@pytest.mark.parametrize("model, cv", MODEL_CV)
def test_simplified_model_drops_components_that_win_no_point(tmp_path, model, cv):
    X = blobs(300)
    m = model_with_a_useless_component(model, cv, X, tmp_path / "m.h5")
    log_resp = m.predict_log_resp(X)
    keep = np.unique(log_resp.argmax(axis=1))
    np.testing.assert_array_equal(keep, [0, 2, 3])
    s = m.simplified_model(X)
    assert s.n_components == 3
    np.testing.assert_array_equal(s.means, m.means[keep])
    # weights renormalised over the kept components
    w = np.exp(s.log_weights)
    assert w.sum() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(w, np.exp(m.log_weights[keep]) / np.exp(m.log_weights[keep]).sum(),
                               rtol=1e-12)
    # the kept components' predictions are unchanged (renormalised over them)
    want = log_resp[:, keep] - np.logaddexp.reduce(log_resp[:, keep], axis=1, keepdims=True)
    np.testing.assert_allclose(s.predict_log_resp(X), want, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(s.predict_log_resp(X).argmax(axis=1),
                                  np.searchsorted(keep, log_resp.argmax(axis=1)))
    # the original is untouched, and the simplified model trains on
    assert m.n_components == 4 and m.means.shape[0] == 4
    np.testing.assert_array_equal(m.predict_log_resp(X), log_resp)
    s.fit(X, n_iter_fix=1)
    assert s.means.shape == (3, X.shape[1]) and np.isfinite(s.score(X))


# -- 8. bad input ----------------------------------------------------------------------------
def _with(X, row, col, value):
    X = X.copy()
    X[row, col] = value
    return X


def _fitted(model, X):
    return make(model, 3, init="random", random_state=0).fit(X, n_iter_fix=1)


D_BAD = 3
X_BAD = blobs(60, D_BAD, seed=9)
RESP_BAD = responsibilities(60, 3, seed=9)
# id -> (models it applies to, call(model name), exception, message pattern)
BAD_INPUT = {
    "nan-in-points": (MODELS, lambda m: make(m, 3).fit(_with(X_BAD, 5, 1, np.nan)),
                      ValueError, "points_data contains NaN or infinite"),
    "inf-in-points": (MODELS, lambda m: make(m, 3).fit(_with(X_BAD, 7, 2, -np.inf)),
                      ValueError, "points_data contains NaN or infinite"),
    "nan-in-test-points": (MODELS, lambda m: make(m, 3).fit(X_BAD, _with(X_BAD, 0, 0, np.nan)),
                           ValueError, "points_test contains NaN or infinite"),
    "inf-in-predicted-points": (MODELS, lambda m: _fitted(m, X_BAD).predict_log_resp(
        _with(X_BAD, 3, 0, np.inf)), ValueError, "points contains NaN or infinite"),
    "1-D-points": (MODELS, lambda m: make(m, 3).fit(X_BAD[:, 0]), ValueError, "2-D"),
    "3-D-points": (MODELS, lambda m: make(m, 3).fit(X_BAD[None]), ValueError, "2-D"),
    "predict-wrong-dim": (MODELS, lambda m: _fitted(m, X_BAD).predict_log_resp(X_BAD[:, :2]),
                          ValueError, "2 columns but the model has D=3"),
    "score-wrong-dim": (MODELS, lambda m: _fitted(m, X_BAD).score(np.c_[X_BAD, X_BAD]),
                        ValueError, "6 columns but the model has D=3"),
    "test-points-wrong-dim": (MODELS, lambda m: make(m, 3).fit(X_BAD, X_BAD[:, :2]),
                              ValueError, "points_test has 2 columns"),
    "refit-wrong-dim": (MODELS, lambda m: _fitted(m, X_BAD).fit(X_BAD[:, :2]),
                        ValueError, "2 columns"),
    "nu_0-below-dim": (VARIATIONAL, lambda m: make(m, 3, nu_0=D_BAD - 2).fit(X_BAD),
                       ValueError, "nu_0"),
    "pypcoeff-negative": (("DP",), lambda m: DPVariationalGaussianMixture(3, pypcoeff=-0.1),
                          ValueError, "pypcoeff"),
    "pypcoeff-one": (("DP",), lambda m: DPVariationalGaussianMixture(3, pypcoeff=1.0),
                     ValueError, r"pypcoeff must be in \[0, 1\)"),
    "covariance-type": (MIXTURES, lambda m: make(m, 3, "tied"), ValueError, "covariance_type"),
    "init-name": (MODELS, lambda m: make(m, 3, init="kmeans++"), ValueError, "init must be"),
    "init-kmeans-for-kmeans": (("Kmeans",), lambda m: Kmeans(3, init="kmeans"), ValueError,
                               "init must be"),
    "init-VBGMM-for-GMM": (("GMM",), lambda m: GaussianMixture(3, init="VBGMM"), ValueError,
                           "init must be"),
    "resp-columns": (MIXTURES, lambda m: make(m, 3, init=RESP_BAD[:, :2]), ValueError,
                     r"responsibilities must be \(n_points, 3\)"),
    "resp-1-D": (MIXTURES, lambda m: make(m, 3, init=RESP_BAD[:, 0]), ValueError,
                 "responsibilities must be"),
    "resp-rows": (MIXTURES, lambda m: make(m, 3, init=RESP_BAD[:50]).fit(X_BAD), ValueError,
                  "50 rows but points_data has 60"),
    "resp-negative": (MIXTURES, lambda m: make(m, 3, init=_with(RESP_BAD, 4, 1, -0.1)),
                      ValueError, "non-negative"),
    "resp-nan": (MIXTURES, lambda m: make(m, 3, init=_with(RESP_BAD, 4, 1, np.nan)),
                 ValueError, "finite"),
    "resp-with-type_init-mcw": (MIXTURES, lambda m: make(m, 3, init=RESP_BAD, type_init="mcw"),
                                ValueError, "type_init='resp'"),
    "wishart-prior-full-shape": (VARIATIONAL, lambda m: make(
        m, 3, "full", cov_wishart_prior=np.eye(D_BAD - 1)).fit(X_BAD), ValueError,
        "cov_wishart_prior of a full model must have shape"),
    "wishart-prior-diag-shape": (VARIATIONAL, lambda m: make(
        m, 3, "diag", cov_wishart_prior=np.eye(D_BAD)).fit(X_BAD), ValueError,
        "cov_wishart_prior of a diag model must have shape"),
    "wishart-prior-spherical-shape": (VARIATIONAL, lambda m: make(
        m, 3, "spherical", cov_wishart_prior=np.ones(D_BAD)).fit(X_BAD), ValueError,
        "cov_wishart_prior of a spherical model must have shape"),
    "wishart-prior-not-definite": (VARIATIONAL, lambda m: make(
        m, 3, "full", cov_wishart_prior=-np.eye(D_BAD)).fit(X_BAD), ValueError,
        "cov_wishart_prior"),
    "means-prior-shape": (VARIATIONAL, lambda m: make(m, 3, means_prior=np.zeros(D_BAD + 1))
                          .fit(X_BAD), ValueError, "means_prior must have shape"),
    "reg_covar-string": (MIXTURES, lambda m: make(m, 3, reg_covar="1e-6"), TypeError,
                         "reg_covar must be a real number"),
    "reg_covar-None": (MIXTURES, lambda m: make(m, 3, reg_covar=None), TypeError, "reg_covar"),
    "reg_covar-negative": (MIXTURES, lambda m: make(m, 3, reg_covar=-1e-3), ValueError,
                           "reg_covar"),
    "n_components-zero": (MODELS, lambda m: make(m, 0), ValueError, "n_components"),
    "n_components-float": (MODELS, lambda m: make(m, 2.5), TypeError, "n_components"),
    "more-components-than-points": (MODELS, lambda m: make(m, 61).fit(X_BAD), ValueError,
                                    "from 60 points"),
    "saving-mode": (("GMM",), lambda m: make(m, 3).fit(X_BAD, saving="often"), ValueError,
                    "saving must be"),
    "not-fitted": (MODELS, lambda m: make(m, 3).predict_log_resp(X_BAD), ValueError,
                   "not initialised"),
}
BAD_CASES = [pytest.param(model, case, id=f"{case}-{model}")
             for case, (models, *_) in BAD_INPUT.items() for model in models]


@pytest.mark.parametrize("model, case", BAD_CASES)
def test_bad_input_raises_one_clear_exception(model, case):
    _, call, exc, pattern = BAD_INPUT[case]
    with pytest.raises(exc, match=pattern):
        call(model)


@pytest.mark.parametrize("model, cv", MODEL_CV)
def test_nothing_passed_in_is_mutated(tmp_path, model, cv):
    X, X_test = blobs(120, seed=3), blobs(40, seed=4)
    resp = responsibilities(len(X), 3, seed=5)
    kw = {}
    if model == "Kmeans":
        kw["init"] = "plus"
    else:
        kw["init"] = resp
    if model in VARIATIONAL:
        kw["means_prior"] = X.mean(axis=0) + 0.5
        kw["cov_wishart_prior"] = {"full": 2 * np.eye(3), "diag": np.full(3, 2.0),
                                   "spherical": np.float64(2.0)}[cv]
    before = {name: np.copy(value) for name, value in kw.items() if name != "init"}
    copies = X.copy(), X_test.copy(), resp.copy()
    m = make(model, 3, cv, random_state=0, **kw)
    resp[:] = 0.0                       # the model keeps its own copy of the responsibilities
    m.fit(X, X_test, n_iter_fix=3)
    if model != "Kmeans":
        ref = make(model, 3, cv, random_state=0, **{**kw, "init": copies[2]})
        np.testing.assert_array_equal(ref.fit(X, X_test, n_iter_fix=3).means, m.means)
    resp[:] = copies[2]
    m.predict_log_resp(X_test)
    m.score(X_test)
    m.simplified_model(X)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        m.write(f.create_group("m"))
    with h5py.File(tmp_path / "m.h5", "r") as f:
        make(model, 3, cv).read_and_init(f["m"], X)
    np.testing.assert_array_equal(X, copies[0])
    np.testing.assert_array_equal(X_test, copies[1])
    np.testing.assert_array_equal(resp, copies[2])
    for name, value in before.items():
        np.testing.assert_array_equal(kw[name], value, err_msg=name)


# -- 9. reproducibility ----------------------------------------------------------------------
INITS = {"Kmeans": ("random", "plus", "AF_KMC"),
         "GMM": ("random", "plus", "AF_KMC", "kmeans"),
         "VB": ("random", "plus", "AF_KMC", "kmeans", "GMM", "VBGMM"),
         "DP": ("random", "plus", "AF_KMC", "kmeans", "GMM", "VBGMM"),
         "PY": ("random", "kmeans", "GMM", "VBGMM")}
INIT_CASES = [pytest.param(model, init, id=f"{model}-{init}")
              for model, inits in INITS.items() for init in inits]


def _outcome(m, X):
    return {name: getattr(m, name) for name in parameters(m_name(m))} | {
        "log_resp": m.predict_log_resp(X), "history": np.array(m.convergence_criterion_data)}


def m_name(m) -> str:
    if isinstance(m, Kmeans):
        return "Kmeans"
    return "GMM" if isinstance(m, GaussianMixture) else "VB"


def _assert_same(a, b):
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.filterwarnings("ignore::em.fit.EMWarning")     # the sub-models may re-seed
@pytest.mark.parametrize("model, init", INIT_CASES)
def test_same_random_state_same_model(model, init):
    # five components on three blobs: where the extra two go depends on the seed
    X = blobs(300, D=2, seed=8)
    K = 5

    def run(seed):
        return _outcome(make(model, K, "full", init=init, random_state=seed)
                        .fit(X, n_iter_fix=2), X)

    first = run(7)
    _assert_same(first, run(7))
    other = run(8)
    assert not np.array_equal(first["means"], other["means"]), "seed 8 gave seed 7's model"


@pytest.mark.filterwarnings("ignore::em.fit.EMWarning")
@pytest.mark.parametrize("model", MODELS)
def test_refit_with_an_integer_random_state_is_reproducible(model):
    """As scikit-learn's estimators: an integer random_state makes fit() deterministic, so
    fitting the same instance again gives the same model."""
    X = blobs(300, D=2, seed=8)
    m = make(model, 5, "full", init="random", random_state=7)
    first = _outcome(m.fit(X, n_iter_fix=2), X)
    _assert_same(first, _outcome(m.fit(X, n_iter_fix=2), X))



@pytest.mark.parametrize("type_init", ["resp", "mcw"])
@pytest.mark.parametrize("cv", ["full", "spherical"])
@pytest.mark.parametrize("model", ["GMM", "VB", "DP"])
@pytest.mark.parametrize("init", ["random", "plus", "AF_KMC"])
def test_seeded_initialisation(init, model, cv, type_init):
    """A seeded start: the centres are those Kmeans draws with the same random_state (data
    rows); 'resp' then takes the M-step of the hard assignment to them (as an array of one-hot
    responsibilities would), 'mcw' gives them equal weights and the data's covariance."""
    X = blobs(300, seed=11)
    K, seed, reg = 4, 3, 1e-6
    centres = Kmeans(K, init=init, random_state=seed, backend="numpy").fit(X, n_iter_fix=0).means
    assert len(np.unique(centres, axis=0)) == K
    assert all((X == c).all(axis=1).any() for c in centres)
    m = make(model, K, cv, init=init, type_init=type_init, random_state=seed, reg_covar=reg)
    m.fit(X, n_iter_fix=0)
    if type_init == "resp":
        labels = ((X[:, None, :] - centres[None]) ** 2).sum(axis=-1).argmin(axis=1)
        one_hot = np.eye(K)[labels]
        ref = make(model, K, cv, init=one_hot, reg_covar=reg).fit(X, n_iter_fix=0)
        for name in parameters(model):
            assert_rel(getattr(m, name), getattr(ref, name), 1e-12, name)
        return
    np.testing.assert_array_equal(m.means, centres)
    var = X.var(axis=0)
    pooled = {"full": np.cov(X.T, bias=True) + reg * np.eye(X.shape[1]),
              "spherical": var.mean() + reg}[cv]
    for k in range(K):
        np.testing.assert_allclose(m.cov[k], pooled, rtol=1e-10)
    if model == "GMM":
        np.testing.assert_allclose(np.exp(m.log_weights), np.full(K, 1 / K), rtol=1e-14)
    else:                               # as if N / K points had been given to each component
        n_k = len(X) / K
        np.testing.assert_allclose(m.beta, 1.0 + n_k, rtol=1e-14)
        np.testing.assert_allclose(m.nu, X.shape[1] + n_k, rtol=1e-14)
        want_alpha = 1.0 / K + n_k if model == "VB" else stick_breaking(np.full(K, n_k),
                                                                        1.0 / K, 0.0)[0]
        np.testing.assert_allclose(m.alpha, want_alpha, rtol=1e-14)

# -- 10. checkpoints -------------------------------------------------------------------------
def _fresh_from(path, group, model, X):
    fresh = make(model, 3, "full")
    with h5py.File(path, "r") as f:
        fresh.read_and_init(f[group], X)
    return fresh


@pytest.mark.parametrize("model", MODELS)
def test_linear_saving_writes_checkpoints(tmp_path, model):
    X = dataset("iris")
    m = starting(model, "full", X)                   # the same start as trained(..., n_iter=k)
    m.fit(X, n_iter_fix=5, saving="linear", saving_iter=2, file_name=str(tmp_path / "m"))
    path = tmp_path / "m.h5"
    with h5py.File(path, "r") as f:
        assert set(f) == {"init", "iter2", "iter4", "best"}
    best = _fresh_from(path, "best", model, X)
    np.testing.assert_allclose(best.predict_log_resp(X), m.predict_log_resp(X),
                               rtol=1e-12, atol=1e-12)
    assert best.score(X) == pytest.approx(m.score(X), rel=1e-12)
    # 'iter2' holds the parameters after two iterations, 'init' the initial ones
    for group, n_iter in (("iter2", 2), ("init", 0)):
        ckpt = _fresh_from(path, group, model, X)
        ref = trained(model, "full", X, n_iter=n_iter)
        np.testing.assert_allclose(ckpt.predict_log_resp(X), ref.predict_log_resp(X),
                                   rtol=1e-12, atol=1e-12, err_msg=group)


def test_checkpoints_record_their_iteration(tmp_path):
    """A checkpoint's 'iter' attribute is its iteration (megamix: group 'iterN' has iter N), so
    a model read from it continues counting from there."""
    X = dataset("iris")
    m = starting("GMM", "full", X)
    m.fit(X, n_iter_fix=5, saving="linear", saving_iter=2, file_name=str(tmp_path / "m"))
    with h5py.File(tmp_path / "m.h5", "r") as f:
        got = {name: int(f[name].attrs["iter"]) for name in f}
    assert got == {"init": 0, "iter2": 2, "iter4": 4, "best": 5}


@pytest.mark.parametrize("saving, n_iter, groups", [
    ("log", 9, {"init", "iter1", "iter2", "iter4", "iter8", "best"}),
    ("final", 4, {"init", "best"}),
])
def test_log_and_final_saving(tmp_path, saving, n_iter, groups):
    X = dataset("iris")
    m = starting("VB", "diag", X)
    m.fit(X, n_iter_fix=n_iter, saving=saving, saving_iter=2, file_name=str(tmp_path / "m"))
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert set(f) == groups
    fresh = make("VB", 3, "diag")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        fresh.read_and_init(f["best"], X)
    np.testing.assert_array_equal(fresh.predict_log_resp(X), m.predict_log_resp(X))


def test_fit_prints_nothing_unless_verbose(capsys):
    X = np.random.default_rng(0).normal(size=(200, 2))
    GaussianMixture(2, random_state=0, backend="numpy").fit(X, n_iter_fix=2)
    assert capsys.readouterr().out == ""
    m = GaussianMixture(2, random_state=0, backend="numpy").fit(X, X[:50], n_iter_fix=2,
                                                                  verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(", test " in line for line in lines)
    assert float(lines[-1].split(": ")[1].split(",")[0]) == pytest.approx(
        m.convergence_criterion_data[-1])
