"""The diarizer's configuration file: configparser, section [Diarizer] (the 2011 keys).

Relative paths are taken relative to the configuration file.  The file must be UTF-8 text;
``%`` is an ordinary character (no interpolation).
"""
from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

from em.diarization.cluster import Settings
from em.io.files import read_text

SECTION = "Diarizer"
_ALGO = Settings()              # the clustering keys' defaults are the algorithm's own
# key: (type, default or REQUIRED, help)
REQUIRED = object()
KEYS = {
    "basename": (str, REQUIRED, "recording name written in the RTTM"),
    "mfcc_feats": (Path, None, "HTK feature file (required unless audio_file is given)"),
    "audio_file": (Path, None, "16 kHz mono WAV, used when mfcc_feats is not given"),
    "output_cluster": (Path, REQUIRED, "RTTM file to write"),
    "gmm_output": (Path, REQUIRED, "file to write the speakers' GMMs to"),
    "initial_clusters": (int, _ALGO.initial_clusters, "number of clusters to start from "
                         "(auto: from the amount of speech)"),
    "M_mfcc": (int, _ALGO.M, "Gaussian components per initial cluster (auto: from the "
               "amount of speech)"),
    "speakers": (int, _ALGO.speakers, "number of speakers when known: merge down to it "
                 "(auto: estimated)"),
    "em_iterations": (int, _ALGO.em_iterations, "EM iterations per training"),
    "merge_iterations": (int, _ALGO.merge_iterations, "EM iterations of each candidate "
                         "merged model (0: em_iterations)"),
    "spnsp_file": (Path, None, "speech/non-speech file: one 0/1 per frame"),
    "KL_ntop": (int, _ALGO.KL_ntop, "GMM pairs to evaluate BIC on, closest by KL "
                "(0 = all pairs)"),
    "num_seg_iters_init": (int, _ALGO.num_seg_iters_init, "re-segmentation rounds before "
                           "merging"),
    "num_seg_iters": (int, _ALGO.num_seg_iters, "re-segmentation rounds after each merge"),
    "seg_length": (int, _ALGO.seg_length, "frames per window of the 'vote' re-segmentation"),
    "resegmentation": (str, _ALGO.resegmentation, "viterbi (minimum-duration HMM) or vote "
                       "(the 2011 window majority)"),
    "merge_threshold": (float, _ALGO.merge_threshold, "merge while the best pair's delta-BIC "
                        "per frame exceeds this (0: the classic rule, merge while it is "
                        "positive)"),
    "min_duration": (int, _ALGO.min_duration, "frames: shortest segment of the viterbi "
                     "re-segmentation"),
    "speech_detector": (str, "auto", "for audio_file without spnsp_file: webrtcvad, energy, or "
                        "auto (webrtcvad when installed)"),
    "reference_rttm": (Path, None, "reference RTTM: when given, DER is printed"),
}
# (minimum, maximum or None): the maxima keep a typo from running for days (the clustering
# costs grow with the cube of initial_clusters); seg_length, min_duration and initial_clusters
# x M_mfcc are also checked against the recording's speech frames (pipeline.load_features)
RANGE = {"initial_clusters": (1, 128), "speakers": (1, 128), "M_mfcc": (1, 256),
         "em_iterations": (1, 100), "merge_iterations": (0, 1000),
         "KL_ntop": (0, None), "num_seg_iters_init": (0, 100), "num_seg_iters": (0, 100),
         "seg_length": (1, None), "min_duration": (1, None), "merge_threshold": (-10.0, 10.0)}
CHOICES = {"resegmentation": ("viterbi", "vote"),
           "speech_detector": ("auto", "webrtcvad", "energy")}


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key."""


@dataclass
class Config:
    """Every key of :data:`KEYS` (read_config fills in the defaults) and ``source``."""

    source: Path                                    # the configuration file itself
    basename: str
    output_cluster: Path
    gmm_output: Path
    initial_clusters: int | str
    M_mfcc: int | str
    speakers: int | str
    mfcc_feats: Path | None
    audio_file: Path | None
    em_iterations: int
    merge_iterations: int
    spnsp_file: Path | None
    KL_ntop: int
    num_seg_iters_init: int
    num_seg_iters: int
    seg_length: int
    reference_rttm: Path | None
    resegmentation: str
    merge_threshold: float
    min_duration: int
    speech_detector: str


def read_config(path) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: " + ("not a regular file" if path.exists() else
                                         "no such configuration file"))
    parser = configparser.ConfigParser(interpolation=None)   # '%' is an ordinary character
    parser.optionxform = str                        # keys are case-sensitive (M_mfcc)
    try:
        parser.read_string(read_text(path, "a configuration file"), source=str(path))
    except configparser.Error as exc:
        raise ConfigError(f"{path}: not a valid configuration file ({exc.message})") from None
    except (ValueError, OSError) as exc:
        raise ConfigError(str(exc)) from None
    if not parser.has_section(SECTION):
        raise ConfigError(f"{path}: no [{SECTION}] section")
    section = parser[SECTION]
    unknown = sorted(set(section) - set(KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} in [{SECTION}]")
    values = {"source": path}
    for key, (kind, default, _) in KEYS.items():
        if key not in section:
            if default is REQUIRED:
                raise ConfigError(f"{path}: required key '{key}' missing in [{SECTION}]")
            values[key] = default
            continue
        raw = section[key].strip()
        if kind is int and default == "auto" and raw == "auto":
            values[key] = raw
        elif kind in (int, float):
            values[key] = _number(path, key, raw, kind)
        elif key in CHOICES:
            if raw not in CHOICES[key]:
                raise ConfigError(f"{path}: {key} = {raw[:40]!r} must be one of "
                                  f"{', '.join(CHOICES[key])}")
            values[key] = raw
        elif not raw:                                   # an optional file left out
            if default is REQUIRED:
                raise ConfigError(f"{path}: required key '{key}' is empty in [{SECTION}]")
            values[key] = None
        elif kind is Path:
            values[key] = path.parent / raw
        elif any(c.isspace() for c in raw):             # basename: one RTTM field
            raise ConfigError(f"{path}: {key} = {raw!r} must not contain whitespace")
        else:
            values[key] = raw
    if values["mfcc_feats"] is None and values["audio_file"] is None:
        raise ConfigError(f"{path}: give mfcc_feats (HTK features) or audio_file (WAV)")
    return Config(**values)


def _number(path, key, raw, kind):
    low, high = RANGE[key]
    try:
        value = kind(raw)
    except ValueError:
        auto = " or auto" if KEYS[key][1] == "auto" else ""
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{path}: {key} = {raw[:40]!r} is not {what}{auto}") from None
    if value != value:                                  # float('nan')
        raise ConfigError(f"{path}: {key} = {raw[:40]!r} is not a number")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" + (f" and <= {high}" if high is not None else "")
        raise ConfigError(f"{path}: {key} must be {bound}, got {raw[:40]}")
    return value


def describe() -> str:
    """Every key with its default, for --help."""
    lines = [f"configuration keys, section [{SECTION}]:"]
    for key, (_, default, text) in KEYS.items():
        d = "required" if default is REQUIRED else f"default {default}"
        if key in RANGE:
            low, high = RANGE[key]
            d += f", {low}..{high}" if high is not None else f", >= {low}"
        lines.append(f"  {key:19s} {text} ({d})")
    return "\n".join(lines)
