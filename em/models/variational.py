"""Hooks of the variational Bayesian Gaussian mixtures for :func:`em.fit.run` (Bishop ch. 10.2;
Blei & Jordan 2006 for the Dirichlet process; Pitman-Yor sticks as in Ishwaran & James 2001).

q(theta) = q(pi) prod_k N(mu_k | m_k, (beta_k Lambda_k)^-1) W(Lambda_k | W_k, nu_k).  ``cov``
holds W_k^-1 / nu_k (the expected covariance, scikit-learn's ``covariances_``) in the covariance
type's shape; diag and spherical models are Wisharts with diagonal / scalar scale matrices, as
in scikit-learn.  ``log_weights`` are E[log pi_k] (they do not sum to one in probability).

The E-step is a scoring form: log_const_k = E[log pi_k] + 1/2 E[log|Lambda_k|] - D/2 log 2pi
- D / (2 beta_k), precision nu_k W_k; with the optimal q(Z) the evidence lower bound is the
pass's log-likelihood minus KL(q(theta) || p(theta)), so no N x K matrix is needed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import betaln, digamma, gammaln, multigammaln

from em.models import gaussian as G
from em.models.covariance import of


@dataclass(frozen=True)
class Prior:
    """alpha_0: weight concentration; beta_0: mean precision; nu_0: Wishart degrees of freedom
    (>= D); means_prior (D,); cov_prior: W_0^-1 in the covariance type's shape ((D, D), (D,)
    or a scalar); pypcoeff: Pitman-Yor discount d (0: Dirichlet process); sticks: stick-breaking
    weights (DP / Pitman-Yor) instead of a finite Dirichlet distribution."""

    alpha_0: float
    beta_0: float
    nu_0: float
    means_prior: np.ndarray
    cov_prior: np.ndarray
    pypcoeff: float = 0.0
    sticks: bool = False


@dataclass(frozen=True)
class VariationalParams:
    """log_weights E[log pi] (K,); means m (K, D); cov W^-1 / nu; alpha: (K,) Dirichlet
    concentrations or (K, 2) Beta parameters of the sticks; beta (K,); nu (K,)."""

    log_weights: np.ndarray
    means: np.ndarray
    cov: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    nu: np.ndarray

    def subset(self, keep) -> "VariationalParams":
        lw = self.log_weights[keep]
        return VariationalParams(lw - np.logaddexp.reduce(lw), self.means[keep], self.cov[keep],
                                 self.alpha[keep], self.beta[keep], self.nu[keep])


def expected_log_weights(alpha: np.ndarray) -> np.ndarray:
    """E[log pi_k]: Dirichlet psi(alpha_k) - psi(sum alpha); sticks (K, 2):
    E[log V_k] + sum_{j<k} E[log(1 - V_j)]."""
    if alpha.ndim == 1:
        return digamma(alpha) - digamma(alpha.sum())
    both = digamma(alpha.sum(axis=1))
    log_v, log_1mv = digamma(alpha[:, 0]) - both, digamma(alpha[:, 1]) - both
    return log_v + np.concatenate(([0.0], np.cumsum(log_1mv)[:-1]))


def stick_prior(K: int, alpha_0: float, d: float) -> np.ndarray:
    """Prior Beta parameters of the K sticks: V_k ~ Beta(1 - d, alpha_0 + k d), k = 1..K."""
    return np.stack([np.full(K, 1.0 - d), alpha_0 + d * np.arange(1, K + 1)], axis=1)


class Variational:
    """Variational Bayes; the criterion is the evidence lower bound."""

    hard = False

    def __init__(self, cvtype: str, reg_covar: float, prior: Prior):
        self.cvtype, self.reg_covar, self.prior = cvtype, reg_covar, prior

    # -- q(pi) ---------------------------------------------------------------------------
    def weight_posterior(self, N: np.ndarray) -> np.ndarray:
        """Dirichlet: alpha_0 + N_k; sticks: prior + (N_k, sum_{j>k} N_j)."""
        pr = self.prior
        if not pr.sticks:
            return pr.alpha_0 + N
        tail = np.concatenate((np.cumsum(N[::-1])[-2::-1], [0.0]))
        return stick_prior(len(N), pr.alpha_0, pr.pypcoeff) + np.stack([N, tail], axis=1)

    def _weight_kl(self, alpha: np.ndarray) -> float:
        pr = self.prior
        if not pr.sticks:
            a0 = np.full_like(alpha, pr.alpha_0)
            total = alpha.sum()
            return float(gammaln(total) - gammaln(alpha).sum() - gammaln(a0.sum())
                         + gammaln(a0).sum()
                         + ((alpha - a0) * (digamma(alpha) - digamma(total))).sum())
        p = stick_prior(len(alpha), pr.alpha_0, pr.pypcoeff)
        a, b, a0, b0 = alpha[:, 0], alpha[:, 1], p[:, 0], p[:, 1]
        return float((betaln(a0, b0) - betaln(a, b) + (a - a0) * digamma(a)
                      + (b - b0) * digamma(b) + (a0 - a + b0 - b) * digamma(a + b)).sum())

    # -- hooks ---------------------------------------------------------------------------
    def expected_log_det(self, p: VariationalParams, half_logdet_prec) -> np.ndarray:
        """E[log|Lambda_k|] = sum_i psi((nu - i) / 2) + D log 2 + log|W|, with
        log|W| = log|(nu cov)^-1| = 2 * (1/2 log|cov^-1|) - D log nu."""
        D = p.means.shape[1]
        psi = digamma(0.5 * (p.nu[:, None] - np.arange(D))).sum(axis=1)
        return psi + D * np.log(2.0) + 2.0 * half_logdet_prec - D * np.log(p.nu)

    def form(self, p: VariationalParams):
        D = p.means.shape[1]
        return G.gaussian_form(
            p.means, p.cov, self.cvtype,
            lambda h: (p.log_weights + 0.5 * self.expected_log_det(p, h)
                       - 0.5 * D * G.LOG_2PI - 0.5 * D / p.beta))

    def m_step(self, stats) -> VariationalParams:
        pr = self.prior
        N, xbar, S = G.moments(stats, self.cvtype, self.reg_covar)
        alpha = self.weight_posterior(N)
        beta = pr.beta_0 + N
        nu = pr.nu_0 + N
        means = (pr.beta_0 * pr.means_prior + N[:, None] * xbar) / beta[:, None]
        shrink = N * pr.beta_0 / beta
        T = of(self.cvtype)
        cov = (pr.cov_prior + T.each(N) * S + T.each(shrink) * T.outer(xbar - pr.means_prior)) \
            / T.each(nu)
        return VariationalParams(expected_log_weights(alpha), means, cov, alpha, beta, nu)

    def kl(self, p: VariationalParams) -> float:
        """KL(q(theta) || p(theta)) of the weights and the Normal-Wisharts."""
        pr = self.prior
        D = p.means.shape[1]
        T = of(self.cvtype)
        logdet_cov, trace_prior, quad = T.inverse_terms(p.cov, pr.cov_prior,
                                                        p.means - pr.means_prior)
        nu, beta = p.nu, p.beta
        log_w = -(logdet_cov + D * np.log(nu))                  # log|W_k|, W = (nu cov)^-1
        log_w0 = -T.logdet(pr.cov_prior, D)
        psi_d = digamma(0.5 * (nu[:, None] - np.arange(D))).sum(axis=1)
        wishart = (-0.5 * pr.nu_0 * (log_w - log_w0) + 0.5 * nu * (trace_prior / nu - D)
                   + multigammaln(0.5 * pr.nu_0, D) - _multigammaln(0.5 * nu, D)
                   + 0.5 * (nu - pr.nu_0) * psi_d)
        normal = 0.5 * (D * np.log(beta / pr.beta_0) - D + D * pr.beta_0 / beta
                        + pr.beta_0 * quad)
        return float((wishart + normal).sum()) + self._weight_kl(p.alpha)

    def objective(self, p, loglik: float) -> float:
        return loglik - self.kl(p)

    def dead(self, stats) -> np.ndarray:
        return np.empty(0, dtype=np.int64)          # the prior keeps an empty component valid

    def from_moments(self, weights, means, cov, n_points: int) -> VariationalParams:
        """q(theta) whose expectations are these weights, means and covariances, as if
        ``weights * n_points`` samples had been assigned to each component."""
        N = np.asarray(weights, dtype=np.float64) * n_points
        alpha = self.weight_posterior(N)
        return VariationalParams(expected_log_weights(alpha), means, cov, alpha,
                                 self.prior.beta_0 + N, self.prior.nu_0 + N)


def _multigammaln(a: np.ndarray, D: int) -> np.ndarray:
    """log Gamma_D(a) for each a (scipy's takes one scalar)."""
    return gammaln(a[:, None] - 0.5 * np.arange(D)).sum(axis=1) + 0.25 * D * (D - 1) * np.log(np.pi)

