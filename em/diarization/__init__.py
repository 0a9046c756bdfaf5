"""Speaker diarization by agglomerative GMM clustering (used by examples/cluster.py)."""
from em.diarization.cluster import Result, Settings, Step, diarize

__all__ = ["Result", "Settings", "Step", "diarize"]
