"""The megamix model family on the compiled kernels: :class:`Kmeans`, :class:`GaussianMixture`,
:class:`VariationalGaussianMixture` and :class:`DPVariationalGaussianMixture` (Dirichlet process,
or Pitman-Yor with ``pypcoeff`` > 0), with megamix's API (``fit``, ``predict_log_resp``,
``score``, ``simplified_model``, ``write`` / ``read_and_init``).

These classes validate, initialise and keep state (``base``: checks, the fit loop, scoring,
files; ``init``: initialisation; one module per model); the iterations are :func:`em.fit.run`,
the math is in ``em.models``, the data passes in ``em.backends``.
"""
from em.mixture.gaussian import GaussianMixture
from em.mixture.init import SEEDS, stats_from_resp
from em.mixture.kmeans import Kmeans
from em.mixture.variational import DPVariationalGaussianMixture, VariationalGaussianMixture
from em.models.covariance import COVARIANCE_TYPES

__all__ = ["Kmeans", "GaussianMixture", "VariationalGaussianMixture",
           "DPVariationalGaussianMixture", "COVARIANCE_TYPES", "SEEDS", "stats_from_resp"]
