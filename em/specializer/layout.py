"""Render-time layout arithmetic of the C kernels: lanes, padding and register tiles.

Everything that depends on the vector width or the register count is derived here, from a
:class:`Layout` built for one kernel family (D, cvtype, dtype) at one width; the templates only
read its fields.  Register tiles are chosen so that accumulators, operands and temporaries fit
the target's vector registers (16 on AVX2/SSE, 32 on AVX-512 and aarch64 NEON): a tile that
does not fit spills on every iteration, which is what made 64-byte vectors on AVX2 7-12x slow.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

SPARE = 1            # vector registers left for the compiler
MAX_ROWS = 8         # broadcast rows of a rank-1 tile (components / samples / rows of S2)
SPLIT_D = 64         # float sums over more features than this go through 32-feature partials


def pad(n: int, multiple: int) -> int:
    """n rounded up to a multiple."""
    return -(-n // multiple) * multiple


def rank1_tile(registers: int, vectors: int, max_rows: int = MAX_ROWS) -> tuple[int, int]:
    """(rows, vectors per panel) of a rank-1 update tile ``acc[r][v] += a[r] * b[v]`` that
    sweeps a row of ``vectors`` vectors in panels.

    A tile needs rows*v accumulators, v loaded operands and one broadcast.  Takes the most
    accumulators per panel averaged over the row (a narrow last panel counts), then the most
    flops per load."""
    budget = registers - SPARE
    best, best_key = (1, 1), (0.0, 0.0)
    for v in range(1, max(1, vectors) + 1):
        rows = min(max_rows, (budget - v - 1) // v)
        if rows < 1:
            break
        panels = -(-vectors // v)
        key = (rows * vectors / panels, rows * v / (rows + v))
        if key > best_key:
            best, best_key = (rows, v), key
    return best


@dataclass(frozen=True)
class Panel:
    """Vectors [v0, v0 + nv) of a row; ``rows``: how many rows of an upper-triangular factor
    reach into it (the full-covariance GEMMs skip the zeros below the diagonal)."""

    v0: int
    nv: int
    rows: int


@dataclass(frozen=True)
class Layout:
    """Layout of one kernel family at one vector width."""

    D: int
    cvtype: str
    dtype: str
    vector_bytes: int
    registers: int

    @property
    def T(self) -> str:
        return "float" if self.dtype == "float32" else "double"

    @property
    def itemsize(self) -> int:
        return 4 if self.dtype == "float32" else 8

    @property
    def lanes(self) -> int:
        return self.vector_bytes // self.itemsize

    @property
    def DP(self) -> int:
        """Features padded to whole vectors."""
        return pad(self.D, self.lanes)

    @property
    def NV(self) -> int:
        """Vectors per padded feature row."""
        return self.DP // self.lanes

    @property
    def ZW(self) -> int:
        """Width of a tile row: diag [x | x*x] packed (both moments in one GEMM, x*x starting at
        column D, padded once at the end), full x."""
        return pad(2 * self.D, self.lanes) if self.cvtype == "diag" else self.DP

    @property
    def split(self) -> bool:
        """Sum squared distances through 32-feature partials (float accuracy for large D)."""
        return self.D > SPLIT_D

    @cached_property
    def kvec(self) -> tuple[int, int]:
        """diag log rho, components in lanes: (samples, vectors of components) per tile.

        Needs samples*vectors accumulators, 2 operands (mu, sqrt p) per vector of components,
        a broadcast and a temporary; the most accumulators, then the widest panel (1, 2 or 4
        vectors: the number of components is often a power of two)."""
        budget = self.registers - SPARE
        fits = [(tb * kp, kp, tb) for kp in (1, 2, 4) for tb in range(2, 9)
                if tb * kp + 2 * kp + 2 <= budget]
        _, kp, tb = max(fits)
        return tb, kp

    @cached_property
    def kdot(self) -> tuple[int, int]:
        """diag log rho in the expanded form x.mu (kdot): (samples, vectors of components) per
        tile.  Needs samples*vectors accumulators and one operand per vector (the sample's
        feature is broadcast from memory into the FMA); the most accumulators, then the widest
        panel."""
        budget = self.registers - SPARE
        fits = [(tb * kp, kp, tb) for kp in (1, 2, 4) for tb in range(2, 9)
                if tb * kp + kp + 1 <= budget]
        _, kp, tb = max(fits)
        return tb, kp

    @cached_property
    def nvec(self) -> tuple[int, int]:
        """diag log rho, samples in lanes: (vectors of samples, components) per tile (powers of
        two of vectors, so tiles divide blocks)."""
        budget = self.registers - SPARE
        fits = [(sv * kc, sv, kc) for sv in (1, 2, 4, 8) for kc in range(1, 5)
                if sv * kc + sv + 2 * kc + 1 <= budget]
        _, sv, kc = max(fits)
        return sv, kc

    @cached_property
    def stats_tile(self) -> tuple[int, int]:
        """(components, vectors of the tile row) of the statistics GEMM R^T Z."""
        return rank1_tile(self.registers, self.ZW // self.lanes, max_rows=6)

    @cached_property
    def gemm_rows(self) -> int:
        """Samples per tile of the full-covariance (x - mu) U: one vector of columns of U per
        panel (wider panels do more of the zeros below U's diagonal than they save in loads),
        so the tile is 8 broadcast rows (enough accumulators to hide the FMA latency) or 16 where
        there are 32 registers; the sums of squares wait in memory between panels."""
        return 8 if self.registers < 32 else 16

    @cached_property
    def gcol_tile(self) -> tuple[int, int]:
        """(columns of U, vectors of samples) of the full-covariance (x - mu) U with samples in
        lanes: the triangle is then exact up to the tile's own corner.  Vectors of samples are
        a power of two (tiles divide blocks); as many columns as fit beside them, their sums of
        squares and a broadcast (one more spilled an operand on every step: ~8% slower)."""
        vecs = 4 if self.registers >= 32 else 2
        return min(8, (self.registers - SPARE - 1 - 2 * vecs) // vecs), vecs

    @cached_property
    def s2_cols_tile(self) -> int:
        """Side of the square tiles of S2 entries with samples in lanes: I*I accumulators and
        I + I operands per step fit the registers (4 with 32 registers, 3 with 16)."""
        return max(i for i in range(1, 9) if i * i + 2 * i <= self.registers - SPARE)

    @cached_property
    def s2_rows(self) -> int:
        """Rows of S2 per tile of its (one vector wide) panels: a whole vector's worth, so row
        tiles end where the triangle's panels do, and at least 8 accumulators."""
        return min(max(self.lanes, 8), self.registers - SPARE - 2)

    def panels(self, vectors: int, per_panel: int, triangular: bool = False) -> list[Panel]:
        """Split a row of ``vectors`` vectors into panels of ``per_panel`` (the last may be
        narrower).  ``triangular``: rows of an upper-triangular D x D factor reaching each."""
        out = []
        for v0 in range(0, vectors, per_panel):
            nv = min(per_panel, vectors - v0)
            rows = min(self.D, (v0 + nv) * self.lanes) if triangular else self.D
            out.append(Panel(v0, nv, rows))
        return out

    @property
    def stats_panels(self) -> list[Panel]:
        return self.panels(self.ZW // self.lanes, self.stats_tile[1])

    @property
    def gemm_panels(self) -> list[Panel]:
        return self.panels(self.NV, 1, triangular=True)


@dataclass(frozen=True)
class Butterfly:
    """Lane sums of up to ``lanes`` vectors at once: ``steps`` fold pairs of vectors with two
    two-input shuffles and an add each (~3 operations per vector, against a shuffle tree per
    vector); lane l of the result holds the sum of vector ``owner[l]`` (None: padding)."""

    steps: tuple          # per level: tuple of (a, b, out, lo mask, hi mask); a/b: index or None
    owner: tuple
    result: int           # index of the vector holding the sums


def butterfly(lanes: int, n: int) -> Butterfly:
    """Plan the fold of vectors 0..n-1 (n <= lanes); new vectors are numbered from n on."""
    assert 1 <= n <= lanes and lanes & (lanes - 1) == 0
    owners = {i: [i] * lanes for i in range(n)}       # vector -> owner of each lane
    live = list(range(n))
    nxt, steps, h = n, [], lanes // 2
    while h >= 1:
        level, out = [], []
        for p in range(0, len(live), 2):
            a = live[p]
            b = live[p + 1] if p + 1 < len(live) else None
            lo, hi, own = [], [], []
            for l in range(lanes):
                block, pos = divmod(l, 2 * h)
                if pos < h:                      # a's partial sums
                    lo.append(block * 2 * h + pos)
                    hi.append(block * 2 * h + pos + h)
                    own.append(owners[a][block * 2 * h + pos])
                else:                            # b's (or padding)
                    lo.append(lanes + block * 2 * h + pos - h)
                    hi.append(lanes + block * 2 * h + pos)
                    own.append(None if b is None else owners[b][block * 2 * h + pos - h])
            owners[nxt] = own
            level.append((a, b, nxt, tuple(lo), tuple(hi)))
            out.append(nxt)
            nxt += 1
        steps.append(tuple(level))
        live, h = out, h // 2
    assert len(live) == 1
    return Butterfly(tuple(steps), tuple(owners[live[0]]), live[0])
