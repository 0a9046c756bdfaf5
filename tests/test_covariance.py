"""The covariance-type records (em/models/covariance.py): every type's operations agree with
the same computation done on its covariance matrices."""
import numpy as np
import pytest

from em.models import covariance as C
from em.models.covariance import COVARIANCE_TYPES, CVTYPES, CovarianceError, of

K, D = 3, 4


def _covs(name, rng):
    """Valid covariances of K components in the type's own shape."""
    A = rng.normal(size=(K, D, D))
    full = A @ A.transpose(0, 2, 1) + D * np.eye(D)
    return {"full": full, "diag": np.einsum("kii->ki", full),
            "spherical": np.einsum("kii->k", full) / D}[name]


def test_one_list_of_types():
    assert COVARIANCE_TYPES == ("full", "diag", "spherical")
    assert CVTYPES == ("diag", "full")
    assert {of(t).kernel for t in COVARIANCE_TYPES} == set(CVTYPES)
    with pytest.raises(ValueError, match="covariance type must be one of"):
        of("tied")


@pytest.mark.parametrize("name", COVARIANCE_TYPES)
def test_record_agrees_with_its_matrices(name):
    T, rng = of(name), np.random.default_rng(0)
    cov = _covs(name, rng)
    assert cov.shape == T.shape(K, D)
    mats = T.matrices(cov, D)
    assert mats.shape == (K, D, D)
    np.testing.assert_array_equal(T.variances(cov, D), np.einsum("kii->ki", mats))
    # precision in the kernel form's shape: P = U U^T (full) or its diagonal
    prec, half_logdet = T.precision(cov, D)
    P = prec[:, :, None] * np.eye(D) if T.kernel == "diag" else prec @ prec.transpose(0, 2, 1)
    np.testing.assert_allclose(P, np.linalg.inv(mats), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(half_logdet, -0.5 * np.linalg.slogdet(mats)[1], rtol=1e-12)
    np.testing.assert_allclose(T.logdet(cov, D), np.linalg.slogdet(mats)[1], rtol=1e-12)
    # the variational terms
    prior = T.from_kernel(np.eye(D) if T.kernel == "full" else np.ones(D))
    diff = rng.normal(size=(K, D))
    logdet, trace, quad = T.inverse_terms(cov, prior, diff)
    inv = np.linalg.inv(mats)
    np.testing.assert_allclose(logdet, np.linalg.slogdet(mats)[1], rtol=1e-12)
    np.testing.assert_allclose(trace, np.einsum("kii->k", inv), rtol=1e-12)
    np.testing.assert_allclose(quad, np.einsum("ki,kij,kj->k", diff, inv, diff), rtol=1e-12)


@pytest.mark.parametrize("name", COVARIANCE_TYPES)
def test_moments_in_the_types_shape(name):
    """outer / each / from_raw / floored: the type's reduction of the full computation."""
    T, rng = of(name), np.random.default_rng(1)
    d, a = rng.normal(size=(K, D)), rng.uniform(1, 2, size=K)
    full = C.TYPES["full"]
    want = full.outer(d) * a[:, None, None]
    got = T.matrices(T.each(a) * T.outer(d), D)
    if name == "spherical":                          # one variance: the mean of the diagonal
        want = np.einsum("kii->k", want)[:, None, None] / D * np.eye(D)
    elif name == "diag":
        want = want * np.eye(D)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    raw = full.outer(d) + 0.5 * np.eye(D)
    cov = T.from_raw(raw if T.kernel == "full" else np.einsum("kii->ki", raw), 0.25)
    np.testing.assert_allclose(T.variances(cov, D).mean(axis=1),
                               np.einsum("kii->ki", raw).mean(axis=1) + 0.25, rtol=1e-12)
    floor = np.full(D, 100.0)
    assert (T.variances(T.floored(cov, floor), D) >= 100.0).all()


@pytest.mark.parametrize("name", COVARIANCE_TYPES)
def test_check_names_the_problem(name):
    T = of(name)
    cov = _covs(name, np.random.default_rng(2))
    T.check(cov)
    bad = cov.copy()
    bad[1] = -bad[1]
    with pytest.raises(CovarianceError, match=r"prior"):
        T.check(bad, "prior")


def test_diag_accepts_diagonal_matrices_only():
    T = of("diag")
    var = np.ones((K, D))
    np.testing.assert_array_equal(T.canonical(var[:, :, None] * np.eye(D), K, D), var)
    with pytest.raises(ValueError, match="diagonal matrices"):
        T.canonical(np.ones((K, D, D)), K, D)
