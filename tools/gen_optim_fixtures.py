#!/usr/bin/python3
"""PyTorch reference values for wick's optimizers and gradient clipping.

Writes tests/fixtures/optim_steps.safetensors and tests/fixtures/optim_clip.safetensors.

    /usr/bin/python3 tools/gen_optim_fixtures.py        # from the repository root

optim_steps: for each case, torch.optim runs 10 steps on three small parameters
([4, 5], [5], [2, 3, 2]) with fixed per-step gradients. Names:
  "<case>.init.<i>"          parameter i before the first step
  "<case>.grad.<k>.<i>"      its gradient at step k (1..10); absent = no grad (None) that step
  "<case>.step.<k>.<i>"      parameter i after step k
  "<case>.state.<i>.<slot>"  torch's state after the last step (exp_avg, momentum_buffer, ...)
__metadata__["<case>"] is a JSON string:
  {"type": "Adam", "dtype": "float32", "steps": 10,
   "opts": {"lr": 0.01, ...},                       # wick's option names (betas split)
   "groups": [{"params": [0, 1], "hparams": {...}}, ...],   # overrides per group
   "step_counts": [10, 7, 10]}                     # torch's state["step"] per parameter
__metadata__["cases"] lists the cases in order.

optim_clip: for each case, grads of three tensors, torch.nn.utils.clip_grad_norm_'s
returned total norm and the clipped grads. Names "<case>.grad.<i>", "<case>.clipped.<i>",
"<case>.total_norm" (shape [1], the grads' dtype); metadata "<case>" =
{"max_norm": ..., "norm_type": ... ("inf" for infinity), "n": 3}.

The safetensors files are written by hand (json + struct), as tools/gen_fixtures.py.
"""
import json
import math
import os
import struct

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures")
SEED = 4321
STEPS = 10
SHAPES = [(4, 5), (5,), (2, 3, 2)]

DT = {torch.float32: "F32", torch.float64: "F64"}


def save_safetensors(path, tensors, metadata):
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        b = t.numpy().tobytes()
        header[name] = {"dtype": DT[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def torch_kwargs(typ, opts):
    """wick's option names -> torch's keyword arguments."""
    kw = {}
    for k, v in opts.items():
        if k in ("beta1", "beta2"):
            continue
        if k in ("nesterov", "amsgrad", "centered", "maximize"):
            v = bool(v)
        kw[k] = v
    if "beta1" in opts or "beta2" in opts:
        default = (0.9, 0.999)
        kw["betas"] = (opts.get("beta1", default[0]), opts.get("beta2", default[1]))
    return kw


CLASSES = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW,
           "RMSprop": torch.optim.RMSprop, "Adagrad": torch.optim.Adagrad}

# (case, type, optimizer options, groups (None = one group of all), grads left out as
# (step, param) pairs, dtype)
CASES = [
    ("sgd_plain", "SGD", {"lr": 0.1}, None, [], torch.float32),
    ("sgd_momentum_dampening_wd", "SGD",
     {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}, None, [],
     torch.float32),
    ("sgd_nesterov_wd", "SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": 1,
                                "weight_decay": 1e-3}, None, [], torch.float32),
    ("sgd_momentum_maximize", "SGD", {"lr": 0.02, "momentum": 0.5, "maximize": 1}, None, [],
     torch.float32),
    ("sgd_groups_skip", "SGD", {"lr": 0.1, "momentum": 0.9},
     [{"params": [0]}, {"params": [1, 2], "hparams": {"momentum": 0.0, "lr": 0.05}}],
     [(1, 1), (4, 0), (5, 0)], torch.float32),
    ("adam_default", "Adam", {"lr": 1e-2}, None, [], torch.float32),
    ("adam_amsgrad_wd", "Adam", {"lr": 5e-3, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6,
                                 "weight_decay": 0.1, "amsgrad": 1}, None, [], torch.float32),
    ("adam_maximize", "Adam", {"lr": 1e-2, "maximize": 1}, None, [], torch.float32),
    ("adamw_default", "AdamW", {"lr": 1e-2}, None, [], torch.float32),
    ("adamw_amsgrad", "AdamW", {"lr": 3e-3, "beta1": 0.85, "beta2": 0.95,
                                "weight_decay": 0.1, "amsgrad": 1}, None, [], torch.float32),
    ("adamw_no_decay_maximize", "AdamW", {"lr": 1e-2, "weight_decay": 0.0, "maximize": 1},
     None, [], torch.float32),
    ("adamw_groups_skip", "AdamW", {"lr": 1e-2, "weight_decay": 0.05},
     [{"params": [0, 1]},
      {"params": [2], "hparams": {"lr": 3e-3, "weight_decay": 0.0, "beta1": 0.7}}],
     [(1, 2), (2, 2), (3, 1), (4, 1), (5, 1)], torch.float32),
    ("rmsprop_default", "RMSprop", {"lr": 1e-2}, None, [], torch.float32),
    ("rmsprop_centered_momentum_wd", "RMSprop",
     {"lr": 1e-2, "alpha": 0.9, "momentum": 0.8, "centered": 1, "weight_decay": 0.01,
      "eps": 1e-6}, None, [], torch.float32),
    ("rmsprop_momentum_maximize", "RMSprop", {"lr": 5e-3, "momentum": 0.5, "maximize": 1},
     None, [], torch.float32),
    ("rmsprop_centered", "RMSprop", {"lr": 2e-3, "centered": 1}, None, [], torch.float32),
    ("adagrad_default", "Adagrad", {"lr": 0.1}, None, [], torch.float32),
    ("adagrad_decay_init_wd", "Adagrad",
     {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.1, "weight_decay": 0.01,
      "eps": 1e-8}, None, [(3, 1)], torch.float32),
    ("adagrad_maximize", "Adagrad", {"lr": 0.05, "maximize": 1}, None, [], torch.float32),
    ("sgd_nesterov_f64", "SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": 1,
                                 "weight_decay": 0.01}, None, [], torch.float64),
    ("adam_amsgrad_f64", "Adam", {"lr": 1e-2, "amsgrad": 1, "weight_decay": 0.01}, None, [],
     torch.float64),
    ("adamw_f64", "AdamW", {"lr": 1e-2}, None, [], torch.float64),
    ("rmsprop_centered_momentum_f64", "RMSprop",
     {"lr": 1e-2, "momentum": 0.9, "centered": 1}, None, [], torch.float64),
    ("adagrad_f64", "Adagrad", {"lr": 0.1, "lr_decay": 0.01}, None, [], torch.float64),
]


def gen_steps(gen):
    tensors, meta, names = {}, {}, []
    for case, typ, opts, groups, skip, dtype in CASES:
        params = [torch.randn(*s, generator=gen, dtype=torch.float64).to(dtype)
                  .requires_grad_(True) for s in SHAPES]
        for i, p in enumerate(params):
            tensors[f"{case}.init.{i}"] = p.detach().clone()
        if groups is None:
            groups = [{"params": [0, 1, 2]}]
        tgroups = []
        for g in groups:
            tg = {"params": [params[i] for i in g["params"]]}
            tg.update(torch_kwargs(typ, g.get("hparams", {})))
            if "beta1" in g.get("hparams", {}) or "beta2" in g.get("hparams", {}):
                base = (opts.get("beta1", 0.9), opts.get("beta2", 0.999))
                tg["betas"] = (g["hparams"].get("beta1", base[0]), g["hparams"].get("beta2", base[1]))
            tgroups.append(tg)
        opt = CLASSES[typ](tgroups, **torch_kwargs(typ, opts))
        for k in range(1, STEPS + 1):
            opt.zero_grad(set_to_none=True)
            for i, p in enumerate(params):
                if (k, i) in skip:
                    continue
                # a spread of magnitudes, so eps and the moments matter
                scale = 10.0 ** ((k + i) % 3 - 1)
                g = (torch.randn(*p.shape, generator=gen, dtype=torch.float64) * scale).to(dtype)
                p.grad = g.clone()
                tensors[f"{case}.grad.{k}.{i}"] = g
            opt.step()
            for i, p in enumerate(params):
                tensors[f"{case}.step.{k}.{i}"] = p.detach().clone()
        counts = []
        for i, p in enumerate(params):
            st = opt.state[p]
            for slot, v in st.items():
                if slot == "step":
                    continue
                if v is not None:
                    tensors[f"{case}.state.{i}.{slot}"] = v.detach().clone()
            s = st.get("step", 0)
            counts.append(int(s.item() if torch.is_tensor(s) else s))
        meta[case] = json.dumps({"type": typ, "dtype": str(dtype).replace("torch.", ""),
                                 "steps": STEPS, "opts": opts, "groups": groups,
                                 "step_counts": counts})
        names.append(case)
    meta["cases"] = json.dumps(names)
    meta["generator"] = "tools/gen_optim_fixtures.py"
    meta["torch_version"] = torch.__version__
    meta["seed"] = str(SEED)
    return tensors, meta


CLIP_CASES = [
    # (case, max_norm, norm_type, grad scale, dtype)
    ("l2_clipped", 1.0, 2.0, 1.0, torch.float32),
    ("l2_not_clipped", 100.0, 2.0, 1.0, torch.float32),
    ("l1_clipped", 2.5, 1.0, 1.0, torch.float32),
    ("inf_clipped", 0.5, math.inf, 1.0, torch.float32),
    ("p3_clipped", 0.7, 3.0, 2.0, torch.float32),
    ("l2_small_grads", 1e-3, 2.0, 1e-4, torch.float32),
    ("l2_f64", 0.3, 2.0, 1.0, torch.float64),
]


def gen_clip(gen):
    tensors, meta, names = {}, {}, []
    for case, max_norm, norm_type, scale, dtype in CLIP_CASES:
        ps = [torch.zeros(*s, dtype=dtype, requires_grad=True) for s in ((7, 9), (13,), (3, 4, 5))]
        for i, p in enumerate(ps):
            p.grad = (torch.randn(*p.shape, generator=gen, dtype=torch.float64) * scale).to(dtype)
            tensors[f"{case}.grad.{i}"] = p.grad.clone()
        total = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type)
        tensors[f"{case}.total_norm"] = total.reshape(1).to(dtype)
        for i, p in enumerate(ps):
            tensors[f"{case}.clipped.{i}"] = p.grad.clone()
        meta[case] = json.dumps({"max_norm": max_norm,
                                 "norm_type": "inf" if math.isinf(norm_type) else norm_type,
                                 "n": len(ps)})
        names.append(case)
    meta["cases"] = json.dumps(names)
    meta["generator"] = "tools/gen_optim_fixtures.py"
    meta["torch_version"] = torch.__version__
    meta["seed"] = str(SEED)
    return tensors, meta


def main():
    gen = torch.Generator().manual_seed(SEED)
    t, m = gen_steps(gen)
    save_safetensors(os.path.join(OUT_DIR, "optim_steps.safetensors"), t, m)
    print(f"optim_steps.safetensors: {len(CASES)} cases, {len(t)} tensors")
    t, m = gen_clip(gen)
    save_safetensors(os.path.join(OUT_DIR, "optim_clip.safetensors"), t, m)
    print(f"optim_clip.safetensors: {len(CLIP_CASES)} cases, {len(t)} tensors")


if __name__ == "__main__":
    main()
