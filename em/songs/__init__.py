"""The song recommender: MSD collections (``collection``), the synthetic demo collection
(``demo``) and GMM-UBM tag ranking (``recommend``)."""
