"""Time per iteration of the megamix-style models (``em.mixture``: Kmeans, GaussianMixture,
VariationalGaussianMixture, DPVariationalGaussianMixture) on each em backend, against
scikit-learn's equivalent in the same run, as one table.

    python benchmarks/bench_mixtures.py                       # N=200k, D=39, K=64, diag and full
    python benchmarks/bench_mixtures.py --N 20000 --K 16      # a small, quick run
    python benchmarks/bench_mixtures.py --cvtype diag --backends c --no-sklearn
    python benchmarks/bench_mixtures.py --models gmm,vbgmm --iters 4

scikit-learn's equivalents: ``KMeans(algorithm='lloyd')``, ``GaussianMixture``,
``BayesianGaussianMixture`` with ``weight_concentration_prior_type`` 'dirichlet_distribution'
(VBGMM) and 'dirichlet_process' (DPGMM).

Per-iteration times are differences, (t(k+1 iterations) - t(1 iteration)) / k (bench_em's
``per_iteration``: best of 2; ``--repeats R`` makes each of those the best of R runs, for a busy
machine), from the same start every time:

* ours: every model is read (``read_and_init``) from one fixed start kept in an in-memory HDF5
  file -- bench_em's start: means at K data rows, identity covariances, equal weights; the
  variational models' priors and q(theta) are made once from it and written back -- and only
  ``fit(X, n_iter_fix=k)`` is timed, so no initialisation is timed at all; what ``fit`` adds
  besides the k iterations (preparing the data, scoring the final parameters, k-means' final
  assignment pass) is the same for every k and cancels in the difference;
* scikit-learn: ``max_iter=k, tol=0`` from a fixed start (GaussianMixture: the same means,
  covariances and weights as ours; KMeans: ``init=`` the same means, ``n_init=1``;
  BayesianGaussianMixture, which takes no initial parameters: ``init_params='random_from_data'``
  with a fixed ``random_state``); its initialisation is in both runs and cancels.  A run that
  stopped before k iterations (KMeans: the centres stopped moving) is flagged in a note, as its
  time is then too short.

GFLOP/s count the model's flops (bench_em's ``model_flops``: diag 8NKD, full 2NKD(D+1));
k-means counts as diag, 8NKD, though Lloyd's needs about 2NKD (scikit-learn's distances are one
sgemm), so its "%sgemm" can pass 100%.  "%sgemm" compares GFLOP/s with this machine's float32
matmul rate measured at the start of the run; "vs sklearn" is scikit-learn's time over ours for
the same model and covariance type; "vs EM" is, for our variational models, their iteration
time over our EM iteration time on the same backend and covariance type (target <= 1.2; '!'
above it; the variational update's fixed cost per iteration weighs more on small problems).
k-means has no covariance type: it runs once, its cvtype column reads '-'.  A row reading
'noise' had t(k+1) <= t(1) (a busy machine).  Components re-seeded during the timed fits (an
EMWarning; its cost is in the time) are reported in a note.
"""
from __future__ import annotations

import argparse
import os
import warnings

import numpy as np

from bench_em import _timed, cpu_model, model_flops, per_iteration, problem, sgemm_gflops

MODELS = ("kmeans", "gmm", "vbgmm", "dpgmm")     # in this order: EM is timed before VB / DP
VB_TARGET = 1.2
NOISE = 1e-9          # per_iteration's floor: t(k+1) <= t(1)


def _our_class(model):
    from em import mixture as mx
    return {"kmeans": mx.Kmeans, "gmm": mx.GaussianMixture,
            "vbgmm": mx.VariationalGaussianMixture,
            "dpgmm": mx.DPVariationalGaussianMixture}[model]


def _make_ours(model, K, cv, backend):
    cls = _our_class(model)
    if model == "kmeans":
        return cls(K, backend=backend)
    return cls(K, covariance_type=cv, backend=backend)


def start_file():
    """An in-memory HDF5 file (nothing is written to disk)."""
    import h5py
    return h5py.File("bench_mixtures_start.h5", "w", driver="core", backing_store=False)


def write_start(f, params, cv):
    """bench_em's start (means, covariances, weights) in megamix's layout, group ``cv``."""
    means, covars, weights = params
    g = f.create_group(f"start-{cv}")
    g.create_dataset("means", data=means)
    g.create_dataset("cov", data=covars)
    g.create_dataset("log_weights", data=np.log(weights))
    return g


def time_ours(model, backend, X, start, f, cv, iters, repeats, notes):
    """s/iter of our ``model`` on ``backend`` from the start in group ``start``."""
    from em.fit import EMWarning
    K = start["means"].shape[0]
    src = start
    if model in ("vbgmm", "dpgmm"):
        # The model's own start (its prior and q(theta)), made once from the common start and
        # written back, so that each run below only reads it (no pass over X for the prior).
        # Kmeans and GMM read the common start itself (and Kmeans.write raises
        # AttributeError: KmeansParams has no log_weights).
        first = _make_ours(model, K, cv, backend)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EMWarning)    # 'no prior parameters': made from X
            first.read_and_init(start, X)
        src = f.create_group(f"{model}-{cv}-{backend}")
        first.write(src)
    name = f"{model}-{cv}-{backend}"
    reseeds = []

    def run(k):
        m = _make_ours(model, K, cv, backend)
        m.read_and_init(src, X)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EMWarning)
            secs = _timed(lambda: m.fit(X, n_iter_fix=k))
        if m.iter != k:
            raise RuntimeError(f"{name}: fit(n_iter_fix={k}) made {m.iter} iterations")
        reseeds.extend(str(w.message) for w in caught if issubclass(w.category, EMWarning))
        return secs

    secs = per_iteration(_best_of(run, repeats), iters)
    if reseeds:
        notes.append(f"{_label(model)} {cv} em {backend}: {len(reseeds)} EMWarning(s) in the "
                     f"timed fits (re-seeding is in its time), e.g. {reseeds[0]}")
    return secs


def time_sklearn(model, X, params, cv, iters, repeats, notes):
    """s/iter of scikit-learn's equivalent of ``model``."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import BayesianGaussianMixture, GaussianMixture
    means, covars, weights = params
    K = len(weights)
    short = []

    def make(k):
        if model == "kmeans":
            return KMeans(K, init=means, n_init=1, max_iter=k, tol=0, algorithm="lloyd")
        if model == "gmm":
            prec = 1.0 / covars if cv == "diag" else np.linalg.inv(covars)
            return GaussianMixture(K, covariance_type=cv, means_init=means,
                                   weights_init=weights, precisions_init=prec, tol=0,
                                   max_iter=k, init_params="random_from_data", random_state=0)
        kind = "dirichlet_distribution" if model == "vbgmm" else "dirichlet_process"
        return BayesianGaussianMixture(n_components=K, covariance_type=cv,
                                       weight_concentration_prior_type=kind, tol=0,
                                       max_iter=k, init_params="random_from_data",
                                       random_state=0)

    def run(k):
        est = make(k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            secs = _timed(lambda: est.fit(X))
        if est.n_iter_ < k:
            short.append((k, est.n_iter_))
        return secs

    secs = per_iteration(_best_of(run, repeats), iters)
    if short:
        k, n = short[0]
        notes.append(f"{_label(model)} {cv} scikit-learn stopped early ({n} of {k} iterations"
                     f"{', labels unchanged' if model == 'kmeans' else ''}): its s/iter is "
                     "too low; use a larger problem or fewer --iters")
    return secs


def _best_of(run, repeats):
    """run(k), best of ``repeats`` (per_iteration takes the best of 2 of these)."""
    return lambda k: min(run(k) for _ in range(repeats))


def _label(model):
    return {"kmeans": "Kmeans", "gmm": "GMM", "vbgmm": "VBGMM", "dpgmm": "DPGMM"}[model]


def print_rows(model, cv, rows, sk, em_secs, peak, flops, notes):
    """Table rows of one model and covariance type; rows: (impl, em backend or None, s/iter);
    the last row is scikit-learn's when ``sk``."""
    rows = [(impl, b, secs if secs > NOISE else None) for impl, b, secs in rows]
    ref = rows[-1][2] if sk else None
    cvcol = "-" if model == "kmeans" else cv
    for impl, b, secs in rows:
        if secs is None:
            print(f"{_label(model):7s} {cvcol:6s} {impl:14s} {'noise':>9s}")
            notes.append(f"{_label(model)} {cvcol} {impl}: t(k+1) - t(1) <= 0, the machine "
                         "is too busy for this size (raise --repeats or --iters)")
            continue
        if model == "gmm" and b is not None:
            em_secs[b] = secs
        gf = flops / secs / 1e9
        speedup = f"{ref / secs:.1f}x" if ref else "-"
        ratio = "-"
        if model in ("vbgmm", "dpgmm") and em_secs.get(b):
            r = secs / em_secs[b]
            ratio = f"{r:.2f}{'!' if r > VB_TARGET else ' '}"
        print(f"{_label(model):7s} {cvcol:6s} {impl:14s} {secs:9.3g} {gf:8.2f} "
              f"{100 * gf / peak:6.1f}% {speedup:>10s} {ratio:>6s}", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--N", type=int, default=200_000)
    p.add_argument("--D", type=int, default=39)
    p.add_argument("--K", type=int, default=64)
    p.add_argument("--iters", type=int, default=2, help="timed iterations per measurement")
    p.add_argument("--repeats", type=int, default=1,
                   help="each measurement is the best of 2 x REPEATS runs (raise it on a busy "
                        "machine)")
    p.add_argument("--cvtype", choices=["diag", "full", "both"], default="both")
    p.add_argument("--backends", default=None,
                   help="comma-separated em backends (default: every backend that loads here)")
    p.add_argument("--models", default=",".join(MODELS),
                   help=f"comma-separated, of {','.join(MODELS)} (default: all)")
    p.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn's rows")
    a = p.parse_args(argv)
    from em import backends
    from em.specializer import compile as cc, target as tg

    status = backends.status()
    if a.backends:
        names = [n for n in a.backends.split(",") if n]
        bad = [n for n in names if status.get(n, "unknown backend") is not None]
        if bad:
            p.error("; ".join(f"backend {n!r}: {status.get(n, 'unknown backend')}" for n in bad))
    else:
        names = [n for n, why in status.items() if why is None]
    models = [m for m in a.models.split(",") if m]
    if set(models) - set(MODELS):
        p.error(f"--models: unknown {sorted(set(models) - set(MODELS))}; choose from {MODELS}")
    models = [m for m in MODELS if m in models]
    sk = not a.no_sklearn
    if sk:
        try:
            import sklearn  # noqa: F401
        except ImportError:
            print("scikit-learn is not installed: its rows are skipped")
            sk = False

    peak = sgemm_gflops()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cpus; compiler {cc.compiler_version()}")
    print(f"target: {tg.detect().describe()}")
    print(f"numpy float32 matmul (sgemm) {peak:.1f} GFLOP/s (this run)")
    print(f"N={a.N} D={a.D} K={a.K}, float32 data, {a.iters} timed iteration(s) per measurement")
    head = (f"{'model':7s} {'cvtype':6s} {'impl':14s} {'s/iter':>9s} {'GFLOP/s':>8s} "
            f"{'%sgemm':>7s} {'vs sklearn':>10s} {'vs EM':>6s}")
    print(head)
    print("-" * len(head))
    cvtypes = ["diag", "full"] if a.cvtype == "both" else [a.cvtype]
    notes: list[str] = []
    f = start_file()
    try:
        for cv in cvtypes:
            X, params = problem(a.N, a.D, a.K, cv)
            start = write_start(f, params, cv)
            em_secs = {}                                  # backend -> our EM's s/iter
            for model in models:
                if model == "kmeans" and cv != cvtypes[0]:
                    continue                              # no covariance type: once
                rows = [(f"em {b}", b,
                         time_ours(model, b, X, start, f, cv, a.iters, a.repeats, notes))
                        for b in names]
                if sk:
                    rows.append(("scikit-learn", None,
                                 time_sklearn(model, X, params, cv, a.iters, a.repeats, notes)))
                print_rows(model, cv, rows, sk, em_secs, peak,
                           model_flops(a.N, a.D, a.K, "diag" if model == "kmeans" else cv),
                           notes)
    finally:
        f.close()
    for n in notes:
        print("note:", n)


if __name__ == "__main__":
    main()
