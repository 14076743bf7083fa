"""Peer benchmark on a CUDA GPU: the scenarios of torch_bench.py (same shapes,
hyper-parameters and output format, prefixed `torch-cuda`), for comparing
`lam-bench ... --device gpu` with PyTorch on the same machine.

usage: torch_bench_cuda.py matmul N ITERS | mlp BATCH STEPS | cnn BATCH STEPS

matmul is plain fp32 (TF32 tensor cores off), the arithmetic lam's WGSL
kernels do. Timings synchronize the device before reading the clock; the
training loops read the loss once at the end, like the CPU script.
"""
import sys, time
import torch, torch.nn as nn

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = torch.device("cuda")

def matmul(n, iters):
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    for _ in range(3): a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters): a @ b
    torch.cuda.synchronize()
    dt = time.perf_counter() - t
    print(f"torch-cuda matmul n={n} iters={iters}: {2*n**3*iters/dt/1e9:.2f} GFLOP/s ({dt:.3f} s)")

def train(name, m, x, y, batch, steps):
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    lf = nn.CrossEntropyLoss()
    def run(n):
        for _ in range(n):
            opt.zero_grad(); loss = lf(m(x), y); loss.backward(); opt.step()
        return loss.item()
    run(3)
    torch.cuda.synchronize()
    t = time.perf_counter(); loss = run(steps); dt = time.perf_counter() - t
    print(f"torch-cuda {name} batch={batch} steps={steps}: {steps/dt:.1f} steps/s {steps*batch/dt:.0f} samples/s loss={loss:.4f}")

def mlp(batch, steps):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10)).to(dev)
    x, y = torch.randn(batch, 784, device=dev), torch.randint(0, 10, (batch,), device=dev)
    train("mlp", m, x, y, batch, steps)

def cnn(batch, steps):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10)).to(dev)
    x, y = torch.randn(batch, 1, 28, 28, device=dev), torch.randint(0, 10, (batch,), device=dev)
    train("cnn", m, x, y, batch, steps)

if __name__ == "__main__":
    what = sys.argv[1]
    a = [int(v) for v in sys.argv[2:]]
    print(f"torch-cuda device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    {"matmul": matmul, "mlp": mlp, "cnn": cnn}[what](*a)
