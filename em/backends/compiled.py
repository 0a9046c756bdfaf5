"""What the compiled backends (C++/OpenMP and CUDA) share: one driver with small named hooks.

A compiled backend builds one module per shape family (a library holding every code variant
of its kernels) and keeps it for the process -- or None, warned once, when it cannot be built:
that family then runs on the fallback backend.  The first time a problem key is met the
variants are timed on the data (:mod:`em.specializer.tuning`); the winner runs.  The driver
here does all of that and the dispatch of the scoring modes, as scikit-learn's ``BaseMixture``
drives its estimators; a subclass fills the hooks, as pycuda's ``ReductionKernel`` fills a
skeleton's named holes: ``_build`` (with ``_family``, ``build_errors``, ``_why``) makes a
module, ``_fused`` and ``_scorer`` run a variant's kernels, ``_target_tag`` and ``_tune_rows``
say where and on how many rows variants are timed.  ``name`` is the problem key's backend.
"""
from __future__ import annotations

import warnings
from abc import abstractmethod
from dataclasses import dataclass
from typing import Callable

import numpy as np

from em.backends.base import Backend, Prepared
from em.backends.numpy_backend import NumpyBackend
from em.contract import ScoringForm, Stats
from em.specializer import tuning

MODES = {"loglik": 0, "logpost": 1, "argmax": 2}     # the score kernels' ``mode`` argument


@dataclass(frozen=True)
class Variant:
    """A code variant: its name (the kernels' suffix, and what tuning records) and the block
    of samples (CPU) or threads (GPU) it works in; each backend adds its own knobs."""

    name: str
    block: int


class Module:
    """A loaded shape family: its variants by name (the default first) and ``tag``, a hash of
    its code and machine that is part of every tuning key (new code is tuned anew)."""

    def __init__(self, variants: list[Variant], tag: str):
        self.variants = {v.name: v for v in variants}
        self.tag = tag

    def names(self, M: int, D: int, cvtype: str, dtype: str, kernel: str = "fused") -> list[str]:
        """The variants to consider for M components and ``kernel`` (a problem key's: fused,
        fused_hard, score, argmax; 'any': every one that runs correctly), the default first."""
        return list(self.variants)


class CompiledBackend(Backend):
    """See the module docstring.  ``variant`` forces one code variant instead of tuning;
    ``fallback`` makes the backend that runs a family whose module cannot be built."""

    build_errors: tuple[type[BaseException], ...] = (Exception,)    # a build failure: warned

    def __init__(self, variant: str | None = None,
                 fallback: Callable[[], Backend] = NumpyBackend):
        self.variant = variant
        self._fallback = fallback
        self._modules: dict[tuple, Module | None] = {}
        self._choices: dict[str, str] = {}

    # -- hooks -----------------------------------------------------------------------------
    def _family(self, D: int, cvtype: str, dtype: str) -> tuple:
        """The module cache key of a shape family; :meth:`_build` takes it."""
        return D, cvtype, dtype

    @abstractmethod
    def _build(self, *key) -> Module:
        """Compile and load a family's module; a failure raises one of ``build_errors``."""

    def _why(self, exc: BaseException) -> str:
        """A failed build, as the warning says it."""
        return str(exc)

    @abstractmethod
    def _target_tag(self) -> str:
        """The machine part of a problem key (ISA and vector width, or the GPU)."""

    @abstractmethod
    def _tune_rows(self, form: ScoringForm) -> int:
        """How many rows the variants are timed on (at most; fewer when the data has fewer)."""

    @abstractmethod
    def _fused(self, mod: Module, prep: Prepared, form: ScoringForm, hard: bool,
               about: np.ndarray | None) -> Callable[..., Stats]:
        """``run(variant, rows=None) -> Stats``: the statistics pass of a variant over the
        data, or over its first ``rows`` rows."""

    @abstractmethod
    def _scorer(self, mod: Module, prep: Prepared, form: ScoringForm) -> Callable[..., tuple]:
        """``run(variant, rows=None, mode="loglik") -> (ll, log posteriors, argmax)``, None
        where the mode (a key of :data:`MODES`) gives none; ``rows`` as for :meth:`_fused`."""

    # -- modules and variant choice --------------------------------------------------------
    def prepare(self, X: np.ndarray, weight: np.ndarray | None = None,
                center: np.ndarray | None = None) -> Prepared:
        prep = super().prepare(X, weight, center)
        # the kernels centre in the data's dtype: use a centre that dtype represents exactly
        prep.center = prep.center.astype(X.dtype).astype(np.float64)
        return prep

    def module(self, D: int, cvtype: str, dtype: str) -> Module | None:
        """The compiled module of a shape family, or None (warned once) if it cannot be built."""
        key = self._family(D, cvtype, dtype)
        if key not in self._modules:
            try:
                self._modules[key] = self._build(*key)
            except self.build_errors as exc:
                warnings.warn(f"em: {self.name.upper()} kernel for {cvtype} D={D} {dtype} "
                              f"failed to build ({self._why(exc)}); using the "
                              f"{self._fallback().name} backend for it", RuntimeWarning,
                              stacklevel=4)
                self._modules[key] = None
        return self._modules[key]

    def _choose(self, mod: Module, kernel: str, prep: Prepared, form: ScoringForm,
                run: Callable) -> str:
        """The variant of ``kernel`` for this problem: forced, remembered or timed by calling
        ``run(variant, rows)`` on the first rows of the data."""
        dtype = prep.X.dtype.name
        # a forced variant runs wherever it is correct, not only where it is timed
        names = mod.names(form.M, form.D, form.cvtype, dtype, "any" if self.variant else kernel)
        key = tuning.problem_key(self.name, kernel, form.M, form.D, form.cvtype, dtype, prep.N,
                                 self._target_tag(), mod.tag)
        rows = min(prep.N, self._tune_rows(form))
        candidates = {v: (lambda v=v: run(v, rows)) for v in names}
        return tuning.choose(key, candidates, names[0], self._choices, self.variant)

    def chosen(self) -> dict[str, str]:
        """Variant chosen for each problem key seen by this backend in this process."""
        return dict(self._choices)

    def _fall_back(self, method: str, prep: Prepared, *args):
        """``method`` of the fallback backend, on the same data prepared its way."""
        fb = self._fallback()
        return getattr(fb, method)(fb.prepare(prep.X, prep.weight, prep.center), *args)

    # -- the contract ----------------------------------------------------------------------
    def stats_pass(self, prep: Prepared, form: ScoringForm, hard: bool = False,
                   about: np.ndarray | None = None) -> Stats:
        mod = self.module(form.D, form.cvtype, prep.X.dtype.name)
        if mod is None:
            return self._fall_back("stats_pass", prep, form, hard, about)
        run = self._fused(mod, prep, form, hard, about)
        # hard passes (k-means) are their own problem: other variants may win them
        return run(self._choose(mod, "fused_hard" if hard else "fused", prep, form, run))

    def _scores(self, prep: Prepared, form: ScoringForm, mode: str):
        """(ll, log posteriors, argmax) of one scoring mode (None where the mode gives none),
        or None when the family has no module."""
        mod = self.module(form.D, form.cvtype, prep.X.dtype.name)
        if mod is None:
            return None
        self.fit_centre(prep, form)
        run = self._scorer(mod, prep, form)
        timed = "argmax" if mode == "argmax" else "loglik"     # argmax is its own problem
        variant = self._choose(mod, "argmax" if timed == "argmax" else "score", prep, form,
                               lambda v, rows: run(v, rows, timed))
        return run(variant, mode=mode)

    def loglik(self, prep: Prepared, form: ScoringForm) -> np.ndarray:
        out = self._scores(prep, form, "loglik")
        return self._fall_back("loglik", prep, form) if out is None else out[0]

    def log_posteriors(self, prep: Prepared, form: ScoringForm):
        out = self._scores(prep, form, "logpost")
        return self._fall_back("log_posteriors", prep, form) if out is None else out[:2]

    def argmax(self, prep: Prepared, form: ScoringForm) -> np.ndarray:
        out = self._scores(prep, form, "argmax")
        return self._fall_back("argmax", prep, form) if out is None else out[2]
