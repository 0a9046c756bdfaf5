"""Read and write HTK parameter files (the HTK book, section 5.10).

Layout: a big-endian 12-byte header (int32 nSamples, int32 sampPeriod in 100 ns units,
int16 sampSize in bytes per frame, int16 parmKind), then the frames.  Float kinds store
big-endian float32; WAVEFORM, DISCRETE and IREFC store int16.  With the _C qualifier the
frames are int16 and two float32 vectors A and B (counted as 4 extra samples in nSamples)
follow the header; x = (int16 + B) / A.  With _K a 2-byte CRC follows the data.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

from em.io.files import atomic_write

__all__ = ["HTKError", "HTKHeader", "read_htk", "write_htk", "parse_kind", "kind_to_str"]

_HEADER = struct.Struct(">iihH")  # parmKind read unsigned: _T (0o100000) sets the sign bit
HEADER_SIZE = _HEADER.size  # 12

BASE_KINDS = ("WAVEFORM", "LPC", "LPREFC", "LPCEPSTRA", "LPDELCEP", "IREFC", "MFCC",
              "FBANK", "MELSPEC", "USER", "DISCRETE", "PLP")
_BASE_CODE = {name: code for code, name in enumerate(BASE_KINDS)}
# in HTK's printing order
QUALIFIERS = (("E", 0o100), ("N", 0o200), ("D", 0o400), ("A", 0o1000), ("C", 0o2000),
              ("Z", 0o4000), ("K", 0o10000), ("0", 0o20000), ("T", 0o100000))
_QUAL_CODE = dict(QUALIFIERS)
_BASE_MASK = 0o77
_KNOWN_BITS = _BASE_MASK | sum(_QUAL_CODE.values())
_C, _K = _QUAL_CODE["C"], _QUAL_CODE["K"]
_INT16_KINDS = {_BASE_CODE["WAVEFORM"], _BASE_CODE["DISCRETE"], _BASE_CODE["IREFC"]}
_IREFC = _BASE_CODE["IREFC"]
_IREFC_SCALE = 32767.0


class HTKError(ValueError):
    """An HTK file or argument that cannot be read or written; the message names the file."""


def parse_kind(kind) -> int:
    """parmKind code of a name like 'MFCC_E_D_A' (an int in 0..65535 is checked and returned)."""
    if isinstance(kind, (int, np.integer)) and not isinstance(kind, bool):
        code = int(kind)
        if not 0 <= code <= 0xFFFF:
            raise HTKError(f"parmKind {code} is outside 0..65535")
        if code & ~_KNOWN_BITS:
            raise HTKError(f"parmKind {code} (0o{code:o}) has unknown qualifier bits")
        if code & _BASE_MASK >= len(BASE_KINDS):
            raise HTKError(f"parmKind {code}: unknown base kind {code & _BASE_MASK}")
        return code
    if not isinstance(kind, str) or not kind:
        raise HTKError(f"parameter kind must be a name like 'MFCC_0' or an int, got {kind!r}")
    base, *quals = kind.upper().split("_")
    if base not in _BASE_CODE:
        raise HTKError(f"unknown base parameter kind {base!r} in {kind!r}; "
                       f"expected one of {', '.join(BASE_KINDS)}")
    code = _BASE_CODE[base]
    for q in quals:
        if q not in _QUAL_CODE:
            raise HTKError(f"unknown qualifier _{q} in parameter kind {kind!r}")
        if code & _QUAL_CODE[q]:
            raise HTKError(f"qualifier _{q} repeated in parameter kind {kind!r}")
        code |= _QUAL_CODE[q]
    return code


def _base_name(code: int) -> str:
    base = code & _BASE_MASK
    if base >= len(BASE_KINDS):
        raise HTKError(f"parmKind {code}: unknown base kind {base}")
    return BASE_KINDS[base]


def _qual_str(code: int) -> str:
    return "".join("_" + q for q, bit in QUALIFIERS if code & bit)


def kind_to_str(code: int) -> str:
    """Name of a parmKind code, e.g. 8198 -> 'MFCC_0'."""
    code = parse_kind(int(code))
    return _base_name(code) + _qual_str(code)


@dataclass
class HTKHeader:
    """The 12-byte header as stored (n_samples includes the 4 extra of _C files)."""

    n_samples: int
    samp_period: int  # 100 ns units
    samp_size: int  # bytes per frame
    parm_kind: int

    @property
    def base_kind(self) -> str:
        return _base_name(self.parm_kind)

    @property
    def qualifiers(self) -> str:
        return _qual_str(self.parm_kind)

    @property
    def kind_name(self) -> str:
        return self.base_kind + self.qualifiers

    @property
    def frame_period_s(self) -> float:
        return self.samp_period / 1e7

    @property
    def compressed(self) -> bool:
        return bool(self.parm_kind & _C)

    @property
    def n_frames(self) -> int:
        return self.n_samples - 4 if self.compressed else self.n_samples


def _check_header(h: HTKHeader, path, file_size: int) -> None:
    def err(msg):
        return HTKError(f"{path}: {msg}")

    if h.parm_kind & ~_KNOWN_BITS:
        raise err(f"parmKind {h.parm_kind} (0o{h.parm_kind:o}) has unknown qualifier bits")
    base = h.parm_kind & _BASE_MASK
    if base >= len(BASE_KINDS):
        raise err(f"unknown base parameter kind {base} (parmKind {h.parm_kind})")
    if h.n_samples <= 0:
        raise err(f"nSamples is {h.n_samples}; it must be positive")
    if h.samp_period <= 0:
        raise err(f"sampPeriod is {h.samp_period}; it must be positive")
    if h.samp_size <= 0:
        raise err(f"sampSize is {h.samp_size}; it must be positive")
    if h.compressed:
        if base in _INT16_KINDS:
            raise err(f"compressed (_C) {BASE_KINDS[base]} is not supported")
        if h.samp_size % 2:
            raise err(f"sampSize {h.samp_size} is odd; a compressed (_C) file stores "
                      f"2 bytes (int16) per coefficient, so sampSize must be 2*D")
        if h.n_samples <= 4:
            raise err(f"nSamples is {h.n_samples}; a compressed (_C) file counts A and B "
                      f"as 4 samples, so it must be at least 5")
    elif base in _INT16_KINDS:
        if h.samp_size % 2:
            raise err(f"sampSize {h.samp_size} is odd; {BASE_KINDS[base]} stores int16 values")
    elif h.samp_size % 4:
        raise err(f"sampSize {h.samp_size} is not a multiple of 4; "
                  f"{BASE_KINDS[base]} stores float32 values")
    crc = 2 if h.parm_kind & _K else 0
    expected = HEADER_SIZE + h.n_samples * h.samp_size + crc
    if file_size != expected:
        what = "truncated" if file_size < expected else "has extra bytes"
        raise err(f"file {what}: header (nSamples={h.n_samples}, sampSize={h.samp_size}, "
                  f"kind {h.kind_name}) implies {expected} bytes, file has {file_size}")


def read_htk(path):
    """Read an HTK parameter file.

    Returns ``(features, header)``: a native-endian C-contiguous float32 array of shape
    (frames, coefficients) and the :class:`HTKHeader`.  _C files are decompressed;
    WAVEFORM and DISCRETE int16 values are returned as float32, IREFC divided by 32767.
    Raises :class:`HTKError` (naming the file) for malformed files, and OSError (naming it)
    for a missing, unreadable or directory path.  The header is checked against the file's
    size before the data are read, so a large file that is not HTK is not read.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < HEADER_SIZE:
            raise HTKError(f"{path}: file has {size} bytes, shorter than the "
                           f"{HEADER_SIZE}-byte HTK header")
        h = HTKHeader(*_HEADER.unpack(f.read(HEADER_SIZE)))
        _check_header(h, path, size)
        data = f.read()
    if len(data) != size - HEADER_SIZE:
        raise HTKError(f"{path}: file changed size while being read")
    off = 0
    base = h.parm_kind & _BASE_MASK
    if h.compressed:
        D = h.samp_size // 2
        A = np.frombuffer(data, ">f4", D, off).astype(np.float64)
        B = np.frombuffer(data, ">f4", D, off + 4 * D).astype(np.float64)
        off += 8 * D
        if not (np.all(np.isfinite(A)) and np.all(np.isfinite(B))):
            raise HTKError(f"{path}: compression vectors A/B contain NaN or inf")
        if np.any(A == 0):
            raise HTKError(f"{path}: compression vector A has a zero (column "
                           f"{int(np.flatnonzero(A == 0)[0])}); cannot decompress")
        q = np.frombuffer(data, ">i2", h.n_frames * D, off).reshape(h.n_frames, D)
        x = ((q + B) / A).astype(np.float32)
    elif base in _INT16_KINDS:
        D = h.samp_size // 2
        x = np.frombuffer(data, ">i2", h.n_samples * D, off).reshape(h.n_samples, D)
        x = x.astype(np.float32)
        if base == _IREFC:
            x /= np.float32(_IREFC_SCALE)
    else:
        D = h.samp_size // 4
        x = np.frombuffer(data, ">f4", h.n_samples * D, off).reshape(h.n_samples, D)
        x = x.astype(np.float32)  # native-endian copy, never a view of the file bytes
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise HTKError(f"{path}: data contain NaN or inf (first at frame {bad[0]}, "
                       f"coefficient {bad[1]})")
    return np.ascontiguousarray(x, dtype=np.float32), h


def _compress(x: np.ndarray):
    """Per-column A, B (float32) and int16 data, as in the HTK book: x = (q + B) / A."""
    xmax, xmin = x.max(axis=0), x.min(axis=0)
    rng = xmax - xmin
    const = rng == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        A = np.where(const, 1.0, 2 * 32767.0 / np.where(const, 1.0, rng))
    B = np.where(const, xmax, (xmax + xmin) * A / 2)  # constant column: q = 0, x = B
    A32, B32 = A.astype(np.float32), B.astype(np.float32)
    if not (np.all(np.isfinite(A32)) and np.all(np.isfinite(B32)) and np.all(A32 > 0)):
        raise HTKError("cannot compress: column range overflows float32 scale factors")
    q = np.rint(x * A32.astype(np.float64) - B32.astype(np.float64))
    q = np.clip(q, -32767, 32767).astype(">i2")
    return A32, B32, q


def write_htk(path, features, samp_period: int = 100000, parm_kind="MFCC_0",
              compress: bool = False) -> HTKHeader:
    """Write features (frames, coefficients) as an HTK parameter file, atomically.

    ``parm_kind`` is a name ('MFCC_E_D_A') or an int; ``compress=True`` adds _C (or
    honour a _C in parm_kind).  WAVEFORM/DISCRETE need integral values in int16 range,
    IREFC values in [-1, 1].  Writing _K (CRC) is not supported.  Returns the header.
    Nothing is written (and no temp file is left) if anything is invalid.
    """
    path = os.fspath(path)
    try:
        code = parse_kind(parm_kind)
    except HTKError as e:
        raise HTKError(f"{path}: {e}") from None
    if compress:
        code |= _C
    if code & _K:
        raise HTKError(f"{path}: writing a CRC (_K) is not supported")
    base = code & _BASE_MASK
    if isinstance(samp_period, bool) or not isinstance(samp_period, (int, np.integer)):
        raise HTKError(f"{path}: samp_period must be an int in 100 ns units, "
                       f"got {samp_period!r}")
    if not 0 < samp_period <= 0x7FFFFFFF:
        raise HTKError(f"{path}: samp_period is {samp_period}; it must be positive "
                       f"(100 ns units) and fit in int32")
    x = np.asarray(features)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise HTKError(f"{path}: features must be 2-D (frames, coefficients), "
                       f"got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise HTKError(f"{path}: features must be numeric, got dtype {x.dtype}")
    N, D = x.shape
    if N == 0 or D == 0:
        raise HTKError(f"{path}: features have shape {x.shape}; need at least one "
                       f"frame and one coefficient")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise HTKError(f"{path}: features contain NaN or inf")
    parts = []
    if code & _C:
        if base in _INT16_KINDS:
            raise HTKError(f"{path}: {BASE_KINDS[base]} cannot be compressed (_C)")
        A, B, q = _compress(x)
        n_samples, samp_size = N + 4, 2 * D
        parts += [A.astype(">f4").tobytes(), B.astype(">f4").tobytes(), q.tobytes()]
    elif base in _INT16_KINDS:
        if base == _IREFC:
            if np.any(np.abs(x) > 1):
                raise HTKError(f"{path}: IREFC values must lie in [-1, 1]")
            x = np.rint(x * _IREFC_SCALE)
        elif np.any(x != np.rint(x)) or np.any(x > 32767) or np.any(x < -32768):
            raise HTKError(f"{path}: {BASE_KINDS[base]} values must be integers in "
                           f"int16 range")
        n_samples, samp_size = N, 2 * D
        parts.append(x.astype(">i2").tobytes())
    else:
        with np.errstate(over="ignore"):
            x32 = x.astype(np.float32)
        if not np.all(np.isfinite(x32)):
            raise HTKError(f"{path}: features overflow float32")
        n_samples, samp_size = N, 4 * D
        parts.append(x32.astype(">f4").tobytes())
    if samp_size > 0x7FFF:
        raise HTKError(f"{path}: {D} coefficients need sampSize {samp_size} bytes, "
                       f"more than an int16 header field holds")
    if n_samples > 0x7FFFFFFF:
        raise HTKError(f"{path}: too many frames ({N}) for an int32 nSamples")
    header = HTKHeader(n_samples, int(samp_period), samp_size, code)
    atomic_write(path, _HEADER.pack(n_samples, int(samp_period), samp_size, code)
                 + b"".join(parts), error=HTKError)
    return header
