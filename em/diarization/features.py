"""Front end: WAV -> MFCC frames (librosa) and energy-based speech/non-speech.

19 MFCCs (c1..c19 of 20; c0, the energy, is left out) from 25 ms windows every 10 ms over 40
mel bands, as the 2011 diarizer's features.  Speech frames: RMS energy within 35 dB of the
loudest frames and 6 dB above the 10th-percentile noise floor, median-smoothed over 0.3 s.
"""
from __future__ import annotations

import numpy as np

FRAME_PERIOD = 100000          # HTK units (100 ns): 10 ms
N_MFCC = 19


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


def mfcc(samples: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """(frames, 19) float32 MFCCs, one frame every 10 ms."""
    import librosa
    hop, win = sample_rate // 100, sample_rate // 40
    if len(samples) < win:
        raise AudioError(f"audio of {len(samples) / sample_rate:.3f} s is shorter than one "
                         f"{1000 * win // sample_rate} ms analysis window")
    feats = librosa.feature.mfcc(y=samples, sr=sample_rate, n_mfcc=N_MFCC + 1, n_fft=win,
                                 hop_length=hop, win_length=win, n_mels=40, center=False)
    return np.ascontiguousarray(feats[1:].T, dtype=np.float32)


def speech_frames(samples: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """Boolean speech mask, one entry per MFCC frame."""
    import librosa
    from scipy.ndimage import median_filter
    hop, win = sample_rate // 100, sample_rate // 40
    rms = librosa.feature.rms(y=samples, frame_length=win, hop_length=hop, center=False)[0]
    db = 20 * np.log10(np.maximum(rms, 1e-10))
    speech = (db > db.max() - 35) & (db > np.percentile(db, 10) + 6)
    return median_filter(speech.astype(np.uint8), size=31).astype(bool)
