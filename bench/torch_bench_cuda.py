"""Peer benchmark on a CUDA GPU: the scenarios of torch_bench.py (same shapes,
hyper-parameters and output format, prefixed `torch-cuda`), for comparing
`lam-bench ... --device gpu` with PyTorch on the same machine.

usage: torch_bench_cuda.py matmul N|MxKxN ITERS [--tf32 | --fp16] | mlp|cnn BATCH STEPS [--infer]
       torch_bench_cuda.py gpt BATCH STEPS [--layers N] [--d-model N] [--heads N] [--seq N] [--vocab N] [--amp] [--infer]
       torch_bench_cuda.py lstm|resnet BATCH STEPS [--amp] [--infer]

matmul is plain fp32 (TF32 tensor cores off), the arithmetic lam's WGSL
kernels do; `--tf32` allows TF32 tensor cores for it, and `--fp16` multiplies
float16 matrices (cuBLAS accumulates them in fp32), the counterpart of lam's
cooperative-matrix kernel (`--precision high`). Timings synchronize the device before reading the clock; the
training loops read the loss once at the end, like the CPU script.

The training lines end with the peaks of PyTorch's allocator over the timed
steps: the bytes of live tensors (torch.cuda.max_memory_allocated, as
` cuda_max_alloc=... MiB`), which lam-bench's `gpu_peak_live` counts, and the
bytes the caching allocator held from the driver (torch.cuda.max_memory_reserved,
as ` cuda_max_reserved=... MiB`), which lam-bench's `gpu_pool` counts. `--amp`
runs the step under torch.autocast (float16) with a GradScaler — PyTorch's
mixed precision — and names the scenario `NAME-amp`; TF32 stays off there too.
`--infer` times forward passes and the loss instead (model.eval(),
torch.inference_mode()), named `NAME-infer`, as lam-bench's `--infer`.
"""
import sys, time
import torch, torch.nn as nn
import bench_models

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = torch.device("cuda")

def matmul(n, iters, tf32=False, fp16=False):
    # N, or MxKxN as lam-bench takes it (a weight gradient's shape, say).
    m, k, n = (n, n, n) if isinstance(n, int) else map(int, n.split("x"))
    dtype = torch.float16 if fp16 else torch.float32
    torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
    a, b = torch.randn(m, k, device=dev, dtype=dtype), torch.randn(k, n, device=dev, dtype=dtype)
    for _ in range(3): a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters): a @ b
    torch.cuda.synchronize()
    dt = time.perf_counter() - t
    torch.backends.cuda.matmul.allow_tf32 = False
    kind = "fp16" if fp16 else ("tf32" if tf32 else "fp32")
    size = f"n={n}" if m == k == n else f"shape={m}x{k}x{n}"
    print(f"torch-cuda matmul {size} iters={iters} {kind}: {2*m*k*n*iters/dt/1e9:.2f} GFLOP/s ({dt:.3f} s)")

def train(name, m, x, y, batch, steps, opt=None, amp=False, infer=False, unit="samples", per_step=None):
    """Adam (lr 1e-3) unless `opt` is given; gpt's logits [batch, seq, vocab]
    are flattened to rows; `per_step` items (default: the batch) per step.
    With `infer`, each step is the forward pass and loss only (model.eval(),
    torch.inference_mode()), named NAME-infer."""
    opt = opt or torch.optim.Adam(m.parameters(), lr=1e-3)
    lf = nn.CrossEntropyLoss()
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    def step():
        opt.zero_grad()
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            loss = lf(m(x).flatten(0, -2), y)
        scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
        return loss
    def forward():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            return lf(m(x).flatten(0, -2), y)
    if infer:
        m.eval(); step = forward
    def run(n):
        for _ in range(n):
            loss = step()
        return loss.item()
    run(3)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter(); loss = run(steps); dt = time.perf_counter() - t
    items = steps * (per_step or batch) / dt
    peak = torch.cuda.max_memory_allocated() / 2**20
    reserved = torch.cuda.max_memory_reserved() / 2**20
    name = name + ("-amp" if amp else "") + ("-infer" if infer else "")
    print(f"torch-cuda {name} batch={batch} steps={steps}: {steps/dt:.1f} steps/s {items:.0f} {unit}/s loss={loss:.4f} cuda_max_alloc={peak:.1f} MiB cuda_max_reserved={reserved:.1f} MiB")

def mlp(batch, steps, infer=False):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10)).to(dev)
    x, y = torch.randn(batch, 784, device=dev), torch.randint(0, 10, (batch,), device=dev)
    train("mlp", m, x, y, batch, steps, infer=infer)

def cnn(batch, steps, infer=False):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10)).to(dev)
    x, y = torch.randn(batch, 1, 28, 28, device=dev), torch.randint(0, 10, (batch,), device=dev)
    train("cnn", m, x, y, batch, steps, infer=infer)

def gpt(batch, steps, amp=False, infer=False, **sizes):
    m, x, y, opt = bench_models.gpt_workload(batch, sizes, dev)
    train("gpt", m, x, y, batch, steps, opt, amp, infer, unit="tokens", per_step=x.numel())

def lstm(batch, steps, amp=False, infer=False):
    m, x, y, opt = bench_models.lstm_workload(batch, dev)
    train("lstm", m, x, y, batch, steps, opt, amp, infer)

def resnet(batch, steps, amp=False, infer=False):
    m, x, y, opt = bench_models.resnet_workload(batch, dev)
    train("resnet", m, x, y, batch, steps, opt, amp, infer)

if __name__ == "__main__":
    what, a, flags = bench_models.parse_args(sys.argv[1:])
    print(f"torch-cuda device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    scenarios = {"matmul": matmul, "mlp": mlp, "cnn": cnn, "gpt": gpt, "lstm": lstm, "resnet": resnet}
    scenarios[what](*a, **flags)
