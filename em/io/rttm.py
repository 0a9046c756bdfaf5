"""Read and write RTTM speaker turns, and build turns from per-frame labels.

Line format: ``SPEAKER <file> <channel> <onset s> <duration s> <NA> <NA> <speaker> <NA> <NA>``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from em.io.files import atomic_write, read_text

__all__ = ["Turn", "read_rttm", "rttm_text", "write_rttm", "segments_from_labels"]


@dataclass
class Turn:
    """One speaker turn: ``onset`` and ``duration`` in seconds."""

    file: str
    channel: int
    onset: float
    duration: float
    speaker: str

    @property
    def offset(self) -> float:
        return self.onset + self.duration


def read_rttm(path) -> list[Turn]:
    """SPEAKER turns of an RTTM file, in file order.

    Blank lines, ';;' comments and other record types are skipped; a malformed SPEAKER
    line (too few fields, non-numeric channel/onset/duration, negative or non-finite
    onset/duration) raises ValueError naming the file and line number, and so does a file
    that is not UTF-8 text.
    """
    path = os.fspath(path)
    turns = []
    for lineno, line in enumerate(read_text(path, "an RTTM file").splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(";;"):
            continue
        fields = stripped.split()
        if fields[0] != "SPEAKER":
            continue

        def bad(msg):
            return ValueError(f"{path}:{lineno}: {msg}: {stripped!r}")

        if len(fields) < 8:
            raise bad(f"SPEAKER line has {len(fields)} fields, expected 10")
        try:
            channel = int(fields[2])
        except ValueError:
            raise bad(f"channel {fields[2]!r} is not an integer") from None
        try:
            onset, duration = float(fields[3]), float(fields[4])
        except ValueError:
            raise bad("onset/duration are not numbers") from None
        if not (math.isfinite(onset) and math.isfinite(duration)
                and math.isfinite(onset + duration)):
            raise bad("onset/duration are not finite")
        if onset < 0:
            raise bad(f"negative onset {onset}")
        if duration < 0:
            raise bad(f"negative duration {duration}")
        turns.append(Turn(fields[1], channel, onset, duration, fields[7]))
    return turns


def _check_token(value, what, i) -> str:
    s = str(value)
    if not s or any(c.isspace() for c in s):
        raise ValueError(f"turn {i}: {what} {s!r} is empty or contains whitespace")
    return s


def write_rttm(path, turns) -> None:
    """Write turns as RTTM SPEAKER lines (times with 3 decimals), atomically.

    Invalid turns (negative/non-finite times, names with whitespace) raise ValueError
    before anything is written.
    """
    atomic_write(path, rttm_text(turns).encode("utf-8"))


def rttm_text(turns) -> str:
    """The RTTM SPEAKER lines of ``turns``, as :func:`write_rttm` writes them."""
    lines = []
    for i, t in enumerate(turns):
        file = _check_token(t.file, "file", i)
        speaker = _check_token(t.speaker, "speaker", i)
        channel = _check_token(t.channel, "channel", i)
        onset, duration = float(t.onset), float(t.duration)
        if not (math.isfinite(onset) and math.isfinite(duration)) or onset < 0 or duration < 0:
            raise ValueError(f"turn {i}: onset {onset} / duration {duration} must be "
                             f"finite and non-negative")
        lines.append(f"SPEAKER {file} {channel} {onset:.3f} {duration:.3f} "
                     f"<NA> <NA> {speaker} <NA> <NA>\n")
    return "".join(lines)


def segments_from_labels(labels, frame_period_s: float, file: str, channel: int = 1,
                         nonspeech: int = -1) -> list[Turn]:
    """Merge runs of equal per-frame integer labels into turns named 'spk<label>'.

    Frame i covers [i, i+1) * frame_period_s; frames labelled ``nonspeech`` give no turn.
    """
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {lab.shape}")
    if lab.size and not np.issubdtype(lab.dtype, np.integer):
        if not (np.issubdtype(lab.dtype, np.floating) and np.all(lab == np.rint(lab))):
            raise ValueError(f"labels must be integers, got dtype {lab.dtype}")
        lab = lab.astype(np.int64)
    fp = float(frame_period_s)
    if not (math.isfinite(fp) and fp > 0):
        raise ValueError(f"frame_period_s must be positive, got {frame_period_s!r}")
    if lab.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    ends = np.r_[starts[1:], lab.size]
    return [Turn(file, channel, s * fp, (e - s) * fp, f"spk{int(lab[s])}")
            for s, e in zip(starts, ends) if lab[s] != nonspeech]
