"""The manual's 32-component example: train a diagonal GMM, score held-out data, save it.

    python examples/gmm_example.py

Ctrl-C exits with status 130, a closed stdout (``| head -1``) quietly with 141 (em/cli.py).
"""
import numpy as np

from em import GMM


def main() -> int:
    M, D, N = 32, 2, 10000
    rng = np.random.default_rng(0)
    training_data = rng.random((N, D), dtype=np.float32)
    testing_data = rng.random((N, D), dtype=np.float32)

    gmm = GMM(M, D, cvtype="diag", seed=0)
    lkld = gmm.train(training_data)             # EM until converged; total log-likelihood
    log_lklds = gmm.score(testing_data)         # per-sample log-likelihoods
    print(f"{gmm!r}: {gmm.n_iter_} EM iterations, converged={gmm.converged_}")
    print(f"training log-likelihood {lkld:.1f} ({lkld / N:.4f} per sample)")
    print(f"test log-likelihood     {log_lklds.sum():.1f} "
          f"({np.average(log_lklds):.4f} per sample)")
    print("largest weights:", np.round(np.sort(gmm.components.weights)[::-1][:4], 4))
    path = gmm.save("gmm_example.npz")
    print(f"saved to {path}; GMM.load({path!r}) reads it back")
    return 0


if __name__ == "__main__":
    from em.cli import run_main
    run_main(main)     # Ctrl-C: status 130; closed stdout: quiet, 141
