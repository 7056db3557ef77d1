#!/usr/bin/python3
"""PyTorch twin of bench/models.c: forward + mean cross-entropy + backward time of the
three reference models of BENCHMARKS.md (median of timed runs after 3 warm-up runs).

  mlp: 784 -> Linear 500 -> ReLU -> Linear 10, batch 500
  cnn: Conv3x3 1->8 p1 + ReLU, MaxPool 2, Conv3x3 8->16 p1 + ReLU, MaxPool 2,
       flatten 784 -> Linear 10, batch 500 of 1x28x28
  gpt: vocab 256, 4 layers, 4 heads, n_embd 128, block 128, pre-LN, erf GELU, learned
       positions, weight-tied head, batch 16 x 128 tokens (attention written out as in
       ../shared/bench/peer_torch.py: torch 1.13 has no fused attention)

Run with Debian's torch:  /usr/bin/python3 tools/bench_models_torch.py [threads]   (default 2)
Prints `RESULT model=... system=torch threads=N fwd_bwd_ms=...` per model.
"""
import math
import os
import sys
import time

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
for var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ[var] = str(THREADS)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(THREADS)
torch.manual_seed(1337)


class Block(nn.Module):
    def __init__(self, e, h):
        super().__init__()
        self.n_head = h
        self.ln_1 = nn.LayerNorm(e)
        self.c_attn = nn.Linear(e, 3 * e)
        self.c_proj = nn.Linear(e, e)
        self.ln_2 = nn.LayerNorm(e)
        self.c_fc = nn.Linear(e, 4 * e)
        self.mlp_proj = nn.Linear(4 * e, e)

    def attn(self, x, mask):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        hd = C // self.n_head
        q = q.view(B, T, self.n_head, hd).transpose(1, 2)
        k = k.view(B, T, self.n_head, hd).transpose(1, 2)
        v = v.view(B, T, self.n_head, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = F.softmax(att.masked_fill(mask[:T, :T], float('-inf')), dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))

    def forward(self, x, mask):
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, vocab=256, n_layer=4, n_head=4, n_embd=128, block=128):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block, n_embd)
        self.h = nn.ModuleList([Block(n_embd, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.register_buffer('mask', torch.triu(torch.ones(block, block, dtype=torch.bool), 1))

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.h:
            x = b(x, self.mask)
        return F.linear(self.ln_f(x), self.wte.weight)  # tied head


def cnn():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(784, 10))


def step(model, x, y):
    t0 = time.perf_counter()
    model.zero_grad(set_to_none=False)
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    return time.perf_counter() - t0


def bench(name, model, x, y, reps):
    for _ in range(3):
        step(model, x, y)
    t = sorted(step(model, x, y) for _ in range(reps))
    params = sum(p.numel() for p in model.parameters())
    print(f'RESULT model={name} system=torch threads={THREADS} fwd_bwd_ms={1e3 * t[reps // 2]:.2f} '
          f'min_ms={1e3 * t[0]:.2f} params={params}', flush=True)


def main():
    y = torch.randint(0, 10, (500,))
    bench('mlp', nn.Sequential(nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 10)),
          torch.rand(500, 784), y, 21)
    bench('cnn', cnn(), torch.rand(500, 1, 28, 28), y, 11)
    bench('gpt', GPT(), torch.randint(0, 256, (16, 128)), torch.randint(0, 256, (16, 128)), 11)


if __name__ == '__main__':
    main()
