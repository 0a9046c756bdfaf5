"""The numpy reference backend: the oracle every compiled backend is tested against.

Clear rather than fast.  Data is visited in chunks of rows, each converted to float64, so memory
stays O(chunk x max(M, D)) and no N x M x D temporary exists.  Each component's moments are
taken about its own current mean (x - mu_k, as scikit-learn does), or about the points the caller
gives (the new means, where a mean moved far beyond its spread), so they do not cancel.
"""
from __future__ import annotations

import numpy as np

from em.backends.base import Backend, Prepared
from em.contract import ScoringForm, Stats

CHUNK_ELEMENTS = 1 << 17          # 1 MB of float64 per chunk temporary: stays in cache
SMALL_D = 8                       # full covariance up to this D: a feature at a time, all M


class NumpyBackend(Backend):
    name = "numpy"
    exact_beyond = {"float32": 1e6, "float64": 1e6}      # float64 sums for both
    centred = False

    def __init__(self, chunk_rows: int | None = None):
        self.chunk_rows = chunk_rows

    # -- helpers -------------------------------------------------------------------------
    def _chunks(self, prep: Prepared, form: ScoringForm):
        """Yield (row slice, float64 chunk, log rho (rows, M))."""
        rows = self.chunk_rows or max(64, CHUNK_ELEMENTS // max(form.M, form.D, 1))
        for start in range(0, prep.N, rows):
            sl = slice(start, min(start + rows, prep.N))
            x = prep.X[sl].astype(np.float64)
            yield sl, x, _log_rho(x, form)

    # -- the contract --------------------------------------------------------------------
    def stats_pass(self, prep: Prepared, form: ScoringForm, hard: bool = False,
                   about: np.ndarray | None = None) -> Stats:
        M, D = form.M, form.D
        shift = form.means if about is None else np.asarray(about, dtype=np.float64)
        N = np.zeros(M)
        S1 = np.zeros((M, D))
        S2 = np.zeros((M, D) if form.cvtype == "diag" else (M, D, D))
        loglik = 0.0
        for sl, x, log_rho in self._chunks(prep, form):
            if hard:
                best = log_rho.argmax(axis=1)
                ll = log_rho[np.arange(len(best)), best]
                resp = np.zeros_like(log_rho)
                resp[np.arange(len(best)), best] = 1.0
            else:
                ll = _logsumexp(log_rho)
                resp = np.exp(log_rho - ll[:, None])
            if prep.weight is not None:
                w = prep.weight[sl]
                resp *= w[:, None]
                loglik += float(w @ ll)
            else:
                loglik += float(ll.sum())
            N += resp.sum(axis=0)
            if form.cvtype == "diag":                          # a feature at a time: (rows, M)
                for d in range(D):
                    u = x[:, d, None] - shift[:, d]
                    ru = resp * u
                    S1[:, d] += ru.sum(axis=0)
                    np.multiply(ru, u, out=ru)
                    S2[:, d] += ru.sum(axis=0)
            elif D <= SMALL_D:                                 # a pair of features at a time
                us = [x[:, d, None] - shift[:, d] for d in range(D)]
                for i in range(D):
                    ru = resp * us[i]
                    S1[:, i] += ru.sum(axis=0)
                    for j in range(i, D):
                        S2[:, i, j] += (ru * us[j]).sum(axis=0)
                        S2[:, j, i] = S2[:, i, j]
            else:
                for ks, u in _differences(x, shift):          # (rows, block, D)
                    ru = u * resp[:, ks, None]
                    S1[ks] += ru.sum(axis=0)
                    S2[ks] += ru.transpose(1, 2, 0) @ u.transpose(1, 0, 2)
        return Stats(loglik, N, S1, S2, shift.copy())

    def loglik(self, prep: Prepared, form: ScoringForm) -> np.ndarray:
        out = np.empty(prep.N)
        for sl, _, log_rho in self._chunks(prep, form):
            out[sl] = _logsumexp(log_rho)
        return out

    def log_posteriors(self, prep: Prepared, form: ScoringForm):
        ll = np.empty(prep.N)
        post = np.empty((prep.N, form.M))
        for sl, _, log_rho in self._chunks(prep, form):
            ll[sl] = _logsumexp(log_rho)
            post[sl] = log_rho - ll[sl, None]
        return ll, post

    def argmax(self, prep: Prepared, form: ScoringForm) -> np.ndarray:
        out = np.empty(prep.N, dtype=np.int64)
        for sl, _, log_rho in self._chunks(prep, form):
            out[sl] = log_rho.argmax(axis=1)
        return out


def _logsumexp(log_rho: np.ndarray) -> np.ndarray:
    """log sum_k exp(log_rho[:, k]) per row, the maximum taken out (rows of -inf give -inf)."""
    mx = log_rho.max(axis=1)
    safe = np.where(np.isfinite(mx), mx, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.exp(log_rho - safe[:, None]).sum(axis=1))


def _differences(x: np.ndarray, means: np.ndarray):
    """Yield (slice of components, x - mu_k for them (rows, block, D)): blocks of components
    sized so that one block of differences is about CHUNK_ELEMENTS."""
    M, D = means.shape
    block = max(1, CHUNK_ELEMENTS // max(x.shape[0] * D, 1))
    for k0 in range(0, M, block):
        ks = slice(k0, min(k0 + block, M))
        yield ks, x[:, None, :] - means[None, ks, :]


def _log_rho(x: np.ndarray, form: ScoringForm) -> np.ndarray:
    """log rho (rows, M), from the differences x - mu_k (no cancelling expansion): diag a
    feature at a time over all components, full a block of components at a time."""
    quad = np.zeros((x.shape[0], form.M))
    if form.cvtype == "diag":
        for d in range(form.D):
            u = x[:, d, None] - form.means[:, d]
            np.multiply(u, u, out=u)
            np.multiply(u, form.prec[:, d], out=u)
            quad += u
    elif form.D <= SMALL_D:                  # y_j = sum_{i <= j} u_i U_ij, over all components
        us = [x[:, d, None] - form.means[:, d] for d in range(form.D)]
        for j in range(form.D):
            y = sum(us[i] * form.prec[:, i, j] for i in range(j + 1))
            quad += y * y
    else:
        for ks, u in _differences(x, form.means):
            y = u.transpose(1, 0, 2) @ form.prec[ks]          # (block, rows, D)
            quad[:, ks] = np.einsum("knd,knd->nk", y, y)
    return form.log_const - 0.5 * quad
