"""scikit-learn estimators on our kernels: drop-in :class:`GaussianMixture`,
:class:`BayesianGaussianMixture` and :class:`KMeans`.

Each subclasses scikit-learn's class and keeps its constructor parameters (plus ``backend``),
its initialisation, its fitted attributes and its methods; only the iterations run here, on
the fused pass of one of our backends through :func:`em.fit.run`.  From the same
initialisation they reach scikit-learn's result: the same update equations, the same stopping
rule (``tol`` on the change of the mean log-likelihood; for the variational mixture on the
change of scikit-learn's lower bound, its entropy term taken from the pass's statistics; for
k-means on the squared centre shift, scaled as scikit-learn scales it), the same iteration
count.  The variational M-step and lower bound are scikit-learn's own methods.

``fit`` also takes X on disk (``np.memmap``, ``np.load(..., mmap_mode='r')``, an h5py dataset)
or in a dask array: the passes run where X lies (:mod:`em.backends.routing`), scikit-learn's
checks and initialisation run on at most :data:`em.sklearn.shared.INIT_ROWS` of its rows drawn at random (all of
them when X has fewer), and ``predict`` / ``predict_proba`` / ``score_samples`` / ``score``
score such X where it lies too.

Not run here (scikit-learn's own code runs, on the same estimator, X in memory):
``covariance_type='tied'`` (no tied kernels), and k-means with non-uniform ``sample_weight``.

Modules: ``mixtures`` (the two mixtures), ``kmeans``, ``shared`` (X on disk or in dask).
"""
from __future__ import annotations

import re
import warnings

import sklearn

from em.sklearn.kmeans import KMeans
from em.sklearn.mixtures import BayesianGaussianMixture, GaussianMixture

__all__ = ["GaussianMixture", "BayesianGaussianMixture", "KMeans"]

TESTED = ((1, 7), (1, 10))
"""scikit-learn versions this module is tested with: from the first, below the second (it
subclasses scikit-learn's estimators and uses about twenty of its private names).  The
``sklearn`` extra in pyproject.toml declares the same range; CI tests both ends."""


def _tested(version: str) -> bool:
    """Whether scikit-learn ``version`` lies in :data:`TESTED`."""
    major_minor = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    return TESTED[0] <= major_minor < TESTED[1]


if not _tested(sklearn.__version__):
    warnings.warn(f"em.sklearn is tested with scikit-learn >={'.'.join(map(str, TESTED[0]))},"
                  f"<{'.'.join(map(str, TESTED[1]))}, not {sklearn.__version__}: it relies on "
                  "scikit-learn's private names, which may differ", UserWarning, stacklevel=2)
