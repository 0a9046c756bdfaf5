"""The diarizer's configuration file: configparser, section [Diarizer] (the 2011 keys).

Relative paths are taken relative to the configuration file.
"""
from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

SECTION = "Diarizer"
# key: (type, default or REQUIRED, help)
REQUIRED = object()
KEYS = {
    "basename": (str, REQUIRED, "recording name written in the RTTM"),
    "mfcc_feats": (Path, None, "HTK feature file (required unless audio_file is given)"),
    "audio_file": (Path, None, "16 kHz mono WAV, used when mfcc_feats is not given"),
    "output_cluster": (Path, REQUIRED, "RTTM file to write"),
    "gmm_output": (Path, REQUIRED, "file to write the speakers' GMMs to"),
    "initial_clusters": (int, REQUIRED, "number of clusters to start from"),
    "M_mfcc": (int, REQUIRED, "Gaussian components per initial cluster"),
    "em_iterations": (int, 3, "EM iterations per training"),
    "spnsp_file": (Path, None, "speech/non-speech file: one 0/1 per frame"),
    "KL_ntop": (int, 0, "GMM pairs to evaluate BIC on, closest by KL (0 = all pairs)"),
    "num_seg_iters_init": (int, 2, "re-segmentation rounds before merging"),
    "num_seg_iters": (int, 3, "re-segmentation rounds after each merge"),
    "seg_length": (int, 250, "frames per re-segmentation window"),
    "reference_rttm": (Path, None, "reference RTTM: when given, DER is printed"),
}
MINIMUM = {"initial_clusters": 1, "M_mfcc": 1, "em_iterations": 1, "KL_ntop": 0,
           "num_seg_iters_init": 0, "num_seg_iters": 0, "seg_length": 1}


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key."""


@dataclass
class Config:
    basename: str
    output_cluster: Path
    gmm_output: Path
    initial_clusters: int
    M_mfcc: int
    mfcc_feats: Path | None = None
    audio_file: Path | None = None
    em_iterations: int = 3
    spnsp_file: Path | None = None
    KL_ntop: int = 0
    num_seg_iters_init: int = 2
    num_seg_iters: int = 3
    seg_length: int = 250
    reference_rttm: Path | None = None


def read_config(path) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such configuration file")
    parser = configparser.ConfigParser()
    parser.optionxform = str                        # keys are case-sensitive (M_mfcc)
    try:
        parser.read(path)
    except configparser.Error as exc:
        raise ConfigError(f"{path}: not a valid configuration file ({exc.message})") from None
    if not parser.has_section(SECTION):
        raise ConfigError(f"{path}: no [{SECTION}] section")
    section = parser[SECTION]
    unknown = sorted(set(section) - set(KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} in [{SECTION}]")
    values = {}
    for key, (kind, default, _) in KEYS.items():
        if key not in section:
            if default is REQUIRED:
                raise ConfigError(f"{path}: required key '{key}' missing in [{SECTION}]")
            values[key] = default
            continue
        raw = section[key].strip()
        if kind is int:
            try:
                values[key] = int(raw)
            except ValueError:
                raise ConfigError(f"{path}: {key} = {raw!r} is not an integer") from None
            if values[key] < MINIMUM[key]:
                raise ConfigError(f"{path}: {key} must be >= {MINIMUM[key]}, got {values[key]}")
        elif kind is Path:
            values[key] = (path.parent / raw) if raw else None
        else:
            values[key] = raw
    if values["mfcc_feats"] is None and values["audio_file"] is None:
        raise ConfigError(f"{path}: give mfcc_feats (HTK features) or audio_file (WAV)")
    return Config(**values)


def describe() -> str:
    """Every key with its default, for --help."""
    lines = [f"configuration keys, section [{SECTION}]:"]
    for key, (_, default, text) in KEYS.items():
        d = "required" if default is REQUIRED else f"default {default}"
        lines.append(f"  {key:19s} {text} ({d})")
    return "\n".join(lines)
