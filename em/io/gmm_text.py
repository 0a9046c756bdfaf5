"""The diarizer's GMM file: text, one block per speaker of diagonal-covariance Gaussians;
arrays in, never models."""
from __future__ import annotations


def speakers_text(speakers) -> str:
    """``speakers``: (name, weights (M,), means (M, D), variances (M, D)) each.  A header line,
    then per speaker 'speaker NAME M D', 'weights ...' and per component 'mean ...' and
    'var ...' lines."""
    lines = [f"# em diarizer GMMs: {len(speakers)} speakers, diagonal covariance"]
    for name, weights, means, variances in speakers:
        lines.append(f"speaker {name} {means.shape[0]} {means.shape[1]}")
        lines.append("weights " + " ".join(f"{w:.8g}" for w in weights))
        for mu, var in zip(means, variances):
            lines.append("mean " + " ".join(f"{v:.8g}" for v in mu))
            lines.append("var " + " ".join(f"{v:.8g}" for v in var))
    return "\n".join(lines) + "\n"
