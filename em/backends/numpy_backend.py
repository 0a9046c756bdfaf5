"""The numpy reference backend: the oracle every compiled backend is tested against.

Clear rather than fast.  Data is visited in chunks of rows, each converted to float64, so memory
stays O(chunk x max(M, D)) and no N x M x D temporary exists.  Each component's moments are
taken about its own current mean (x - mu_k, as scikit-learn does), so they never cancel.
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from em.backends.base import Backend, Prepared
from em.models.gaussian import ScoringForm, Stats

CHUNK_ELEMENTS = 1 << 20          # about 8 MB of float64 per chunk temporary


class NumpyBackend(Backend):
    name = "numpy"

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
    def fused_stats(self, prep: Prepared, form: ScoringForm, hard: bool = False) -> Stats:
        M, D = form.M, form.D
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
                ll = logsumexp(log_rho, axis=1)
                resp = np.exp(log_rho - ll[:, None])
            if prep.weight is not None:
                w = prep.weight[sl]
                resp *= w[:, None]
                loglik += float(w @ ll)
            else:
                loglik += float(ll.sum())
            N += resp.sum(axis=0)
            for k in range(M):
                u = x - form.means[k]
                ru = u * resp[:, k:k + 1]
                S1[k] += ru.sum(axis=0)
                S2[k] += (ru * u).sum(axis=0) if form.cvtype == "diag" else ru.T @ u
        return Stats(loglik, N, S1, S2, form.means.copy())

    def loglik(self, prep: Prepared, form: ScoringForm) -> np.ndarray:
        out = np.empty(prep.N)
        for sl, _, log_rho in self._chunks(prep, form):
            out[sl] = logsumexp(log_rho, axis=1)
        return out

    def log_posteriors(self, prep: Prepared, form: ScoringForm):
        ll = np.empty(prep.N)
        post = np.empty((prep.N, form.M))
        for sl, _, log_rho in self._chunks(prep, form):
            ll[sl] = logsumexp(log_rho, axis=1)
            post[sl] = log_rho - ll[sl, None]
        return ll, post

    def argmax(self, prep: Prepared, form: ScoringForm) -> np.ndarray:
        out = np.empty(prep.N, dtype=np.int64)
        for sl, _, log_rho in self._chunks(prep, form):
            out[sl] = log_rho.argmax(axis=1)
        return out


def _log_rho(x: np.ndarray, form: ScoringForm) -> np.ndarray:
    """log rho (rows, M), from the differences x - mu_k (no cancelling expansion)."""
    quad = np.empty((x.shape[0], form.M))
    for k in range(form.M):
        d = x - form.means[k]
        if form.cvtype == "diag":
            quad[:, k] = (d * d) @ form.prec[k]
        else:
            y = d @ form.prec[k]
            quad[:, k] = np.einsum("ij,ij->i", y, y)
    return form.log_const - 0.5 * quad
