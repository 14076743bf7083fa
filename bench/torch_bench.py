"""Peer benchmark: PyTorch CPU on the same work lam is measured on.
usage: torch_bench.py matmul N ITERS | digits EPOCHS
       torch_bench.py mlp|cnn|lstm|resnet BATCH STEPS [--infer]
       torch_bench.py gpt BATCH STEPS [--layers N] [--d-model N] [--heads N] [--seq N] [--vocab N] [--infer]

Each line has the format of lam-bench's (with the prefix `torch`); the
training lines also print the process's peak resident memory (ru_maxrss, KiB
on Linux) as ` peak_rss=... MiB`, like lam-bench's training scenarios.
`--infer` times forward passes and the loss instead (model.eval(),
torch.inference_mode()), as lam-bench's `--infer` does.

The models of gpt, lstm and resnet live in bench_models.py, shared with
torch_bench_cuda.py. PyTorch uses every core (its default), as lam does.
"""
import resource, sys, time
import torch, torch.nn as nn
import bench_models

def matmul(n, iters):
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2): a @ b
    t = time.perf_counter()
    for _ in range(iters): a @ b
    dt = time.perf_counter() - t
    print(f"torch matmul n={n} iters={iters}: {2*n**3*iters/dt/1e9:.2f} GFLOP/s ({dt:.3f} s)")

def peak_rss():
    return f" peak_rss={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB"

def train(name, m, x, y, opt, batch, steps, infer=False, unit="samples", per_step=None):
    """One fixed batch: `steps` training steps (zero_grad, forward and loss,
    backward, step) after 3 warm-up ones; gpt's logits [batch, seq, vocab]
    are flattened to rows; `per_step` items (default: the batch) are counted
    as `unit`/s. With `infer`, each step is the forward pass and loss only,
    the model in eval mode under torch.inference_mode(), named NAME-infer."""
    lf = nn.CrossEntropyLoss()
    def step():
        opt.zero_grad(); loss = lf(m(x).flatten(0, -2), y); loss.backward(); opt.step()
        return loss
    def forward():
        with torch.inference_mode():
            return lf(m(x).flatten(0, -2), y)
    if infer:
        m.eval(); step = forward; name = f"{name}-infer"
    def run(n):
        for _ in range(n):
            loss = step()
        return loss.item()
    run(3)
    t = time.perf_counter(); loss = run(steps); dt = time.perf_counter() - t
    items = steps * (per_step or batch) / dt
    print(f"torch {name} batch={batch} steps={steps}: {steps/dt:.1f} steps/s {items:.0f} {unit}/s loss={loss:.4f}{peak_rss()}")

def adam(m):
    return torch.optim.Adam(m.parameters(), lr=1e-3)

def mlp(batch, steps, infer=False):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))
    x, y = torch.randn(batch, 784), torch.randint(0, 10, (batch,))
    train("mlp", m, x, y, adam(m), batch, steps, infer)

def cnn(batch, steps, infer=False):
    """LeNet-5-like on 1x28x28: conv 6@5x5 (pad 2), maxpool 2, conv 16@5x5, maxpool 2, 120, 84, 10."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    train("cnn", m, x, y, adam(m), batch, steps, infer)

def gpt(batch, steps, infer=False, **sizes):
    w = bench_models.gpt_workload(batch, sizes, torch.device("cpu"))
    train("gpt", *w, batch, steps, infer, unit="tokens", per_step=w[1].numel())

def lstm(batch, steps, infer=False):
    train("lstm", *bench_models.lstm_workload(batch, torch.device("cpu")), batch, steps, infer)

def resnet(batch, steps, infer=False):
    train("resnet", *bench_models.resnet_workload(batch, torch.device("cpu")), batch, steps, infer)

def digits(epochs):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    xtr, xte, ytr, yte = train_test_split(d.data / 16.0, d.target, test_size=0.2, random_state=0, stratify=d.target)
    xtr, xte = torch.tensor(xtr, dtype=torch.float32), torch.tensor(xte, dtype=torch.float32)
    ytr, yte = torch.tensor(ytr), torch.tensor(yte)
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    lf = nn.CrossEntropyLoss()
    t = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 32):
            idx = perm[i:i+32]; opt.zero_grad(); lf(m(xtr[idx]), ytr[idx]).backward(); opt.step()
    dt = time.perf_counter() - t
    with torch.no_grad(): acc = (m(xte).argmax(1) == yte).float().mean().item()
    print(f"torch digits mlp epochs={epochs}: test acc {acc:.4f} in {dt:.2f} s")

if __name__ == "__main__":
    what, a, flags = bench_models.parse_args(sys.argv[1:])
    scenarios = {"matmul": matmul, "mlp": mlp, "cnn": cnn, "digits": digits,
                 "gpt": gpt, "lstm": lstm, "resnet": resnet}
    scenarios[what](*a, **flags)
