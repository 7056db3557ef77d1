#!/usr/bin/python3
"""PyTorch reference values for whole models: tests/fixtures/models.safetensors.

For three small models (an MLP, a CNN with conv/batchnorm/pooling, a 2-layer causal
transformer), with fixed weights and inputs, stores the weights, the inputs, the logits,
the loss (mean cross-entropy) and the gradient of the loss for every parameter, all in
float32. tests/nn/test_models_torch.c rebuilds each model with wick's modules, loads the
weights by name, and checks logits, loss and gradients to 1e-4 relative.

Names: "<model>.param.<torch name>", "<model>.grad.<torch name>", "<model>.buffer.<name>"
(batch norm running stats after the forward in training mode), "<model>.x", "<model>.y",
"<model>.logits", "<model>.loss".

Run from the repository root with Debian's torch:  /usr/bin/python3 tools/gen_model_fixtures.py
(no safetensors package needed: the format is written by hand, as tools/gen_fixtures.py).
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'fixtures',
                   'models.safetensors')


def save_safetensors(path, tensors, metadata):
    dt = {torch.float32: 'F32', torch.float64: 'F64', torch.int64: 'I64'}
    header, blobs, off = {'__metadata__': metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        b = t.numpy().tobytes()
        header[name] = {'dtype': dt[t.dtype], 'shape': list(t.shape),
                        'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class CausalSelfAttention(nn.Module):
    def __init__(self, e, h):
        super().__init__()
        self.c_attn = nn.Linear(e, 3 * e)
        self.c_proj = nn.Linear(e, e)
        self.n_head = h

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = att.masked_fill(~mask, float('-inf')).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, e):
        super().__init__()
        self.c_fc = nn.Linear(e, 4 * e)
        self.c_proj = nn.Linear(4 * e, e)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, e, h):
        super().__init__()
        self.ln_1 = nn.LayerNorm(e)
        self.attn = CausalSelfAttention(e, h)
        self.ln_2 = nn.LayerNorm(e)
        self.mlp = MLP(e)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab=11, block=8, e=16, h=2, layers=2):
        super().__init__()
        self.wte = nn.Embedding(vocab, e)
        self.wpe = nn.Embedding(block, e)
        self.h = nn.ModuleList([Block(e, h) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(e)
        self.lm_head = nn.Linear(e, vocab)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.h:
            x = b(x)
        return self.lm_head(self.ln_f(x))


def record(prefix, model, x, y, logits_fn, out):
    model.zero_grad()
    logits = logits_fn(model, x)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    out[prefix + '.x'] = x
    out[prefix + '.y'] = y
    out[prefix + '.logits'] = logits
    out[prefix + '.loss'] = loss.reshape(())
    for name, p in model.named_parameters():
        out[prefix + '.grad.' + name] = p.grad
    for name, b in model.named_buffers():
        out[prefix + '.buffer.' + name] = b


def main():
    torch.manual_seed(20261123)
    torch.set_num_threads(1)
    out = {}
    # Parameters are stored before the forward (batch norm buffers after it).
    mlp = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1, stride=1), nn.ReLU(),
                        nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 3))
    gpt = GPT()
    for prefix, model in (('mlp', mlp), ('cnn', cnn), ('gpt', gpt)):
        for name, p in model.named_parameters():
            out[prefix + '.param.' + name] = p.detach().clone()
    record('mlp', mlp, torch.randn(5, 8), torch.randint(0, 4, (5,)), lambda m, x: m(x), out)
    cnn.train()
    record('cnn', cnn, torch.randn(4, 1, 8, 8), torch.randint(0, 3, (4,)), lambda m, x: m(x),
           out)
    record('gpt', gpt, torch.randint(0, 11, (3, 8)), torch.randint(0, 11, (3, 8)),
           lambda m, x: m(x), out)
    meta = {'generator': 'tools/gen_model_fixtures.py', 'torch_version': torch.__version__,
            'seed': '20261123'}
    save_safetensors(OUT, out, meta)
    print('wrote', OUT, len(out), 'tensors,', os.path.getsize(OUT), 'bytes')


if __name__ == '__main__':
    main()
