"""Timeline picture: hypothesis speakers against the reference (matplotlib, no screen)."""
from __future__ import annotations

import io


def timeline(hypothesis, reference=None, seconds=None) -> bytes:
    """A PNG picture with one row per speaker, hypothesis above the reference."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("hyp", t) for t in hypothesis] + [("ref", t) for t in (reference or [])]
    labels = sorted({(src, t.speaker) for src, t in rows}, key=lambda x: (x[0] != "hyp", x[1]))
    index = {lab: i for i, lab in enumerate(labels)}
    fig, ax = plt.subplots(figsize=(12, 1 + 0.4 * len(labels)))
    for src, t in rows:
        ax.broken_barh([(t.onset, t.duration)], (index[(src, t.speaker)] - 0.4, 0.8),
                       color="tab:blue" if src == "hyp" else "tab:orange")
    ax.set_yticks(range(len(labels)), [f"{s}: {n}" for s, n in labels])
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    if seconds:
        ax.set_xlim(0, seconds)
    ax.set_title("who spoke when: hypothesis (blue) vs reference (orange)")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    return png.getvalue()
