"""em: Gaussian mixture models whose hot loops are generated and compiled for the problem.

``from em import GMM, compute_distance_BIC``; see README.md.
"""
from em.bic import compute_distance_BIC
from em.gmm import GMM, EMWarning  # noqa: F401  (EMWarning: import it by name)
from em.mixture import (DPVariationalGaussianMixture, GaussianMixture, Kmeans,
                        VariationalGaussianMixture)

__version__ = "0.1.0"
__all__ = ["GMM", "Kmeans", "GaussianMixture", "VariationalGaussianMixture",
           "DPVariationalGaussianMixture", "compute_distance_BIC"]
