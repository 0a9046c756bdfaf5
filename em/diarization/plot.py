"""Timeline picture: hypothesis speakers against the reference (matplotlib, no screen)."""
from __future__ import annotations

import io


def timeline(hypothesis, reference=None, seconds=None, mapping=None, title_der=None) -> bytes:
    """A PNG picture with one row per speaker, hypothesis above the reference, coloured by
    speaker: a hypothesis speaker mapped to a reference speaker (``mapping`` {hyp: ref}, the
    DER mapping) takes that speaker's colour; ``title_der`` (a fraction) goes in the title."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mapping = mapping or {}
    rows = [("hyp", t) for t in hypothesis] + [("ref", t) for t in (reference or [])]
    labels = sorted({(src, t.speaker) for src, t in rows}, key=lambda x: (x[0] != "hyp", x[1]))
    index = {lab: i for i, lab in enumerate(labels)}
    refs = sorted({t.speaker for t in reference or []})
    colour = {("ref", r): f"C{i % 10}" for i, r in enumerate(refs)}
    spare = len(refs)
    for src, name in labels:
        if src == "hyp":
            if mapping.get(name) in refs:
                colour[(src, name)] = colour[("ref", mapping[name])]
            else:
                colour[(src, name)] = f"C{spare % 10}"
                spare += 1
    fig, ax = plt.subplots(figsize=(12, 1 + 0.4 * len(labels)))
    for src, t in rows:
        ax.broken_barh([(t.onset, t.duration)], (index[(src, t.speaker)] - 0.4, 0.8),
                       color=colour[(src, t.speaker)], alpha=1.0 if src == "hyp" else 0.6)
    ax.set_yticks(range(len(labels)),
                  [f"{s}: {n}" + (f" -> {mapping[n]}" if s == "hyp" and n in mapping else "")
                   for s, n in labels])
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    if seconds:
        ax.set_xlim(0, seconds)
    title = "hypothesis (top) vs reference; same colour = mapped speaker"
    if title_der is not None:
        title += f"; DER {100 * title_der:.1f}% (±0.25 s collar)"
    ax.set_title(title)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    return png.getvalue()
