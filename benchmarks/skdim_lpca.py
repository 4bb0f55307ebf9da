"""Pointwise lPCA with scikit-dimension (runs in the bench venv).

    .venv-bench/bin/python benchmarks/skdim_lpca.py DATA.npy --queries 128 \\
        --n-neighbors 1000 --alpha 1e-3 --threads 2

``DATA.npy`` is ``(M, D)`` float32; its first ``queries`` rows are the query points.
The neighbourhoods are sklearn's ``NearestNeighbors(n_neighbors).kneighbors`` of the
queries in the whole array (a query is its own nearest neighbour, as in
``jaxood.lid.lpca``), handed to ``skdim.id.lPCA(ver="FO", alphaFO=alpha).fit_pw``
as ``precomputed_knn``: without it ``fit_pw`` would estimate at all M points. The
time covers both steps. Prints one JSON line; ``--out`` saves the estimates (.npy).
"""

import argparse
import json
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--queries", type=int, default=128)
    parser.add_argument("--n-neighbors", type=int, default=1000)
    parser.add_argument("--alpha", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    # BLAS threads are fixed before numpy is imported.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    import numba
    import numpy as np
    import skdim
    import sklearn
    from sklearn.neighbors import NearestNeighbors

    data = np.load(args.data)
    queries = data[: args.queries]
    estimator = skdim.id.lPCA(ver="FO", alphaFO=args.alpha)

    def run(points):
        knn = NearestNeighbors(n_neighbors=args.n_neighbors).fit(data)
        _, index = knn.kneighbors(points)
        return estimator.fit_pw(data, precomputed_knn=index).dimension_pw_

    run(queries[:2])  # warm-up: imports, thread pools
    tic = time.perf_counter()
    estimates = run(queries)
    seconds = time.perf_counter() - tic
    if args.out:
        np.save(args.out, np.asarray(estimates, np.int64))
    print(json.dumps({
        "seconds": seconds,
        "mean": float(np.mean(estimates)),
        "skdim": skdim.__version__,
        "sklearn": sklearn.__version__,
        "numba": numba.__version__,
        "numpy": np.__version__,
        "threads": args.threads,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
