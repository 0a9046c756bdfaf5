"""Dask (em.backends.distributed): EM over a dask array on a LocalCluster of worker processes."""
from __future__ import annotations

import os
import signal
import threading
import time

import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster, futures_of

import em.mixture
from em import GMM, backends
from em.backends.distributed import Dask


def frames(N, D, seed=0):
    """A dask array anyone can rebuild from its graph (a lost chunk is recomputed)."""
    rs = da.random.RandomState(seed)
    centres = np.random.default_rng(seed).normal(scale=4, size=(4, D))
    labels = rs.randint(0, 4, size=N, chunks=N // 8)
    return rs.normal(size=(N, D), chunks=(N // 8, D)) + da.from_array(centres)[labels]


@pytest.fixture(scope="module")
def cluster():
    """Workers (and this process) run the default variant of each kernel, not a timed pick:
    a chunk's problem key differs from the whole array's, and two variants' rounding can flip
    the hard assignment of a sample between components that overlap (five components on four
    clusters here), which these tests would read as the Dask path differing."""
    before = os.environ.get("EM_AUTOTUNE")
    os.environ["EM_AUTOTUNE"] = "0"
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as c:
            yield c
    finally:
        if before is None:
            os.environ.pop("EM_AUTOTUNE", None)
        else:
            os.environ["EM_AUTOTUNE"] = before


@pytest.mark.parametrize("cvtype", ["diag", "full"])
def test_a_local_cluster_gives_the_in_memory_result(cluster, cvtype):
    X = frames(40000, 6)
    ref = GMM(5, 6, cvtype, seed=2)
    ll = ref.train(X.compute(), 8)
    with Client(cluster) as client:
        g = GMM(5, 6, cvtype, seed=2)
        assert g.train(X, 8) == pytest.approx(ll, rel=1e-10)
        held = client.has_what()                     # the chunks on both workers
        assert len([w for w, keys in held.items() if keys]) == 2
        np.testing.assert_allclose(ref.score(X), ref.score(X.compute()), rtol=1e-12)
        np.testing.assert_array_equal(ref.predict(X), ref.predict(X.compute()))
        for got, want in zip(ref.eval(X), ref.eval(X.compute())):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-15)
    for name in ("weights", "means", "covars"):
        np.testing.assert_allclose(getattr(g.components, name), getattr(ref.components, name),
                                   rtol=1e-10, atol=1e-12, err_msg=name)


def test_the_chunks_are_spread_over_the_workers_by_construction(cluster):
    """Chunk i of n lies on worker i * W // n (sorted by address), whatever the scheduler
    would have chosen: on a 2-core AMD EPYC it once put all of them on one worker."""
    X = frames(40000, 6)
    with Client(cluster) as client:
        for weight in (None, np.ones(40000)):
            prep = Dask(backends.get_backend("numpy")).prepare(X, weight)
            workers = sorted(client.scheduler_info()["workers"])
            for array in (prep.X.array, prep.extra) if weight is not None else (prep.X.array,):
                held = client.who_has(futures_of(array))
                n = array.numblocks[0]
                assert len(held) == n == 8
                for key, where in held.items():
                    assert list(where) == [workers[key[1] * len(workers) // n]], (key, where)


def test_a_worker_lost_mid_fit_changes_nothing():
    X = frames(400000, 12, seed=1)
    ref = GMM(16, 12, "diag", seed=0)
    ref.train(X.compute(), 25)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cl, Client(cl) as client:
        pids = client.run(os.getpid)
        victim = sorted(pids.values())[0]
        killed = {}

        def kill():
            time.sleep(2.0)
            killed["at"] = time.monotonic()
            os.kill(victim, signal.SIGKILL)

        g = GMM(16, 12, "diag", seed=0)
        threading.Thread(target=kill, daemon=True).start()
        g.train(X, 25)
        finished = time.monotonic()
    assert "at" in killed and killed["at"] < finished, "the worker was not killed mid-fit"
    for name in ("weights", "means", "covars"):
        np.testing.assert_allclose(getattr(g.components, name), getattr(ref.components, name),
                                   rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("make", [
    lambda: em.mixture.GaussianMixture(5, "diag", init="kmeans", random_state=3),
    lambda: em.mixture.DPVariationalGaussianMixture(5, init="plus", random_state=3),
], ids=["gmm", "dpgmm"])
def test_the_model_family_fits_a_dask_array_on_a_local_cluster(cluster, make):
    X, Xt = frames(24000, 5, seed=3), frames(6000, 5, seed=4)
    ref = make().fit(X.compute(), Xt.compute(), n_iter_max=10)
    with Client(cluster):
        m = make().fit(X, Xt, n_iter_max=10)
        assert m.score(Xt) == pytest.approx(ref.score(Xt.compute()), rel=1e-10)
    np.testing.assert_allclose(m.convergence_criterion_test, ref.convergence_criterion_test,
                               rtol=1e-10)
    np.testing.assert_allclose(m.means, ref.means, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.cov, ref.cov, rtol=1e-10, atol=1e-12)


def test_scikit_learn_estimators_fit_a_dask_array_on_a_local_cluster(cluster):
    from em.sklearn import GaussianMixture, KMeans
    X = frames(20000, 4, seed=5)
    Xm = X.compute()
    for make in (lambda: GaussianMixture(4, covariance_type="full", random_state=0),
                 lambda: KMeans(4, n_init=1, random_state=0)):
        ref = make().fit(Xm)
        with Client(cluster):
            est = make().fit(X)
            np.testing.assert_array_equal(est.predict(X), ref.predict(Xm))
            assert est.score(X) == pytest.approx(ref.score(Xm), rel=1e-10)
        assert est.n_iter_ == ref.n_iter_
        centres = "cluster_centers_" if hasattr(ref, "cluster_centers_") else "means_"
        np.testing.assert_allclose(getattr(est, centres), getattr(ref, centres), rtol=1e-10)
