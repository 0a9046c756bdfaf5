"""BIC merge score of two GMMs, as used by agglomerative speaker clustering."""
from __future__ import annotations

import numpy as np

from em.gmm import GMM
from em.validation import check_data


def compute_distance_BIC(gmm1: GMM, gmm2: GMM, data, em_iters: int = 3, *, own_loglik=None):
    """Train a merged GMM and return ``(merged, score)``.

    The merged model has M1 + M2 components, starts from both models' components (weights
    scaled by M1/(M1+M2) and M2/(M1+M2)) and runs ``em_iters`` EM iterations.  Because it has as
    many parameters as the two together, the BIC penalty cancels and
    ``score = loglik(merged) - loglik(gmm1) - loglik(gmm2)``; merge when it is positive.

    ``data`` is either one array (all three models are scored on it, as in the 2011 manual) or a
    pair ``(data1, data2)``: then the merged model is trained and scored on both together and each
    model on its own part -- the classic criterion for merging clusters 1 and 2.

    ``own_loglik=(ll1, ll2)``: the totals ``gmm1.score(data1).sum()`` and
    ``gmm2.score(data2).sum()`` when the caller already has them (a clustering loop scores each
    cluster once, not once per candidate pair).
    """
    if gmm1.D != gmm2.D or gmm1.cvtype != gmm2.cvtype:
        raise ValueError(f"cannot merge a {gmm1.cvtype} D={gmm1.D} model with a "
                         f"{gmm2.cvtype} D={gmm2.D} model")
    if isinstance(data, (tuple, list)) and len(data) == 2:
        d1, d2 = (check_data(d, gmm1.D) for d in data)
        union = np.concatenate([d1, d2]).astype(np.result_type(d1, d2), copy=False)
    else:
        union = d1 = d2 = check_data(data, gmm1.D)
    M1, M2 = gmm1.M, gmm2.M
    M = M1 + M2
    weights = np.concatenate([gmm1.components.weights * (M1 / M),
                              gmm2.components.weights * (M2 / M)])
    covars = np.concatenate([gmm1.components.covars, gmm2.components.covars])
    means = np.concatenate([gmm1.components.means, gmm2.components.means])
    merged = GMM(M, gmm1.D, gmm1.cvtype, means, covars, weights, reg_covar=gmm1.reg_covar,
                 backend=gmm1.backend)
    ll_merged = merged.train(union, em_iters)
    ll1, ll2 = own_loglik if own_loglik is not None else (gmm1.score(d1).sum(),
                                                          gmm2.score(d2).sum())
    score = ll_merged - ll1 - ll2
    return merged, float(score)
