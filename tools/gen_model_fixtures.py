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

tests/fixtures/models_builtin.safetensors holds the same records for tiny instances of the
built-in models of nn/models.h, defined here with the torch code they copy (same names):
"nanogpt" and "nanogpt_nobias" (nanoGPT's model.py, head tied to wte, dropout 0; its manual
attention path without the mask buffer), "resnet" (torchvision's BasicBlock and names with
a CIFAR stem; training mode, then "resnet.logits_eval" in eval mode after that forward),
"fmnist_cnn" (the benchmark CNN, 3 classes), "mlp_tanh" (Sequential with two hidden
Tanh layers). nanoGPT's weights get N(0, 0.3) noise added after its init, so that logits
and gradients are far from zero. The references are computed in float64 from the float32
weights and inputs and stored as float32; "<model>.torch_f32_error" (float64, 0-d) is the
worst relative error of torch's own float32 run against them, by the test's measure.
"nanogpt.y_ignore" / "nanogpt.loss_ignore": targets with some -1 entries and nanoGPT's
loss with ignore_index=-1. The "gpt.*" entries of models.safetensors (an untied variant
with a biased lm_head) are no longer read by the tests.

Run from the repository root with Debian's torch:
    /usr/bin/python3 tools/gen_model_fixtures.py [models] [builtin]    (default: both)
(no safetensors package needed: the format is written by hand, as tools/gen_fixtures.py).
Regenerating models.safetensors did not reproduce its committed bytes (values differ in the
last bits); the tests compare values with tolerances, not bytes.
"""
import copy
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'fixtures')
OUT = os.path.join(FIXTURES, 'models.safetensors')
OUT_BUILTIN = os.path.join(FIXTURES, 'models_builtin.safetensors')


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


# ---- nanoGPT (karpathy/nanoGPT model.py; the manual attention, mask built per call) ----

class NanoLayerNorm(nn.Module):
    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class NanoAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_attn = nn.Linear(cfg['n_embd'], 3 * cfg['n_embd'], bias=cfg['bias'])
        self.c_proj = nn.Linear(cfg['n_embd'], cfg['n_embd'], bias=cfg['bias'])
        self.attn_dropout = nn.Dropout(cfg['dropout'])
        self.resid_dropout = nn.Dropout(cfg['dropout'])
        self.n_head = cfg['n_head']

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        mask = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
        att = att.masked_fill(mask == 0, float('-inf'))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class NanoMLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = nn.Linear(cfg['n_embd'], 4 * cfg['n_embd'], bias=cfg['bias'])
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * cfg['n_embd'], cfg['n_embd'], bias=cfg['bias'])
        self.dropout = nn.Dropout(cfg['dropout'])

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class NanoBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = NanoLayerNorm(cfg['n_embd'], cfg['bias'])
        self.attn = NanoAttention(cfg)
        self.ln_2 = NanoLayerNorm(cfg['n_embd'], cfg['bias'])
        self.mlp = NanoMLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class NanoGPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg['vocab_size'], cfg['n_embd']),
            wpe=nn.Embedding(cfg['block_size'], cfg['n_embd']),
            drop=nn.Dropout(cfg['dropout']),
            h=nn.ModuleList([NanoBlock(cfg) for _ in range(cfg['n_layer'])]),
            ln_f=NanoLayerNorm(cfg['n_embd'], cfg['bias']),
        ))
        self.lm_head = nn.Linear(cfg['n_embd'], cfg['vocab_size'], bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith('c_proj.weight'):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg['n_layer']))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx):
        t = idx.size(1)
        pos = torch.arange(0, t, dtype=torch.long)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


# ---- torchvision's BasicBlock and ResNet names, with a CIFAR stem (no max pool) ----

class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class SmallResNet(nn.Module):
    def __init__(self, in_channels, num_classes, width=16, stages=3, blocks=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        inplanes = width
        for s in range(stages):
            layers = []
            for b in range(blocks):
                layers.append(BasicBlock(inplanes, width << s, 2 if s > 0 and b == 0 else 1))
                inplanes = width << s
            setattr(self, 'layer%d' % (s + 1), nn.Sequential(*layers))
        self.stages = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        for s in range(self.stages):
            x = getattr(self, 'layer%d' % (s + 1))(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def fmnist_cnn(in_channels, num_classes):
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 7 * 7, num_classes))


def worst_error(got, want):
    """tests/nn/test_models_torch.c's measure: the largest |got - want| / scale with
    scale = max(|want|, 1e-3 max|want|, 1e-4)."""
    got, want = got.detach().double().flatten(), want.detach().double().flatten()
    scale = torch.maximum(want.abs(), 1e-3 * want.abs().max()).clamp(min=1e-4)
    return ((got - want).abs() / scale).max().item()


def builtin():
    torch.manual_seed(20261201)
    torch.set_num_threads(1)
    out = {}
    gpt_cfg = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0,
                   bias=True)
    nobias_cfg = dict(vocab_size=7, block_size=6, n_layer=1, n_head=2, n_embd=8, dropout=0.0,
                      bias=False)
    models = [
        ('nanogpt', NanoGPT(gpt_cfg), torch.randint(0, 11, (3, 8)), torch.randint(0, 11, (3, 8))),
        ('nanogpt_nobias', NanoGPT(nobias_cfg), torch.randint(0, 7, (2, 6)),
         torch.randint(0, 7, (2, 6))),
        ('resnet', SmallResNet(2, 3, width=4, stages=2, blocks=2), torch.randn(2, 2, 8, 8),
         torch.randint(0, 3, (2,))),
        ('fmnist_cnn', fmnist_cnn(1, 3), torch.rand(2, 1, 28, 28), torch.randint(0, 3, (2,))),
        ('mlp_tanh', nn.Sequential(nn.Linear(6, 7), nn.Tanh(), nn.Linear(7, 5), nn.Tanh(),
                                   nn.Linear(5, 3)), torch.randn(4, 6), torch.randint(0, 3, (4,))),
    ]
    for prefix, model, x, y in models:
        # nanoGPT's init is small: scale the weights up so that the logits and gradients are
        # far from zero (the values, not the init, are what the test checks).
        if prefix.startswith('nanogpt'):
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn_like(p) * 0.3)
        for name, p in model.named_parameters():
            out[prefix + '.param.' + name] = p.detach().clone()
        # The reference is computed in float64 from the float32 weights and inputs and
        # stored as float32, so that it carries no float32 rounding of torch's own: what
        # the test measures is wick's error alone. torch's own float32 run, measured
        # against it, gives the test its float32 tolerance ("<model>.torch_f32_error").
        rec32 = {}
        record(prefix, copy.deepcopy(model).train(), x, y, lambda m, x: m(x), rec32)
        model.double().train()
        rec = {}
        record(prefix, model, x.double() if x.is_floating_point() else x, y, lambda m, x: m(x),
               rec)
        for name, t in rec.items():
            out[name] = t.float() if t.dtype == torch.float64 else t
        out[prefix + '.torch_f32_error'] = torch.tensor(
            max(worst_error(rec32[k], rec[k]) for k in rec
                if rec[k].is_floating_point() and not k.endswith('.x')), dtype=torch.float64)
    gpt = models[0][1]
    y_ign = models[0][3].clone()
    y_ign[0, 2] = -1
    y_ign[2, 5] = -1
    with torch.no_grad():
        logits = gpt(models[0][2])
        out['nanogpt.y_ignore'] = y_ign
        out['nanogpt.loss_ignore'] = F.cross_entropy(logits.view(-1, logits.size(-1)),
                                                     y_ign.view(-1),
                                                     ignore_index=-1).reshape(()).float()
        resnet = models[2][1]
        resnet.eval()
        out['resnet.logits_eval'] = resnet(models[2][2].double()).float()
    meta = {'generator': 'tools/gen_model_fixtures.py', 'torch_version': torch.__version__,
            'seed': '20261201'}
    save_safetensors(OUT_BUILTIN, out, meta)
    print('wrote', OUT_BUILTIN, len(out), 'tensors,', os.path.getsize(OUT_BUILTIN), 'bytes')


if __name__ == '__main__':
    what = sys.argv[1:] or ['models', 'builtin']
    if 'models' in what:
        main()
    if 'builtin' in what:
        builtin()
