"""The models of lam-bench's gpt, lstm and resnet scenarios in PyTorch, shared
by torch_bench.py (CPU) and torch_bench_cuda.py: same shapes, same
hyper-parameters, PyTorch's own initialisation (lam's layers initialise as
PyTorch's do, with different random numbers).

Each *_workload returns (model, inputs, targets, optimizer) on a device, the
model in training mode; logits are [batch, classes] or, for gpt,
[batch, seq, vocab], which the loops flatten to [batch·seq, vocab].
"""
import torch, torch.nn as nn

# gpt's sizes: the GPU configuration (lam-bench's defaults). The CPU one of
# the README is --layers 2 --d-model 128 --heads 4 --seq 64 --vocab 256.
GPT_DEFAULTS = dict(layers=6, d_model=512, heads=8, seq=256, vocab=8192)


class Gpt(nn.Module):
    """Token and learned position embeddings, pre-norm encoder layers with a
    causal mask (GELU MLP of 4·d_model, no dropout), final LayerNorm, head."""

    def __init__(self, layers, d_model, heads, seq, vocab):
        super().__init__()
        self.tokens = nn.Embedding(vocab, d_model)
        self.positions = nn.Embedding(seq, d_model)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(seq), persistent=False)
        self.register_buffer("position_ids", torch.arange(seq), persistent=False)

    def forward(self, tokens):
        x = self.tokens(tokens) + self.positions(self.position_ids)
        for block in self.blocks:
            x = block(x, src_mask=self.mask, is_causal=True)
        return self.head(self.norm(x))


class LstmClassifier(nn.Module):
    """2-layer LSTM (32 features, hidden 256, batch first), head on the last step."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(32, 256, num_layers=2, batch_first=True)
        self.head = nn.Linear(256, 10)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class BasicBlock(nn.Module):
    """conv-bn-relu-conv-bn plus the shortcut (1x1 conv-bn when the size or
    the channels change), then ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


def resnet():
    """Stem 3->16, stages of two blocks at 16, 32, 64 channels (stride 2 into
    stages 2 and 3), global average pooling, 64->10."""
    layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for stage, width in enumerate([16, 32, 64]):
        for block in range(2):
            layers.append(BasicBlock(cin, width, 2 if stage > 0 and block == 0 else 1))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10)]
    return nn.Sequential(*layers)


def gpt_workload(batch, sizes, dev):
    s = {**GPT_DEFAULTS, **sizes}
    torch.manual_seed(0)
    m = Gpt(**s).to(dev)
    x = torch.randint(0, s["vocab"], (batch, s["seq"]), device=dev)
    y = torch.randint(0, s["vocab"], (batch * s["seq"],), device=dev)
    return m, x, y, torch.optim.AdamW(m.parameters(), lr=3e-4, weight_decay=0.01)


def lstm_workload(batch, dev):
    torch.manual_seed(0)
    m = LstmClassifier().to(dev)
    x, y = torch.randn(batch, 64, 32, device=dev), torch.randint(0, 10, (batch,), device=dev)
    return m, x, y, torch.optim.Adam(m.parameters(), lr=1e-3)


def resnet_workload(batch, dev):
    torch.manual_seed(0)
    m = resnet().to(dev)
    x, y = torch.randn(batch, 3, 32, 32, device=dev), torch.randint(0, 10, (batch,), device=dev)
    return m, x, y, torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)


def parse_args(argv):
    """`NAME N... [--flag VALUE]... [--switch]...` -> (NAME, [ints or strings], {flag: int or True});
    `--d-model` becomes the keyword d_model."""
    what, positional, flags = argv[0], [], {}
    rest = argv[1:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg.startswith("--"):
            key = arg[2:].replace("-", "_")
            if i + 1 < len(rest) and not rest[i + 1].startswith("--"):
                flags[key] = int(rest[i + 1]); i += 2
            else:
                flags[key] = True; i += 1
        else:
            # Sizes such as MxKxN stay strings.
            positional.append(int(arg) if arg.isdigit() else arg); i += 1
    return what, positional, flags
