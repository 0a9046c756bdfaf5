"""Build the diarizer's development set: real speech with exact reference RTTMs.

The set we tune on (a held-out set, kept elsewhere, is for evaluation).  Every recording is
assembled from single-speaker utterances of real voices, joined with short seeded pauses, and
written as 16 kHz mono 16-bit WAV with an RTTM that has one SPEAKER line per stretch of speech
(times from sample counts), plus a diarizer configuration and a ``manifest.json``.

Sources (installed Debian packages, read where apt put them, and this repository's own data):

* Fillets NG, Dutch dubbing (``fillets-ng-data-nl``: the voices, ``fillets-ng-data``: each
  level's ``script/<level>/dialogs_nl.lua``).  Only the two fish speak in Dutch: a line's font
  (``font_small`` / ``font_big``) names the speaker, and the lines are taken in the order the
  script declares them, level after level, so the recordings are natural two-person dialogue.
  The Czech dubbing (``fillets-ng-data-cs``) is never read: it belongs to the held-out set.
* Asterisk prompts, 8 kHz upsampled to 16 kHz: ``asterisk-core-sounds-{en,es,fr,it,ru}-wav``
  (Allison Smith in US English and Mexican Spanish -- one speaker --, June Wallack, Carlo Flora,
  the ivrvoice.ru voice), ``asterisk-prompt-fr-armelle`` (Armelle Desjardins) and
  ``asterisk-prompt-es-co`` (July E. Jimenez), the last two GSM 6.10.  Prompts are shuffled per
  voice with a fixed seed; tones and the monkeys are left out.
* KLettres (``klettres-data``, GPL-2+): letters and syllables spoken by volunteers,
  ``/usr/share/klettres/<lang>/{alpha,syllab}/*.ogg``.  Each language folder is taken to be one
  voice (``kl_<lang>``; its alpha and syllab items assumed to be the same person).  An item is
  under a second, so a clip is 3-8 items of one voice (shuffled with a fixed seed) joined by
  0.1-0.3 s of digital silence.  The Czech and Slovak folders are never read (held out);
  items whose decoded peak is above 2 (broken encodes) are left out.
* ``benchmarks/data/voices``: the pocketsphinx "cards" speaker and LibriVox reader.
* ``examples/data/sample.wav``: the bundled 30 s conversation with its reference RTTM (as is,
  with noise, through a telephone channel and with a DC offset), and its two speakers' turns
  without overlap in a four-speaker mix.

Each clip is mixed to mono, resampled to 16 kHz, its leading/trailing silence trimmed and
pauses of >= 0.3 s inside it left out of the reference (NIST's convention; a clip's RTTM lines
are its stretches of speech): a 25 ms frame (10 ms hop) is speech when its level is within
35 dB of the clip's loudest frame and 10 dB above its noise floor (3rd percentile); speech
runs shorter than 0.15 s at the edges (more than ~0.5 s from the rest) are cut away, and clips
with under 1 s of speech skipped.  Clips keep their raw levels, and the pauses between them
are exact zeros: a recording has digital silence unless its condition adds noise.

Conditions (keys of a recording's condition, combined; applied in this order):

* ``gains``: a gain per speaker turn, uniform in -10..+6 dB; ``jumps_db: J``: each turn's
  gain drawn from {-J, 0, +J} dB, never the previous turn's (level jumps at every change);
* ``noise``, ``snr_db``: seeded white or pink noise at that SNR (speech power over the
  reference speech samples);
* then one scale for the whole recording so that its peak stays within full scale (SNR and
  gains kept; the headroom left for the floor and the DC offset);
* ``floor_dbfs``: a white noise floor at that level (dBFS RMS) everywhere;
* ``telephone``: down to 8 kHz, a 300-3400 Hz band-pass (scaled down where its overshoot
  would pass the peak), with ``mulaw`` 8-bit mu-law quantisation, and back up to 16 kHz
  (the turns of another recording, named in the manifest's ``same_turns_as``);
* ``dc``: a DC offset added to the whole recording;
* ``clip_db``: a gain of that many dB, then hard clipping at full scale.

The samples are written as 16-bit PCM, saturating at full scale.  No clip is used twice in the
set, except by a recording that repeats another's turns under another condition.  Every random
draw comes from ``numpy.random.default_rng([SEED, crc32(name)])``, so the same packages give
the same files, bit for bit.

    python benchmarks/build_devset.py                  # -> benchmarks/devset/
    python benchmarks/build_devset.py /tmp/devset
    python examples/cluster.py -c benchmarks/devset/nl2_clean_20m.cfg
"""
from __future__ import annotations

import argparse
import configparser
import hashlib
import json
import re
import shutil
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SR = 16000
SEED = 20240611
WIN, HOP = SR // 40, SR // 100          # 25 ms frames every 10 ms
TOP_DB = 35.0                           # speech: within this of the clip's loudest frame
FLOOR_DB = 10.0                         # ... and this far above the clip's noise floor
MIN_RANGE_DB = 20.0                     # a clip whose speech is not this far above: unusable
MIN_PAUSE_S = 0.3                       # pauses inside a clip at least this long: not speech
                                        # (NIST's convention: shorter pauses are not boundaries)
EDGE_MERGE_FRAMES = 50                  # for finding a clip's extent, speech runs closer than
MIN_EDGE_RUN_S = 0.15                   # this (~0.5 s) are one; shorter ones at an edge: cut
MIN_SPEECH_S = 1.0                      # clips with less speech are skipped
PAUSE_S = (0.2, 1.0)                    # pause between utterances, uniform
EDGE_S = 0.5                            # silence before the first and after the last one
GAIN_DB = (-10.0, 6.0)                  # per-turn gain range where the condition has gains
PEAK = 0.98                             # the whole recording's peak, DC and floor included
TEL_SR, TEL_BAND, MU = 8000, (300.0, 3400.0), 255.0   # the telephone channel
KL_ITEMS = (3, 8)                       # klettres: items per clip, uniform, both included
KL_GAP_S = (0.1, 0.3)                   # ... and the digital silence between them
KL_MIN_SPEECH_S = 0.1                   # an item with less speech is left out
KL_MAX_PEAK = 2.0                       # an item decoded above this is a broken encode

FILLETS = Path("/usr/share/games/fillets-ng")
KLETTRES = Path("/usr/share/klettres")
KL_HELD_OUT = ("cs", "sk")              # Czech and Slovak: never read
KL_LANGS = ("ar", "da", "de", "en", "en_GB", "es", "fr", "he", "hu", "it", "lt", "ml", "nb",
            "nds", "nl", "pt_BR", "ru", "tn", "uk")
ASTERISK_SKIP = re.compile(r"^(beep|beeperr|tt-monkeys|ascending-2tone|descending-2tone)$")

PACKAGES = {
    "fillets-ng-data-nl": "Fillets NG Dutch voices (sound/<level>/nl/*.ogg)",
    "fillets-ng-data": "Fillets NG dialogue scripts (script/<level>/dialogs_nl.lua)",
    "asterisk-core-sounds-en-wav": "Allison Smith, US English prompts",
    "asterisk-core-sounds-es-wav": "Allison Smith, Mexican Spanish prompts",
    "asterisk-core-sounds-fr-wav": "June Wallack, Canadian French prompts",
    "asterisk-core-sounds-it-wav": "Carlo Flora, Italian prompts",
    "asterisk-core-sounds-ru-wav": "ivrvoice.ru female voice, Russian prompts",
    "asterisk-prompt-fr-armelle": "Armelle Desjardins, French prompts (GSM)",
    "asterisk-prompt-es-co": "July E. Jimenez, Colombian Spanish prompts (GSM)",
    "klettres-data": "KLettres spoken letters and syllables (<lang>/{alpha,syllab}/*.ogg)",
}

# voice pool -> (speaker id in the RTTMs, package, directory the files must lie in, extension)
ASTERISK_VOICES = {
    "allison_en": ("ast_allison", "asterisk-core-sounds-en-wav", "en_US_f_Allison", ".wav"),
    "allison_es": ("ast_allison", "asterisk-core-sounds-es-wav", "es_MX_f_Allison", ".wav"),
    "june_fr": ("ast_june", "asterisk-core-sounds-fr-wav", "fr_CA_f_June", ".wav"),
    "carlo_it": ("ast_carlo", "asterisk-core-sounds-it-wav", "it_IT_m_Carlo", ".wav"),
    "ivr_ru": ("ast_ivrvoice_ru", "asterisk-core-sounds-ru-wav", "ru_RU_f_IvrvoiceRU", ".wav"),
    "armelle_fr": ("ast_armelle", "asterisk-prompt-fr-armelle", "", ".gsm"),
    "july_es": ("ast_july", "asterisk-prompt-es-co", "", ".gsm"),
}

SOURCES = {
    "fillets-nl": {
        "packages": ["fillets-ng-data-nl", "fillets-ng-data"],
        "licence": "GPL-2 (Fillets NG game data, Ivo & Pavel Danihelka, ALTAR interactive "
                   "and translators; Debian packaging BSD-3-Clause)",
        "speakers": {"nl_small": "the small fish's Dutch voice actor",
                     "nl_big": "the big fish's Dutch voice actor"},
    },
    "asterisk": {
        "packages": [p for p in PACKAGES if p.startswith("asterisk")],
        "licence": "asterisk-core-sounds: CC-BY-SA-3.0 (en, es: Allison Smith; fr: June "
                   "Wallack), CC-BY-3.0 (it: Carlo Flora; ru: Maxim Topal / ivrvoice.ru); "
                   "asterisk-prompt-fr-armelle: BSD-style (C) 2006 Michel Gutierrez, voice "
                   "Armelle Desjardins; asterisk-prompt-es-co: GPL-2, (C) 2006 Avatar Ltda., "
                   "voice July E. Jimenez",
        "speakers": {"ast_allison": "Allison Smith (asterisk-core-sounds-en-wav and -es-wav: "
                                    "one speaker in two languages)",
                     **{v[0]: PACKAGES[v[1]] for k, v in ASTERISK_VOICES.items()
                        if v[0] != "ast_allison"}},
    },
    "pocketsphinx": {
        "files": "benchmarks/data/voices/{cards,librivox}-*.wav",
        "licence": "BSD-2-Clause (pocketsphinx test data, CMU / Alpha Cephei; LibriVox "
                   "reading public domain), see benchmarks/data/LICENSE.txt",
        "speakers": {"ps_cards": "pocketsphinx 'cards' speaker",
                     "ps_librivox": "LibriVox reader (Sense and Sensibility)"},
    },
    "pyannote-sample": {
        "files": "examples/data/sample.wav, examples/data/sample.rttm",
        "licence": "MIT (pyannote.audio 4.0.7 sample), see examples/data/LICENSE-sample.txt",
        "speakers": {"speaker90": "the sample's first speaker (pyannote_speaker90 in mixes)",
                     "speaker91": "the sample's second speaker (pyannote_speaker91 in mixes)"},
    },
    "klettres": {
        "packages": ["klettres-data"],
        "licence": "GPL-2+ (KLettres, Anne-Marie Mahfouf and the KDE Edu contributors; the "
                   "voices recorded by volunteers)",
        "note": "each language folder is assumed to be one voice, its alpha and syllab items "
                "the same person; cs and sk are held out and never read",
        "speakers": {f"kl_{lang}": f"the KLettres {lang} voice" for lang in KL_LANGS},
    },
}
assert not set(KL_LANGS) & set(KL_HELD_OUT)


class Missing(Exception):
    """An input is not there; the message is the one error line to print."""


# ------------------------------------------------------------------ reading and trimming clips

def dpkg_status(pkg: str) -> str | None:
    """The installed version of pkg, or None."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", pkg],
                         capture_output=True, text=True)
    fields = out.stdout.split()
    return fields[1] if out.returncode == 0 and fields[:1] == ["installed"] else None


def dpkg_files(pkg: str) -> list[str]:
    out = subprocess.run(["dpkg-query", "-L", pkg], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def read_audio(path) -> np.ndarray:
    """Mono float64 samples at 16 kHz (channels averaged, polyphase resampling)."""
    import soundfile as sf
    from scipy.signal import resample_poly
    path = str(path)
    if path.endswith(".gsm"):                       # headerless GSM 6.10, 8 kHz
        y, sr = sf.read(path, format="RAW", subtype="GSM610", samplerate=8000, channels=1,
                        dtype="float64", always_2d=True)
    else:
        y, sr = sf.read(path, dtype="float64", always_2d=True)
    y = y.mean(axis=1)
    if sr != SR:
        g = np.gcd(SR, sr)
        y = resample_poly(y, SR // g, sr // g)
    return y


def frame_db(y: np.ndarray) -> np.ndarray:
    """Level in dB of every 25 ms frame, one every 10 ms (frame i starts at sample i*HOP)."""
    if len(y) < WIN:
        return np.full(0, -200.0)
    frames = np.lib.stride_tricks.sliding_window_view(y, WIN)[::HOP]
    return 10 * np.log10(np.maximum(np.mean(frames ** 2, axis=1), 1e-20))


@dataclass
class Clip:
    """One utterance: trimmed audio (raw level) and its speech spans (samples, in the clip)."""
    audio: np.ndarray
    spans: list
    speaker: str
    source: str                                     # file it came from (and the span, if cut)

    @property
    def speech(self) -> int:
        return sum(b - a for a, b in self.spans)


def merge_runs(runs, min_gap_frames: int) -> list:
    """Frame runs [s, e) joined where fewer than min_gap_frames inactive frames part them."""
    merged = [list(runs[0])]
    for s, e in runs[1:]:
        if s - merged[-1][1] < min_gap_frames:
            merged[-1][1] = e
        else:
            merged.append([s, e])
    return merged


def trim(y: np.ndarray, speaker: str, source: str, min_speech=MIN_SPEECH_S) -> Clip | None:
    """The clip's speech from its first to its last speech frame, with the pauses of at least
    MIN_PAUSE_S inside it as gaps; None when the clip has too little clear speech."""
    db = frame_db(y)
    if len(db) < 10:
        return None
    peak, floor = db.max(), np.percentile(db, 3)
    threshold = max(peak - TOP_DB, floor + FLOOR_DB)
    if peak - threshold < MIN_RANGE_DB:
        return None
    active = db > threshold
    edges = np.flatnonzero(np.diff(np.r_[0, active.astype(np.int8), 0]))
    runs = [[s, e] for s, e in zip(edges[::2], edges[1::2])]        # frames [s, e)
    merged = merge_runs(runs, EDGE_MERGE_FRAMES)
    shortest = MIN_EDGE_RUN_S * SR / HOP
    while merged and (merged[0][1] - merged[0][0]) < shortest:
        merged.pop(0)
    while merged and (merged[-1][1] - merged[-1][0]) < shortest:
        merged.pop()
    if not merged:
        return None

    def samples(runs):                  # frames [s, e) cover samples [s*HOP, (e-1)*HOP + WIN)
        return [(s * HOP, min(len(y), (e - 1) * HOP + WIN)) for s, e in runs]
    extent = samples(merged)
    if sum(b - a for a, b in extent) < min_speech * SR:
        return None
    lo, hi = extent[0][0], extent[-1][1]
    # the reference: runs inside the extent, parted where the silence between their samples,
    # (g + 1) * HOP - WIN for g inactive frames, is at least MIN_PAUSE_S
    inside = [r for r in runs if r[0] >= merged[0][0] and r[1] <= merged[-1][1]]
    gap = int(np.ceil((MIN_PAUSE_S * SR + WIN) / HOP - 1))
    spans = [(a - lo, b - lo) for a, b in samples(merge_runs(inside, gap))]
    return Clip(y[lo:hi], spans, speaker, source)


class Pool:
    """Usable clips of one speaker (or a fixed dialogue), handed out once each, in order."""

    def __init__(self, name, entries, speaker_of, loader):
        self.name, self.entries, self.speaker_of, self.loader = name, entries, speaker_of, loader
        self.at, self.skipped, self._cached = 0, [], (None, None)

    def next(self) -> Clip | None:
        """The next usable clip without consuming it (None when the pool is empty)."""
        while self.at < len(self.entries):
            if self._cached[0] == self.at:
                return self._cached[1]
            entry = self.entries[self.at]
            clip = self.loader(entry, self.speaker_of(entry))
            if clip is not None:
                self._cached = (self.at, clip)
                return clip
            self.skipped.append(label(entry))
            self.at += 1
        return None

    def take(self):
        self.at += 1


def label(entry) -> str:
    """A pool entry's name: its file, (ogg, speaker)'s file, (oggs, gaps)'s files joined."""
    first = entry[0] if isinstance(entry, tuple) else entry
    if isinstance(first, tuple):
        return " + ".join(map(rel, first))
    return rel(first) if isinstance(first, Path) else str(entry)


def rel(path) -> str:
    try:
        return str(Path(path).relative_to(ROOT))
    except ValueError:
        return str(path)


def file_loader(entry, speaker):
    return trim(read_audio(entry), speaker, rel(entry))


# ------------------------------------------------------------------ the sources

def fillets_dialogue() -> list[tuple[Path, str]]:
    """(ogg, speaker) of every Dutch line of the two fish, in script order, level by level."""
    line = re.compile(r'dialogId\(\s*"([^"]+)"\s*,\s*"([^"]*)"')
    who = {"font_small": "nl_small", "font_big": "nl_big"}
    out = []
    for script in sorted((FILLETS / "script").glob("*/dialogs_nl.lua")):
        level = script.parent.name
        for ident, font in line.findall(script.read_text(encoding="utf-8")):
            ogg = FILLETS / "sound" / level / "nl" / f"{ident}.ogg"
            if font in who and ogg.is_file():
                out.append((ogg, who[font]))
    if not out:
        raise Missing(f"no Dutch Fillets dialogue under {FILLETS}")
    assert all("/nl/" in str(p) and "/cs/" not in str(p) for p, _ in out)
    return out


def asterisk_pool(name: str) -> Pool:
    speaker, pkg, subdir, ext = ASTERISK_VOICES[name]
    files = {}
    for f in dpkg_files(pkg):
        p = Path(f)
        if (p.suffix == ext and p.is_file() and "/silence/" not in f
                and (not subdir or f"/{subdir}/" in f) and not ASTERISK_SKIP.match(p.stem)):
            files.setdefault(str(p.resolve()), p)
    paths = sorted(files.values())
    order = np.random.default_rng([SEED, zlib.crc32(name.encode())]).permutation(len(paths))
    return Pool(name, [paths[i] for i in order], lambda _: speaker, file_loader)


def pocketsphinx_pool(who: str) -> Pool:
    paths = sorted((ROOT / "benchmarks" / "data" / "voices").glob(f"{who}-*.wav"))
    if not paths:
        raise Missing(f"no benchmarks/data/voices/{who}-*.wav in this checkout")
    return Pool(who, paths, lambda _: f"ps_{who}", file_loader)


def klettres_pool(lang: str) -> Pool:
    """One KLettres language (one voice, kl_<lang>): its items shuffled, then grouped into
    entries (items, gaps) of KL_ITEMS items with KL_GAP_S of silence between them."""
    assert lang not in KL_HELD_OUT
    paths = sorted((KLETTRES / lang).glob("*/*.ogg"))       # alpha/ and syllab/
    if not paths:
        raise Missing(f"no KLettres voice {lang!r} under {KLETTRES}")
    rng = rng_for(f"klettres:{lang}")
    paths = [paths[i] for i in rng.permutation(len(paths))]
    groups, at = [], 0
    while len(paths) - at >= KL_ITEMS[0]:
        n = int(rng.integers(KL_ITEMS[0], KL_ITEMS[1] + 1))
        gaps = (rng.uniform(*KL_GAP_S, n - 1) * SR).astype(int)
        groups.append((tuple(paths[at:at + n]), tuple(int(g) for g in gaps)))
        at += n
    return Pool(lang, groups, lambda _: f"kl_{lang}", klettres_loader)


def klettres_loader(entry, speaker) -> Clip | None:
    """The group's usable items joined by its gaps; spans closer than MIN_PAUSE_S merged."""
    paths, gaps = entry
    items = []
    for path in paths:
        y = read_audio(path)
        if np.abs(y).max() <= KL_MAX_PEAK:
            clip = trim(np.clip(y, -1.0, 1.0), speaker, rel(path), KL_MIN_SPEECH_S)
            items += [clip] if clip is not None else []
    if not items:
        return None
    audio, spans, at = [], [], 0
    for item, gap in zip(items, (0,) + gaps):
        audio += [np.zeros(gap), item.audio]
        spans += [[at + gap + a, at + gap + b] for a, b in item.spans]
        at += gap + len(item.audio)
    merged = [spans[0]]
    for a, b in spans[1:]:
        if a - merged[-1][1] < MIN_PAUSE_S * SR:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    clip = Clip(np.concatenate(audio), [tuple(m) for m in merged], speaker,
                " + ".join(item.source for item in items))
    return clip if clip.speech >= MIN_SPEECH_S * SR else None


def sample_turn_pools() -> dict[str, Pool]:
    """The sample's turns without their overlapped parts (those over 1 s), per speaker, as
    clips whose whole extent is speech (the reference's word for it, not our trimming)."""
    from em.io.rttm import read_rttm
    wav = read_audio(ROOT / "examples" / "data" / "sample.wav")
    ref = read_rttm(ROOT / "examples" / "data" / "sample.rttm")
    pieces = {}
    for t in ref:
        lo, hi = t.onset, t.offset
        for u in ref:
            if u is not t and u.onset < hi and u.offset > lo:
                if u.onset <= lo:
                    lo = max(lo, u.offset)
                else:
                    hi = min(hi, u.onset)
        a, b = int(round(lo * SR)), int(round(hi * SR))
        if b - a > SR:
            pieces.setdefault(t.speaker, []).append((a, b))

    def loader(entry, speaker):
        a, b = entry
        return Clip(wav[a:b], [(0, b - a)], speaker,
                    f"examples/data/sample.wav[{a / SR:.3f}:{b / SR:.3f}]")
    return {spk: Pool(spk, spans, lambda _, s=spk: f"pyannote_{s}", loader)
            for spk, spans in sorted(pieces.items())}


# ------------------------------------------------------------------ assembling recordings

@dataclass
class Recording:
    name: str
    sources: list
    condition: dict                             # its keys: the module's docstring
    clips: list = field(default_factory=list)   # Clip, in order
    pauses: list = field(default_factory=list)  # samples of silence before each clip

    def length(self, extra=0) -> int:
        return (sum(len(c.audio) for c in self.clips) + sum(self.pauses) + extra
                + int(EDGE_S * SR))


def rng_for(name: str) -> np.random.Generator:
    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


def add_clip(rec: Recording, pool: Pool, rng, max_s: float) -> bool:
    """Append pool's next clip after a seeded pause if the recording stays within max_s."""
    clip = pool.next()
    if clip is None:
        return False
    pause = int(EDGE_S * SR) if not rec.clips else int(rng.uniform(*PAUSE_S) * SR)
    if rec.length(pause + len(clip.audio)) > max_s * SR:
        return False
    pool.take()
    rec.clips.append(clip)
    rec.pauses.append(pause)
    return True


def dialogue(rec, pool, rng, max_s):
    """Consecutive lines of the dialogue pool up to max_s."""
    while add_clip(rec, pool, rng, max_s):
        pass


def dialogue_with_guest(rec, pool, guest, rng, max_s, p=0.3):
    """The dialogue, and after a turn of it, with probability p, 1-2 utterances of guest."""
    while True:
        clip = pool.next()
        if clip is None:
            return
        before = rec.clips[-1].speaker if rec.clips else None
        if before is not None and before != clip.speaker and before != guest.speaker_of(None) \
                and rng.random() < p:
            for _ in range(rng.integers(1, 3)):
                if not add_clip(rec, guest, rng, max_s):
                    return
        if not add_clip(rec, pool, rng, max_s):
            return


def rotation(rec, pools, rng, max_s, turn=(1, 3)):
    """Turns of turn[0]..turn[1] utterances; each turn's speaker drawn among the others."""
    pools = list(pools)
    current = None
    while pools:
        choices = [p for p in pools if p is not current] or pools
        current = choices[rng.integers(len(choices))]
        for _ in range(rng.integers(turn[0], turn[1] + 1)):
            if not add_clip(rec, current, rng, max_s):
                if current.next() is None:          # this speaker has nothing left
                    pools.remove(current)
                    break
                return                              # the recording is full


def pink_noise(rng, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    spectrum /= np.sqrt(f)
    spectrum[0] = 0.0
    y = np.fft.irfft(spectrum, n)
    return y / y.std()


def render(rec: Recording, rng) -> tuple[np.ndarray, list]:
    """(samples, [(onset sample, length, speaker)]) of the assembled recording."""
    cond, gains, g, last = rec.condition, [], 0.0, None
    for clip in rec.clips:
        if clip.speaker != last and cond.get("gains"):
            g = rng.uniform(*GAIN_DB)
        elif clip.speaker != last and cond.get("jumps_db"):
            j = float(cond["jumps_db"])
            g = rng.choice([x for x in (-j, 0.0, j) if last is None or x != g])
        last = clip.speaker
        gains.append(g)
    y = np.zeros(rec.length())
    spans, at = [], 0
    for clip, pause, g in zip(rec.clips, rec.pauses, gains):
        at += pause
        y[at:at + len(clip.audio)] = clip.audio * 10 ** (g / 20)
        spans += [(at + a, b - a, clip.speaker) for a, b in clip.spans]
        at += len(clip.audio)
    return channel(y, spans, cond, rng), spans


def channel(y, spans, condition, rng) -> np.ndarray:
    """y under the condition's noise, scale, floor, telephone, DC offset and clipping, in this
    order (the module's docstring), saturated at full scale."""
    c, out = condition, y.copy()
    if c.get("noise"):
        speech = np.zeros(len(y), bool)
        for a, n, _ in spans:
            speech[a:a + n] = True
        noise = pink_noise(rng, len(y)) if c["noise"] == "pink" else rng.standard_normal(len(y))
        out += noise * np.sqrt(np.mean(y[speech] ** 2) / 10 ** (c["snr_db"] / 10))
    floor = 10 ** (c["floor_dbfs"] / 20) if "floor_dbfs" in c else 0.0
    room = PEAK - abs(c.get("dc", 0.0)) - 6 * floor   # the floor's peaks: within 6 sigma
    peak = np.abs(out).max()
    if peak > room:                                 # one scale for all: SNR and gains kept
        out *= room / peak
    if floor:
        out += rng.standard_normal(len(out)) * floor
    if c.get("telephone"):
        out = telephone(out, c.get("mulaw", False))
    out += c.get("dc", 0.0)
    out *= 10 ** (c.get("clip_db", 0.0) / 20)
    return np.clip(out, -1.0, 1.0)


def telephone(y, mulaw: bool) -> np.ndarray:
    """y down to 8 kHz, band-passed to 300-3400 Hz, 8-bit mu-law if asked, back to 16 kHz;
    scaled down after the filters where their overshoot passes PEAK."""
    from scipy.signal import butter, resample_poly, sosfilt
    x = resample_poly(y, TEL_SR, SR)
    x = sosfilt(butter(6, TEL_BAND, btype="bandpass", fs=TEL_SR, output="sos"), x)
    x *= min(1.0, PEAK / np.abs(x).max())
    if mulaw:
        code = np.round(np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU) * 127) / 127
        x = np.sign(code) * np.expm1(np.abs(code) * np.log1p(MU)) / MU
    y = resample_poly(x, SR, TEL_SR)[:len(y)]
    return y * min(1.0, PEAK / np.abs(y).max())


def describe(condition) -> str:
    c, parts = condition, []
    if c.get("original"):
        parts.append("original recording")
    if c.get("noise"):
        parts.append(f"{c['noise']} noise {c['snr_db']:g} dB SNR")
    if c.get("gains"):
        parts.append(f"gain {GAIN_DB[0]:+g}..{GAIN_DB[1]:+g} dB per turn")
    if c.get("jumps_db"):
        parts.append(f"level jumps of {c['jumps_db']:g} dB between turns")
    if "floor_dbfs" in c:
        parts.append(f"white floor {c['floor_dbfs']:g} dBFS")
    if c.get("telephone"):
        parts.append("8 kHz telephone band 300-3400 Hz" + (", mu-law" if c.get("mulaw") else ""))
    if c.get("dc"):
        parts.append(f"DC offset {c['dc']:+g}")
    if c.get("clip_db"):
        parts.append(f"{c['clip_db']:+g} dB, clipped at full scale")
    if not (c.get("original") or c.get("noise") or "floor_dbfs" in c or c.get("dc")):
        parts.append("digital silence between lines")
    return ", ".join(parts)


# ------------------------------------------------------------------ writing

def diarizer_settings() -> dict:
    """diarizer.cfg's settings (not its paths) for the per-recording configurations;
    initial_clusters and M_mfcc only if the configuration requires them."""
    from em.diarization.config import KEYS, REQUIRED, SECTION
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(ROOT / "diarizer.cfg", encoding="utf-8")
    paths = {"basename", "mfcc_feats", "audio_file", "spnsp_file", "reference_rttm",
             "output_cluster", "gmm_output"}
    out = {}
    for key, value in parser[SECTION].items():
        if key in paths or key not in KEYS:
            continue
        if key in ("initial_clusters", "M_mfcc") and KEYS[key][1] is not REQUIRED:
            continue
        out[key] = value
    return out


def write_recording(out: Path, name: str, y, turns, settings: dict):
    """NAME.wav (y: samples, or a WAV file to copy as is), NAME.rttm and NAME.cfg."""
    import soundfile as sf
    from em.io.rttm import write_rttm
    if isinstance(y, Path):
        shutil.copyfile(y, out / f"{name}.wav")
    else:
        sf.write(out / f"{name}.wav", y.astype(np.float32), SR, subtype="PCM_16")
    write_rttm(out / f"{name}.rttm", turns)
    lines = [f"# {name}: development recording written by benchmarks/build_devset.py",
             "[Diarizer]", f"basename = {name}", f"audio_file = {name}.wav",
             f"reference_rttm = {name}.rttm", f"output_cluster = {name}.hyp.rttm",
             f"gmm_output = {name}.gmm"] + [f"{k} = {v}" for k, v in settings.items()]
    (out / f"{name}.cfg").write_text("\n".join(lines) + "\n")


def check_inputs():
    missing = [p for p in PACKAGES if dpkg_status(p) is None]
    if missing:
        raise Missing(f"missing Debian package(s) {', '.join(missing)}; install them with: "
                      f"apt-get update && apt-get install -y {' '.join(missing)}")
    try:
        import scipy.signal  # noqa: F401
        import soundfile  # noqa: F401
    except ImportError as exc:
        raise Missing(f"{exc}; install with: pip install -e '.[diarizer]'") from None


def plan():
    """[(name, sources, condition, builder(rec, rng) or the name of the recording whose turns
    it repeats)], in build order (pools are shared: no clip is used twice, so the order
    matters), and the pools by name."""
    nl = Pool("fillets-nl", fillets_dialogue(), lambda e: e[1],
              lambda e, spk: file_loader(e[0], spk))
    ast = {k: asterisk_pool(k) for k in ASTERISK_VOICES}
    kl = {k: klettres_pool(k) for k in KL_LANGS}
    ps = {k: pocketsphinx_pool(k) for k in ("cards", "librivox")}
    sam = sample_turn_pools()
    F, A, P, S, K = "fillets-nl", "asterisk", "pocketsphinx", "pyannote-sample", "klettres"

    def dlg(max_s):
        return lambda rec, rng: dialogue(rec, nl, rng, max_s)

    def rot(pools, names, max_s, turn=(1, 3)):
        return lambda rec, rng: rotation(rec, [pools[k] for k in names], rng, max_s, turn)

    clean, gains, tel = {}, {"gains": True}, {"telephone": True, "mulaw": True}
    return [
        ("nl2_clean_20m", [F], clean, dlg(1200)),
        ("nl2_pink15_5m", [F], {"noise": "pink", "snr_db": 15}, dlg(300)),
        ("nl2_white10_gain_3m", [F], {"noise": "white", "snr_db": 10, **gains}, dlg(180)),
        ("nl2_jumps20_2m", [F], {"jumps_db": 20}, dlg(120)),
        ("nl2_dc_40s", [F], {"dc": 0.05}, dlg(40)),
        ("nl2_pink5_1m", [F], {"noise": "pink", "snr_db": 5}, dlg(60)),
        ("nl2_clip12_2m", [F], {"clip_db": 12}, dlg(120)),
        ("nl2_clean_3m", [F], clean, dlg(180)),
        ("nl2_tel_3m", [F], tel, "nl2_clean_3m"),
        ("ast3_clean_4m", [A], clean, rot(ast, ["allison_en", "june_fr", "carlo_it"], 240)),
        ("ast3_tel_4m", [A], {"telephone": True}, "ast3_clean_4m"),
        ("ast4_pink20_gain_5m", [A], {"noise": "pink", "snr_db": 20, **gains},
         rot(ast, ["ivr_ru", "armelle_fr", "july_es", "carlo_it"], 300)),
        ("ast2_bilingual_dc_2m", [A], {"dc": -0.05},
         lambda rec, rng: bilingual(rec, ast, rng, 120)),
        ("ast2_white15_1m", [A], {"noise": "white", "snr_db": 15},
         rot(ast, ["ivr_ru", "armelle_fr"], 60)),
        ("ast4_floor60_6m", [A], {"floor_dbfs": -60},
         rot(ast, ["allison_en", "june_fr", "carlo_it", "ivr_ru"], 360)),
        ("nl3_guest_pink10_3m", [F, A], {"noise": "pink", "snr_db": 10},
         lambda rec, rng: dialogue_with_guest(rec, nl, ast["carlo_it"], rng, 180)),
        ("kl2_clean_3m", [K], clean, rot(kl, ["ml", "lt"], 180, (1, 2))),
        ("kl8_clean_4m", [K], clean,
         rot(kl, ["de", "en", "en_GB", "fr", "it", "nl", "ru", "uk"], 240, (1, 2))),
        ("kl5ast2_floor50_dc_3m", [K, A], {"floor_dbfs": -50, "dc": 0.02},
         lambda rec, rng: rotation(rec, [kl[k] for k in ("da", "es", "he", "nds", "pt_BR")]
                                   + [ast["armelle_fr"], ast["july_es"]], rng, 180, (1, 2))),
        ("mix4_clean_1m", [P, S], clean,
         lambda rec, rng: rotation(rec, [ps["cards"], ps["librivox"]] + list(sam.values()),
                                   rng, 120, turn=(1, 2))),
    ], {"fillets-nl": nl, **{f"asterisk:{k}": v for k, v in ast.items()},
        **{f"klettres:{k}": v for k, v in kl.items()},
        **{f"pocketsphinx:{k}": v for k, v in ps.items()},
        **{f"sample:{k}": v for k, v in sam.items()}}


def bilingual(rec, ast, rng, max_s):
    """Allison (her English and Spanish prompts alternating by turn) and June."""
    allison = [ast["allison_en"], ast["allison_es"]]
    k = 0
    current = None
    while True:
        if current is ast["june_fr"] or current is None and rng.random() < 0.5:
            current = allison[k % 2]
            k += 1
        else:
            current = ast["june_fr"]
        for _ in range(rng.integers(1, 4)):
            if not add_clip(rec, current, rng, max_s):
                return


def sample_recordings(out: Path, settings):
    """The bundled sample as is (the file copied), with pink noise at 10 dB SNR, through the
    telephone channel and with a DC offset; the reference is the bundled RTTM's turns, overlap
    included.  [(name, samples, spans, cond)]"""
    from em.io.rttm import Turn, read_rttm
    src = ROOT / "examples" / "data" / "sample.wav"
    wav = read_audio(src)
    ref = read_rttm(ROOT / "examples" / "data" / "sample.rttm")
    spans = [(int(round(t.onset * SR)), int(round(t.duration * SR)), t.speaker) for t in ref]
    done = []
    for name, cond in (("sample", {"original": True}),
                       ("sample_pink10", {"original": True, "noise": "pink", "snr_db": 10}),
                       ("sample_tel", {"original": True, "telephone": True, "mulaw": True}),
                       ("sample_dc", {"original": True, "dc": 0.05})):
        y = src if name == "sample" else channel(wav, spans, cond, rng_for(name))
        write_recording(out, name, y, [Turn(name, 1, t.onset, t.duration, t.speaker)
                                       for t in ref], settings)
        done.append((name, len(wav), spans, cond))
    return done


def speaker_seconds(spans) -> dict:
    out = {}
    for _, n, spk in spans:
        out[spk] = out.get(spk, 0) + int(n)
    return {spk: round(n / SR, 3) for spk, n in sorted(out.items())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", default=str(ROOT / "benchmarks" / "devset"),
                   help="output directory (default benchmarks/devset/)")
    a = p.parse_args(argv)
    try:
        check_inputs()
        recipes, pools = plan()
    except Missing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import soundfile as sf
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = diarizer_settings()
    manifest = {"generator": "benchmarks/build_devset.py", "seed": SEED, "sample_rate": SR,
                "format": "WAV PCM_16 mono; RTTM one SPEAKER line per stretch of speech",
                "parameters": {"top_db": TOP_DB, "floor_db": FLOOR_DB,
                               "min_pause_s": MIN_PAUSE_S,
                               "edge_merge_frames": EDGE_MERGE_FRAMES,
                               "min_edge_run_s": MIN_EDGE_RUN_S, "min_speech_s": MIN_SPEECH_S,
                               "clip_levels": "raw", "pause_s": list(PAUSE_S),
                               "edge_s": EDGE_S, "gain_db": list(GAIN_DB), "peak": PEAK,
                               "telephone": {"sample_rate": TEL_SR, "band_hz": list(TEL_BAND),
                                             "mu": MU},
                               "klettres": {"items": list(KL_ITEMS), "gap_s": list(KL_GAP_S),
                                            "min_speech_s": KL_MIN_SPEECH_S,
                                            "max_peak": KL_MAX_PEAK,
                                            "held_out": list(KL_HELD_OUT)}},
                "packages": {}, "sources": {}, "recordings": []}
    lic = out / "licences"
    lic.mkdir(exist_ok=True)
    for pkg, what in PACKAGES.items():
        cp = Path("/usr/share/doc") / pkg / "copyright"
        shutil.copyfile(cp, lic / f"{pkg}.copyright")
        manifest["packages"][pkg] = {"version": dpkg_status(pkg), "content": what,
                                     "copyright_file": str(cp),
                                     "copyright_sha256": hashlib.sha256(cp.read_bytes())
                                     .hexdigest()}
    for f in ("benchmarks/data/LICENSE.txt", "examples/data/LICENSE-sample.txt"):
        shutil.copyfile(ROOT / f, lic / Path(f).name)
    manifest["sources"] = SOURCES
    total = 0.0

    def report(name, n_samples, spans, cond, sources, clips=None, same_as=None):
        nonlocal total
        seconds = n_samples / SR
        pcm = sf.read(out / f"{name}.wav", dtype="int16")[0]
        zeros, full = int(np.sum(pcm == 0)), int(np.sum(np.abs(pcm.astype(int)) >= 32767))
        total += seconds
        spk = speaker_seconds(spans)
        turns = 1 + sum(1 for x, y in zip(spans, spans[1:]) if x[2] != y[2]) if spans else 0
        entry = {"name": name, "wav": f"{name}.wav", "rttm": f"{name}.rttm",
                 "cfg": f"{name}.cfg", "duration_s": round(seconds, 3),
                 "speech_s": round(sum(n for _, n, _ in spans) / SR, 3),
                 "n_speakers": len(spk), "speakers": spk, "source": sources,
                 "condition": {**cond, "description": describe(cond)},
                 "n_rttm_lines": len(spans), "n_turns": turns, "zero_samples": zeros,
                 "full_scale_samples": full}
        if same_as:
            entry["same_turns_as"] = same_as
        if clips is not None:
            entry["n_utterances"] = len(clips)
            entry["clips"] = [c.source for c in clips]
        manifest["recordings"].append(entry)
        print(f"{name:22s} {seconds:6.1f} s  {len(spk)} spk  {'+'.join(sources):18s} "
              f"zeros {100 * zeros / len(pcm):4.1f}%  full scale {full:6d}  {describe(cond)}  "
              f"({len(spans)} RTTM lines, {turns} turns)", flush=True)

    built = {}
    for name, sources, cond, build in recipes:
        rng = rng_for(name)
        rec = built[name] = Recording(name, sources, cond)
        if isinstance(build, str):                  # another recording's turns
            rec.clips, rec.pauses = built[build].clips, built[build].pauses
        else:
            build(rec, rng)
        y, spans = render(rec, rng)
        from em.io.rttm import Turn
        write_recording(out, name, y, [Turn(name, 1, a / SR, n / SR, spk)
                                       for a, n, spk in spans], settings)
        report(name, len(y), spans, cond, sources, rec.clips,
               build if isinstance(build, str) else None)
    for name, n, spans, cond in sample_recordings(out, settings):
        report(name, n, spans, cond, ["pyannote-sample"])
    manifest["skipped_clips"] = {k: v.skipped for k, v in pools.items() if v.skipped}
    manifest["total_s"] = round(total, 3)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    print(f"total: {total:.1f} s = {total / 60:.1f} min in {len(manifest['recordings'])} "
          f"recordings -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
