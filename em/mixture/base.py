"""What the megamix-API classes share: argument checks, the fit and checkpoint loop on
:func:`em.fit.run`, scoring, and the model files (:mod:`em.io.mixture_h5`); initialisation is
:mod:`em.mixture.init`'s."""
from __future__ import annotations

import copy
import math
import time
import warnings
from abc import ABC, abstractmethod

import numpy as np

from em import backends, fit as driver
from em.backends.routing import in_memory, placed
from em.fit import EMWarning
from em.io import mixture_h5
from em.io.mixture_h5 import dataset as _dataset, where as _where
from em.mixture.init import SEEDS, Initialisation
from em.models import gaussian as G
from em.models.covariance import COVARIANCE_TYPES, of
from em.validation import check_int, check_real


class _Mixture(Initialisation, ABC):
    """Shared machinery; subclasses set ``name``, ``inits`` and the model hooks."""

    name = "mixture"
    inits = SEEDS + ("kmeans",)
    named: dict = {}     # name -> class: the initialisations that fit another model first

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _Mixture.named[cls.name] = cls

    def __init__(self, n_components=1, covariance_type="full", init="kmeans", reg_covar=1e-6,
                 type_init="resp", random_state=None, backend="auto"):
        self.n_components = check_int(n_components, "n_components")
        if covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, "
                             f"got {covariance_type!r}")
        self.covariance_type = covariance_type
        self.reg_covar = check_real(reg_covar, "reg_covar")
        if type_init not in ("resp", "mcw"):
            raise ValueError(f"type_init must be 'resp' or 'mcw', got {type_init!r}")
        self.type_init = type_init
        self.init = self._check_init(init)
        self.random_state = random_state
        self._rng = None
        self._backend = backends.get_backend(backend)
        self._params = None
        self._prior = None
        self.iter = 0
        self.convergence_criterion_data: list[float] = []
        self.convergence_criterion_test: list[float] = []

    def _check_init(self, init):
        if isinstance(init, str):
            if init not in self.inits:
                raise ValueError(f"init must be one of {self.inits} or an (n_points, "
                                 f"n_components) array of responsibilities, got {init!r}")
            return init
        resp = np.array(init, dtype=np.float64)        # a copy: never the user's array
        if resp.ndim != 2 or resp.shape[1] != self.n_components:
            raise ValueError(f"init responsibilities must be (n_points, {self.n_components}), "
                             f"got shape {resp.shape}")
        if not np.isfinite(resp).all() or (resp < 0).any():
            raise ValueError("init responsibilities must be finite and non-negative")
        if self.type_init != "resp":
            raise ValueError("an array init gives responsibilities: use type_init='resp'")
        return resp

    # -- parameters ----------------------------------------------------------------------
    def _get(self, name):
        if self._params is None:
            raise ValueError(f"the {type(self).__name__} is not initialised: fit it or "
                             "read_and_init it first")
        return np.array(getattr(self._params, name))

    means = property(lambda self: self._get("means"), doc="(n_components, dim) means.")
    log_weights = property(lambda self: self._get("log_weights"),
                           doc="(n_components,) log weights (variational: E[log pi_k]).")

    # -- the subclasses' hooks -----------------------------------------------------------
    @abstractmethod
    def _model(self, backend, prep):
        """The model's hooks for :func:`em.fit.run` (``em.models``)."""

    @abstractmethod
    def _read(self, group, backend, prep, means, log_w):
        """Set ``_params`` from an h5py group whose means and log weights are read."""

    def _fitted(self, backend, prep):
        """Called after :meth:`fit` with the prepared training data."""

    # -- fitting -------------------------------------------------------------------------
    def fit(self, points_data, points_test=None, tol=1e-3, patience=None, n_iter_max=100,
            n_iter_fix=None, saving=None, file_name="model", saving_iter=2, verbose=False):
        """Train on ``points_data`` (n_points, dim): an array, or one on disk (memmap, h5py
        dataset: streamed in chunks) or a dask array (passes run on its workers).

        Stops when the criterion per point grows by less than ``tol`` (``patience`` more
        times), after ``n_iter_max`` iterations, or after exactly ``n_iter_fix``.  With
        ``points_test`` the criterion is taken on it and the best parameters seen are restored
        at the end (early stopping).  ``saving`` 'log' / 'linear' / 'final' writes checkpoints
        (groups 'init', 'iterN', 'best') into ``file_name + '.h5'``.  Nothing is printed
        unless ``verbose``: then one line per iteration with its criteria.
        """
        backend, prep = placed(self._backend, points_data, None, "points_data")
        tol = check_real(tol, "tol")
        patience = 0 if patience is None else check_int(patience, "patience", 0)
        max_iter = check_int(n_iter_max, "n_iter_max", 0) if n_iter_fix is None \
            else check_int(n_iter_fix, "n_iter_fix", 0)
        due = _saving_rule(saving, saving_iter)
        test = None if points_test is None else \
            placed(self._backend, points_test, prep.D, "points_test")
        if self._params is not None and self.means.shape[1] != prep.D:
            raise ValueError(f"points_data has {prep.D} columns but the model has "
                             f"dim={self.means.shape[1]}")
        if not (isinstance(self.init, str) and self.init == "user") or self._params is None:
            self._prior = None
            self._rng = np.random.default_rng(self.random_state)   # an int seed: same fit
            self._initialize(backend, prep, test)
            self.iter = 0
        model = self._model(backend, prep)
        path = f"{file_name}.h5"
        if saving is not None:
            mixture_h5.write_group(path, "w", "init", *self._content())

        norm = (prep if test is None else test.prep).N
        stop = driver.never if n_iter_fix is not None else \
            driver.patience_below(tol, norm, patience)
        base = self.iter

        def on_iter(i, params, res):
            if verbose:
                line = f"{self.name} iteration {base + i}: {self._sign * res.history[-1]:.10g}"
                if test is not None:
                    line += f", test {self._sign * res.test_history[-1]:.10g}"
                print(line)
            if saving is not None and i > 0 and due(base + i):
                self._params, self.iter = params, base + i
                mixture_h5.write_group(path, "a", f"iter{base + i}", *self._content())

        res = driver.run(model, self._params, backend, prep, max_iter=max_iter,
                         stop=stop, test=test, on_iter=on_iter)
        self._params = res.best if test is not None else res.params
        self.iter = base + res.n_iter
        sign = self._sign
        self.convergence_criterion_data = [sign * c for c in res.history]
        self.convergence_criterion_test = [sign * c for c in res.test_history]
        self._fitted(backend, prep)
        if saving is not None:
            mixture_h5.write_group(path, "a", "best", *self._content())
        return self

    _sign = 1.0          # k-means reports the distortion, the driver maximises its negative

    # -- using a model -------------------------------------------------------------------
    def _prep(self, points):
        """(backend, prepared points): in memory (one point may be 1-D), on disk or dask."""
        D = self.means.shape[1]
        if in_memory(points):
            points = np.asarray(points)
            if points.ndim == 1 and points.shape[0] == D:
                points = points.reshape(1, D)
        return placed(self._backend, points, D, "points")

    def predict_log_resp(self, points) -> np.ndarray:
        """(n_points, n_components) normalised log responsibilities."""
        backend, prep = self._prep(points)
        form = self._model(backend, prep).form(self._params)
        return backend.log_posteriors(prep, form)[1]

    def score(self, points) -> float:
        """The convergence criterion on ``points`` (log-likelihood, evidence lower bound, or
        k-means distortion), summed over the points."""
        backend, prep = self._prep(points)
        return self._sign * driver.criterion(self._model(backend, prep), backend, prep,
                                             self._params)

    def simplified_model(self, points):
        """A copy without the components that are the most likely one for no point; weights
        renormalised."""
        backend, prep = self._prep(points)
        won = backend.argmax(prep, self._model(backend, prep).form(self._params))
        keep = np.unique(won)
        new = copy.copy(self)
        new._params = self._params.subset(keep)
        new.n_components = int(keep.size)
        new.init = "user"
        self._subset_extra(new, keep)
        return new

    def _subset_extra(self, new, keep):
        pass

    # -- files ---------------------------------------------------------------------------
    def write(self, group) -> None:
        """Write the model into an h5py group (:mod:`em.io.mixture_h5`: megamix's layout plus
        what restores it exactly: the variational alpha / beta / nu, pypcoeff, covariance
        type)."""
        mixture_h5.write(group, *self._content())

    def _content(self) -> tuple[dict, dict]:
        """(arrays, attributes) of the model file."""
        p = self._params
        self._get("means")
        arrays = {"means": p.means,
                  "log_weights": np.asarray(self.log_weights, dtype=np.float64)}
        if hasattr(p, "cov"):
            arrays["cov"] = p.cov
        if hasattr(p, "weights"):                   # exact, where log_weights rounds
            arrays["weights"] = p.weights
        attrs = dict(iter=self.iter, time=time.time(), name=self.name,
                     covariance_type=self.covariance_type, reg_covar=self.reg_covar)
        return arrays, attrs

    def read_and_init(self, group, points) -> None:
        """Initialise from a group written by :meth:`write` (any model of the family, or
        megamix); ``points`` supply what the file lacks (a k-means file has no covariances)."""
        means = _dataset(group, "means", 2)
        backend, prep = placed(self._backend, points, None, "points")
        if means.shape[1] != prep.D:
            raise ValueError(f"{_where(group)}: means have {means.shape[1]} columns but points "
                             f"have {prep.D}")
        K = means.shape[0]
        log_w = _dataset(group, "log_weights", 1)
        if log_w.shape != (K,):
            raise ValueError(f"{_where(group)}: log_weights has shape {log_w.shape}, "
                             f"expected ({K},)")
        if K != self.n_components:
            warnings.warn(f"em: the file's model has {K} components (not "
                          f"{self.n_components}); using {K}", EMWarning, stacklevel=2)
            self.n_components = K
        self._read(group, backend, prep, means, log_w)
        self.iter = int(group.attrs.get("iter", 0))
        self.init = "user"

    def _read_cov(self, group, backend, prep, means):
        """The file's covariances, or (k-means file) those of the points assigned to each
        mean, with a warning."""
        if "cov" not in group:
            warnings.warn(f"em: {_where(group)} has no covariances (a k-means model?); they are "
                          "estimated from the points nearest each mean", EMWarning, stacklevel=3)
            return G.moments(self._assign(backend, prep, means), self.covariance_type,
                             self.reg_covar)[2]
        cov = _dataset(group, "cov", None)
        K, D = means.shape
        want = of(self.covariance_type).shape(K, D)
        if cov.shape != want:
            raise ValueError(f"{_where(group)}: cov has shape {cov.shape}, but a "
                             f"{self.covariance_type} model of {K} x {D} needs {want}")
        return cov


def _saving_rule(saving, saving_iter):
    if saving is None or saving == "final":
        return lambda i: False
    if saving not in ("log", "linear"):
        raise ValueError(f"saving must be None, 'log', 'linear' or 'final', got {saving!r}")
    low = 2 if saving == "log" else 1
    if isinstance(saving_iter, bool) or not isinstance(saving_iter, int) or saving_iter < low:
        raise ValueError(f"saving_iter must be an integer >= {low} for saving={saving!r}, "
                         f"got {saving_iter!r}")
    if saving == "linear":
        return lambda i: i % saving_iter == 0
    return lambda i: abs(math.log(i, saving_iter) - round(math.log(i, saving_iter))) < 1e-9
