"""The diarizer's configuration file: configparser, section [Diarizer] (the 2011 keys).

The path keys are declared here, the other keys in :class:`~em.diarization.settings.Settings`.
Relative paths are taken relative to the configuration file.  The file must be UTF-8 text;
``%`` is an ordinary character (no interpolation).
"""
from __future__ import annotations

import configparser
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from em.diarization.settings import Settings
from em.io.files import read_text

SECTION = "Diarizer"
REQUIRED = object()


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key."""


def _path(help, required=False, kind=Path):
    return field(metadata={"help": help, "required": required, "kind": kind})


@dataclass
class Config:
    """The paths of the configuration file ``source`` and the :class:`Settings` it sets."""

    source: Path
    settings: Settings
    basename: str = _path("recording name written in the RTTM", required=True, kind=str)
    mfcc_feats: Path | None = _path("HTK feature file (required unless audio_file is given)")
    audio_file: Path | None = _path("16 kHz mono WAV, used when mfcc_feats is not given")
    spnsp_file: Path | None = _path("speech/non-speech file: one 0/1 per frame")
    reference_rttm: Path | None = _path("reference RTTM: when given, DER is printed")
    ubm_file: Path | None = _path("UBM for merge_score = clr (HDF5 of examples/train_ubm.py "
                                  "on WAV files; default: the one shipped)")
    output_cluster: Path = _path("RTTM file to write", required=True)
    gmm_output: Path = _path("file to write the speakers' GMMs to", required=True)

    def with_keys(self, **keys) -> Config:
        """A copy with configuration keys replaced (``M_mfcc=5``, ``speakers=3``, paths too),
        the speaker counts checked as read_config checks a file's."""
        paths = {k: v for k, v in keys.items() if k not in FIELDS}
        s = dataclasses.replace(self.settings,
                                **{FIELDS[k]: v for k, v in keys.items() if k in FIELDS})
        try:
            s.check_counts(None if s.initial_clusters == "auto" else s.initial_clusters)
        except ValueError as exc:
            raise ConfigError(f"{self.source}: {exc}") from None
        return dataclasses.replace(self, settings=s, **paths)


_PATHS = {f.name: f.metadata for f in dataclasses.fields(Config) if f.metadata}
_SETTINGS = {f.metadata.get("key", f.name): f for f in dataclasses.fields(Settings)
             if not f.metadata.get("internal")}
FIELDS = {key: f.name for key, f in _SETTINGS.items()}      # key: Settings field
RANGE = {key: f.metadata["range"] for key, f in _SETTINGS.items() if "range" in f.metadata}
CHOICES = {key: f.metadata["choices"] for key, f in _SETTINGS.items()
           if "choices" in f.metadata}
# key: (type, default or REQUIRED, help)
KEYS = {**{key: (m["kind"], REQUIRED if m["required"] else None, m["help"])
           for key, m in _PATHS.items()},
        **{key: (type(RANGE[key][0]) if key in RANGE else str, f.default, f.metadata["help"])
           for key, f in _SETTINGS.items()}}


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
    values = {}
    for key, (_, default, _) in KEYS.items():
        if key in section:
            try:
                values[key] = parse_value(key, section[key].strip())
            except ValueError as exc:
                raise ConfigError(f"{path}: {exc}") from None
        elif default is REQUIRED:
            raise ConfigError(f"{path}: required key '{key}' missing in [{SECTION}]")
        else:
            values[key] = default
    if values["mfcc_feats"] is None and values["audio_file"] is None:
        raise ConfigError(f"{path}: give mfcc_feats (HTK features) or audio_file (WAV)")
    paths = {k: path.parent / values[k] if isinstance(values[k], Path) else values[k]
             for k in _PATHS}
    return Config(path, Settings(), **paths).with_keys(**{k: values[k] for k in FIELDS})


def parse_value(key: str, raw: str):
    """The value of configuration key ``key`` written as ``raw`` (None: an optional path
    left empty); a ConfigError naming the key when it has none."""
    kind, default, _ = KEYS[key]
    if kind in (int, float):
        return raw if raw == "auto" and default == "auto" else _number(key, raw, kind)
    if key in CHOICES:
        if raw not in CHOICES[key]:
            raise ConfigError(f"{key} = {raw[:40]!r} must be one of {', '.join(CHOICES[key])}")
        return raw
    if not raw:                                     # an optional file left out
        if default is REQUIRED:
            raise ConfigError(f"required key '{key}' is empty in [{SECTION}]")
        return None
    if kind is str and any(c.isspace() for c in raw):   # basename: one RTTM field
        raise ConfigError(f"{key} = {raw!r} must not contain whitespace")
    return kind(raw)


def _number(key, raw, kind):
    low, high = RANGE[key]
    try:
        value = kind(raw)
    except ValueError:
        auto = " or auto" if KEYS[key][1] == "auto" else ""
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{key} = {raw[:40]!r} is not {what}{auto}") from None
    if value != value:                                  # float('nan')
        raise ConfigError(f"{key} = {raw[:40]!r} is not a number")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" + (f" and <= {high}" if high is not None else "")
        raise ConfigError(f"{key} must be {bound}, got {raw[:40]}")
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
