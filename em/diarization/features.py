"""Front end: WAV -> MFCC frames (librosa) and speech/non-speech, robust to real input.

19 MFCCs (c1..c19 of 20; c0, the energy, is left out) from 30 ms windows every 10 ms over 40
mel bands: the ICSI diarizer's front end.  Before analysis the DC is removed (a
``HIGHPASS_HZ`` high-pass) and one LSB of 16-bit white noise is added (``DITHER``, seeded:
Kaldi's default): digital silence, DC offsets and clipping then give no degenerate
features.  The mel powers are logged without librosa's floor (80 dB under the recording's
loudest frame, which flattens the weak bands of a speaker 20 dB quieter than the other);
``floor_db`` > 0 floors each frame's powers that far under its own strongest band instead, so
a speaker's level moves no feature (the ``spectral_floor_db`` setting: 0 on the development
set's choice, 40 for recordings with level jumps).

Speech frames: WebRTC's voice activity detector (``webrtcvad``, one decision per 10 ms frame)
on the recording levelled so that its loud frames sit at ``VAD_LEVEL_DBFS`` (it misses speech
recorded 40 dB low), then smoothed: speech runs shorter than ``MIN_SPEECH`` and pauses shorter
than ``MIN_PAUSE`` are absorbed by their neighbours.  Without webrtcvad, an energy detector:
RMS within 35 dB of the loudest frames and 6 dB above the 10th-percentile noise floor.
Frames of (near-)digital silence (a constant value, ``SILENCE_LSB``) never make speech,
whatever the detector says; a short silent gap inside speech (under ``MIN_PAUSE``) is speech,
as references count it, and the pipeline labels it like its neighbours without clustering it.
"""
from __future__ import annotations

import numpy as np

from em.diarization.settings import Settings

FRAME_PERIOD = 100000          # HTK units (100 ns): 10 ms
N_MFCC = 19
WINDOW_S = 0.030
VAD_MODE = 1                   # webrtcvad aggressiveness 0..3
MIN_SPEECH = 0.50              # s: shorter speech runs become pause
MIN_PAUSE = 0.30               # s: shorter pauses become speech
HIGHPASS_HZ = 20.0             # DC and rumble removal
DITHER = 1.0 / 32768           # std of the seeded white noise added before analysis: 1 LSB
SILENCE_LSB = 2                # a frame whose samples span at most this many 16-bit steps
                               # is (near-)digital silence, whatever its DC offset
VAD_LEVEL_DBFS = -20.0         # the detector hears the recording scaled so its loud frames
VAD_MAX_GAIN_DB = 50.0         # ... (95th percentile of 10 ms frames) sit here, at most this


class AudioError(ValueError):
    """The audio file cannot be used (unreadable, wrong rate, several channels, too short)."""


def read_wav(path, sample_rate: int = 16000) -> np.ndarray:
    """Mono float32 samples of a WAV file at ``sample_rate``; anything else is an AudioError."""
    import soundfile as sf
    try:
        info = sf.info(str(path))
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except RuntimeError as exc:                     # soundfile's error for unreadable files
        raise AudioError(f"{path}: cannot read audio ({exc})") from None
    if info.channels != 1:
        raise AudioError(f"{path}: {info.channels} channels; the diarizer needs mono audio "
                         "(e.g. sox in.wav -c 1 out.wav)")
    if sr != sample_rate:
        raise AudioError(f"{path}: sample rate {sr} Hz; the diarizer needs {sample_rate} Hz "
                         f"(e.g. sox in.wav -r {sample_rate} out.wav)")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: samples contain NaN or infinite values")
    return data[:, 0]


def front_end(samples: np.ndarray, sample_rate: int = 16000,
              floor_db: float = Settings.spectral_floor_db, detector: str | None = "auto"):
    """(:func:`mfcc`, :func:`speech_frames` (None when ``detector`` is None),
    :func:`silent_frames`) of one recording, its high-pass run once (two seconds for 20
    minutes of audio)."""
    _check_length(samples, sample_rate)
    x, silent = clean(samples, sample_rate), silent_frames(samples, sample_rate)
    speech = None if detector is None else _speech(x, silent, sample_rate, detector)
    return _mfcc(x, sample_rate, floor_db), speech, silent


def speaker_frames(samples: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """The frames the diarizer clusters (speech, no digital silence), standardised: what a
    diarizer UBM is trained on (``examples/train_ubm.py`` on WAV files)."""
    X, speech, silent = front_end(samples, sample_rate)
    keep = speech & ~silent
    if not keep.any():
        raise AudioError("no speech frames")
    return standardise(X[keep])[0]


def standardise(X: np.ndarray):
    """(frames with each feature at mean 0, variance 1, the means, the deviations): what the
    clustering works on."""
    centre, scale = X.mean(axis=0), np.maximum(X.std(axis=0), 1e-12)
    return ((X - centre) / scale).astype(X.dtype, copy=False), centre, scale


def mfcc(samples: np.ndarray, sample_rate: int = 16000,
         floor_db: float = Settings.spectral_floor_db) -> np.ndarray:
    """(frames, 19) float32 MFCCs, one frame every 10 ms; each frame's mel powers floored
    ``floor_db`` under its strongest band (0: no floor but the dither's)."""
    _check_length(samples, sample_rate)
    return _mfcc(clean(samples, sample_rate), sample_rate, floor_db)


def speech_frames(samples: np.ndarray, sample_rate: int = 16000, detector: str = "auto"
                  ) -> np.ndarray:
    """Boolean speech mask, one entry per MFCC frame.  ``detector``: 'webrtcvad', 'energy' or
    'auto' (webrtcvad when it is installed)."""
    return _speech(clean(samples, sample_rate), silent_frames(samples, sample_rate),
                   sample_rate, detector)


def clean(samples: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """float64 samples without DC (a 2nd-order ``HIGHPASS_HZ`` Butterworth high-pass)."""
    from scipy.signal import butter, sosfilt
    sos = butter(2, HIGHPASS_HZ, "highpass", fs=sample_rate, output="sos")
    x = np.asarray(samples, dtype=np.float64)
    return sosfilt(sos, x - x[0])                   # from the first sample: no start-up step


def _check_length(samples, sample_rate):
    win = _hop_win(sample_rate)[1]
    if len(samples) < win:
        raise AudioError(f"audio of {len(samples) / sample_rate:.3f} s is shorter than one "
                         f"{1000 * win // sample_rate} ms analysis window")


def _mfcc(x, sample_rate, floor_db):
    """:func:`mfcc` of the high-passed samples ``x`` (not changed)."""
    import librosa
    hop, win = _hop_win(sample_rate)
    x = x + DITHER * np.random.default_rng(0).standard_normal(len(x))
    power = librosa.feature.melspectrogram(y=x, sr=sample_rate, n_fft=win, hop_length=hop,
                                           win_length=win, n_mels=40, center=False)
    if floor_db > 0:
        power = np.maximum(power, power.max(axis=0) * 10 ** (-floor_db / 10))
    feats = librosa.feature.mfcc(S=10 * np.log10(power), n_mfcc=N_MFCC + 1)
    return np.ascontiguousarray(feats[1:].T, dtype=np.float32)


def _speech(x, silent, sample_rate, detector):
    """:func:`speech_frames` of the high-passed samples ``x``, ``silent`` never speech."""
    hop, win = _hop_win(sample_rate)
    n = 1 + (len(x) - win) // hop
    if detector == "auto":
        try:
            import webrtcvad  # noqa: F401
            detector = "webrtcvad"
        except ImportError:
            detector = "energy"
    raw = _webrtc(x * _vad_gain(frame_db(x, hop)), sample_rate, hop) \
        if detector == "webrtcvad" else _energy(x, sample_rate, hop, win)
    # frame i of the MFCCs covers [i*hop, i*hop + win): centre it on the 10 ms decisions
    centre = np.minimum(np.arange(n) + (win // hop) // 2, len(raw) - 1)
    frame_s = hop / sample_rate
    return smooth(raw[centre] & ~silent, MIN_SPEECH / frame_s, MIN_PAUSE / frame_s)


def silent_frames(samples: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """MFCC frames of (near-)digital silence: a constant value."""
    hop, win = _hop_win(sample_rate)
    windows = np.lib.stride_tricks.sliding_window_view(samples, win)[::hop]
    return np.ptp(windows, axis=1) <= SILENCE_LSB / 32768


def frame_db(x: np.ndarray, hop: int) -> np.ndarray:
    """RMS level in dBFS of each ``hop`` samples."""
    power = np.mean(x[:len(x) // hop * hop].reshape(-1, hop) ** 2, axis=1)
    return 10 * np.log10(power + 1e-30)


def _vad_gain(db: np.ndarray) -> float:
    """The gain that puts the loud 10 ms frames (95th percentile) at ``VAD_LEVEL_DBFS``."""
    loud = np.percentile(db, 95) if len(db) else VAD_LEVEL_DBFS
    return 10 ** (np.clip(VAD_LEVEL_DBFS - loud, -VAD_MAX_GAIN_DB, VAD_MAX_GAIN_DB) / 20)


def _hop_win(sample_rate: int) -> tuple[int, int]:
    """(samples between frames, samples per analysis window): 10 ms and WINDOW_S."""
    return sample_rate // 100, int(round(sample_rate * WINDOW_S))


def _webrtc(samples, sample_rate, hop) -> np.ndarray:
    import webrtcvad
    vad = webrtcvad.Vad(VAD_MODE)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    n = len(pcm) // hop
    return np.array([vad.is_speech(pcm[i * hop:(i + 1) * hop].tobytes(), sample_rate)
                     for i in range(n)], dtype=bool)


def _energy(samples, sample_rate, hop, win) -> np.ndarray:
    import librosa
    rms = librosa.feature.rms(y=samples, frame_length=win, hop_length=hop, center=False)[0]
    db = 20 * np.log10(np.maximum(rms, 1e-10))
    return (db > db.max() - 35) & (db > np.percentile(db, 10) + 6)


def smooth(mask: np.ndarray, min_speech: float, min_pause: float) -> np.ndarray:
    """Fill pauses shorter than ``min_pause`` frames (not at the edges), then drop speech runs
    shorter than ``min_speech`` frames (at the edges too: the detector's start-up)."""
    out = mask.copy()
    for value, shortest in ((False, min_pause), (True, min_speech)):
        edges = np.flatnonzero(np.diff(np.r_[~out[0], out, ~out[-1]].astype(np.int8)))
        for a, b in zip(edges[:-1], edges[1:]):
            inner = 0 < a and b < len(out)          # a pause at an edge is not a pause
            if out[a] == value and b - a < shortest and (inner or value):
                out[a:b] = not value
    return out
