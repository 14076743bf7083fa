"""NumPy's matmul throughput, printed like bench/torch_bench.py and lam-bench.
usage: numpy_matmul.py N ITERS | numpy_matmul.py sweep
"""
import sys
import time

import numpy as np

SWEEP = [(256, 400), (512, 50), (1024, 10), (2048, 3)]  # as lam-bench matmul-sweep


def matmul(n, iters):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    for _ in range(2):
        a @ b
    t = time.perf_counter()
    for _ in range(iters):
        a @ b
    dt = time.perf_counter() - t
    print(f"numpy matmul n={n} iters={iters}: {2*n**3*iters/dt/1e9:.2f} GFLOP/s ({dt:.3f} s)")


if __name__ == "__main__":
    if sys.argv[1:] == ["sweep"]:
        for n, iters in SWEEP:
            matmul(n, iters)
    elif len(sys.argv) == 3:
        matmul(int(sys.argv[1]), int(sys.argv[2]))
    else:
        sys.exit(__doc__)
