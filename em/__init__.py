"""em: Gaussian mixture models whose hot loops are generated and compiled for the problem.

``from em import GMM, compute_distance_BIC``; see README.md.
"""
from em.bic import compute_distance_BIC
from em.fit import EMWarning  # noqa: F401  (import it by name)
from em.gmm import GMM
from em.mixture import (DPVariationalGaussianMixture, GaussianMixture, Kmeans,
                        VariationalGaussianMixture)

__version__ = "0.1.0"
__all__ = ["GMM", "Kmeans", "GaussianMixture", "VariationalGaussianMixture",
           "DPVariationalGaussianMixture", "compute_distance_BIC"]
