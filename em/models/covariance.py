"""One record per covariance type: its parameter shape and the few operations that differ by
type, chosen through :data:`TYPES` (scikit-learn's ``_gaussian_mixture.py`` does the same with a
dict of small functions).  Models, validation and model files ask the record; only the kernel
contract and backends branch, on the two scoring forms kernels compile (:data:`CVTYPES`).

Shapes for K components in D dimensions: 'full' (K, D, D) matrices, 'diag' (K, D) variances,
'spherical' (K,) one variance per component, scored through the diagonal form.  Adding a type
is one subclass here and one entry in :data:`TYPES`.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular


class CovarianceError(ValueError):
    """A covariance matrix is not symmetric positive definite."""


def cholesky_lower(covars: np.ndarray, what: str = "covars") -> np.ndarray:
    """Lower Cholesky factors of a stack of covariances, naming the first bad component."""
    try:
        return np.linalg.cholesky(covars)
    except np.linalg.LinAlgError:
        pass
    for k, cov in enumerate(covars):
        try:
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise CovarianceError(
                f"{what}[{k}] is not positive definite; for a trained model increase reg_covar"
            ) from None
    raise CovarianceError(f"{what} is not positive definite")


class Diag:
    """(K, D) variances; the kernels' diagonal form."""

    name = kernel = "diag"

    def shape(self, K: int, D: int) -> tuple:
        return (K, D)

    def each(self, a: np.ndarray) -> np.ndarray:
        """A per-component scalar (K,) shaped to broadcast against (K, ...) covariances."""
        return a[:, None]

    def outer(self, d: np.ndarray) -> np.ndarray:
        """d d^T of offsets (K, D) in this type's shape."""
        return d * d

    def symmetrised(self, cov: np.ndarray) -> np.ndarray:
        """Covariances made exactly symmetric (matrices: (C + C^T) / 2)."""
        return cov

    def from_kernel(self, cov: np.ndarray) -> np.ndarray:
        """Covariances in the kernel form's shape (variances here) in this type's."""
        return cov

    def from_raw(self, raw: np.ndarray, reg_covar: float) -> np.ndarray:
        """Covariances from raw second moments about the means (kernel shape) plus reg_covar."""
        return self.from_kernel(np.maximum(raw, 0.0) + reg_covar)

    def pooled(self, cov: np.ndarray, reg_covar: float) -> np.ndarray:
        """One component's covariance from the data's (kernel shape), plus reg_covar."""
        return self.from_raw(cov, reg_covar)

    def precision(self, cov: np.ndarray, D: int):
        """(precision in the kernel form's shape, 1/2 log|P| per component)."""
        prec = 1.0 / cov
        return prec, 0.5 * np.log(prec).sum(axis=1)

    def floored(self, cov: np.ndarray, floor: np.ndarray) -> np.ndarray:
        """Every variance at least ``floor`` (D,)."""
        return np.maximum(cov, floor)

    def variances(self, cov: np.ndarray, D: int) -> np.ndarray:
        """(K, D) variances (the diagonals)."""
        return cov

    def matrices(self, cov: np.ndarray, D: int) -> np.ndarray:
        """(K, D, D) covariance matrices."""
        return self.variances(cov, D)[:, :, None] * np.eye(D)

    def canonical(self, cov: np.ndarray, K: int, D: int) -> np.ndarray:
        """Accepted spellings of given covariances in this type's shape: diagonal matrices
        stand for their variances."""
        if cov.shape == (K, D, D):
            off = cov - np.einsum("kii->ki", cov)[:, :, None] * np.eye(D)
            if np.any(off != 0):
                raise ValueError(f"covars of a {self.name} model must be diagonal matrices "
                                 "(or an M x D array of variances)")
            return np.einsum("kii->ki", cov)
        return cov

    def check(self, cov: np.ndarray, what: str = "covars") -> None:
        """Raise :class:`CovarianceError` unless ``cov`` (K, ...) are valid covariances."""
        if (cov <= 0).any():
            raise CovarianceError(f"variances ({what}) of a {self.name} model must be positive")

    def logdet(self, cov: np.ndarray, D: int) -> np.ndarray:
        """log|cov| per component (or of one prior covariance)."""
        return np.log(cov).sum(axis=-1)

    def inverse_terms(self, cov, cov_prior, diff):
        """Per component: log|cov|, Tr(cov_prior cov^-1), diff^T cov^-1 diff."""
        return np.log(cov).sum(axis=1), (cov_prior / cov).sum(axis=1), (diff ** 2 / cov).sum(1)


class Spherical(Diag):
    """(K,) one variance per component, scored through the diagonal form."""

    name = "spherical"

    def shape(self, K, D):
        return (K,)

    def each(self, a):
        return a

    def outer(self, d):
        return np.mean(d ** 2, axis=1)

    def from_kernel(self, cov):
        return cov.mean(axis=-1)

    def precision(self, cov, D):
        return np.repeat((1.0 / cov)[:, None], D, axis=1), -0.5 * D * np.log(cov)

    def floored(self, cov, floor):
        return np.maximum(cov, floor.mean())

    def variances(self, cov, D):
        return np.repeat(cov[:, None], D, axis=1)

    def canonical(self, cov, K, D):
        return cov

    def logdet(self, cov, D):
        return D * np.log(cov)

    def inverse_terms(self, cov, cov_prior, diff):
        D = diff.shape[1]
        return D * np.log(cov), D * cov_prior / cov, (diff ** 2).sum(axis=1) / cov


class Full:
    """(K, D, D) matrices; the kernels' full form (upper Cholesky factors of the precision)."""

    name = kernel = "full"

    def shape(self, K, D):
        return (K, D, D)

    def each(self, a):
        return a[:, None, None]

    def outer(self, d):
        return d[:, :, None] * d[:, None, :]

    def symmetrised(self, cov):
        return 0.5 * (cov + cov.transpose(0, 2, 1))

    def from_kernel(self, cov):
        return cov

    def from_raw(self, raw, reg_covar):
        """Symmetrised, reg_covar on the diagonal, repaired if rounding left it indefinite."""
        cov = self.symmetrised(raw)
        idx = np.arange(cov.shape[1])
        cov[:, idx, idx] += reg_covar
        _repair_definiteness(cov, reg_covar)
        return cov

    def pooled(self, cov, reg_covar):
        return cov + reg_covar * np.eye(cov.shape[0])

    def precision(self, cov, D):
        """Upper factors U of the precision (P = U U^T) and 1/2 log|P|."""
        chol = cholesky_lower(cov)
        return _upper_precision_factors(chol), -np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1)

    def floored(self, cov, floor):
        """Diagonals raised to ``floor`` (adding a non-negative diagonal keeps a matrix
        positive definite)."""
        cov = cov.copy()
        idx = np.arange(cov.shape[1])
        cov[:, idx, idx] = np.maximum(cov[:, idx, idx], floor)
        return cov

    def variances(self, cov, D):
        return np.einsum("kii->ki", cov)

    def matrices(self, cov, D):
        return cov

    def canonical(self, cov, K, D):
        return cov

    def check(self, cov, what="covars"):
        if not np.allclose(cov, cov.transpose(0, 2, 1), rtol=1e-10, atol=0):
            raise CovarianceError(f"{what} must be symmetric matrices")
        cholesky_lower(cov, what)

    def logdet(self, cov, D):
        return np.linalg.slogdet(cov)[1]

    def inverse_terms(self, cov, cov_prior, diff):
        L = cholesky_lower(cov)
        logdet = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
        inv = np.linalg.inv(cov)
        return logdet, np.einsum("ij,kji->k", cov_prior, inv), \
            np.einsum("ki,kij,kj->k", diff, inv, diff)


TYPES = {t.name: t for t in (Full(), Diag(), Spherical())}
COVARIANCE_TYPES = tuple(TYPES)                                  # the megamix classes' order
CVTYPES = tuple(sorted({t.kernel for t in TYPES.values()}))      # the kernels' scoring forms


def of(cvtype: str):
    """The record of a covariance type name."""
    try:
        return TYPES[cvtype]
    except (KeyError, TypeError):
        raise ValueError(f"covariance type must be one of {COVARIANCE_TYPES}, "
                         f"got {cvtype!r}") from None


def _upper_precision_factors(chol: np.ndarray) -> np.ndarray:
    """U_k = (L_k^-1)^T for lower factors L_k (P = U U^T): one batched inverse for small D
    (a per-matrix call costs more than the work there), triangular solves for large D."""
    D = chol.shape[-1]
    if D <= 64:
        return np.triu(np.linalg.inv(chol).transpose(0, 2, 1))
    eye = np.eye(D)
    return np.stack([solve_triangular(L, eye, lower=True).T for L in chol])


def _repair_definiteness(covars: np.ndarray, reg_covar: float) -> None:
    """In place: a covariance (+ reg_covar) that rounding left slightly indefinite -- a
    component with fewer points than dimensions is singular before the regulariser, float32
    statistics round at 1e-7 of the data's scale, an outlier can stretch one axis by 1e30 --
    gets the negative eigenvalues of its correlation matrix clipped to 0 before reg_covar is
    added back, as exact arithmetic would have had it.  (Working on the correlation matrix
    keeps the repair exact whatever the ratio of the variances.)  Where even that is not
    representable in float64, the component keeps only its variances."""
    try:
        np.linalg.cholesky(covars)
        return
    except np.linalg.LinAlgError:
        pass
    eye = np.eye(covars.shape[1])
    for k, cov in enumerate(covars):
        try:
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            bare = cov - reg_covar * eye
            scale = np.sqrt(np.maximum(np.diag(bare), np.finfo(float).tiny))
            w, V = np.linalg.eigh(bare / np.outer(scale, scale))
            corr = (V * np.maximum(w, 0.0)) @ V.T
            fixed = 0.5 * (corr + corr.T) * np.outer(scale, scale) + reg_covar * eye
            try:
                np.linalg.cholesky(fixed)
            except np.linalg.LinAlgError:
                fixed = np.diag(np.diag(cov))
            covars[k] = fixed
