#!/usr/bin/env python3
"""Generate the PyTorch state-dict fixtures of wick's nn tests (tests/nn/test_state_dict.c).

Needs torch and the `safetensors` package (the point is to test against the reference
writer, safetensors.torch.save_file):

    python3 -m venv --system-site-packages /tmp/venv && /tmp/venv/bin/pip install safetensors
    /tmp/venv/bin/python tools/gen_nn_fixtures.py        # from the repository root

Writes into tests/fixtures/:
  torch_mlp.safetensors     state_dict() of nn.Sequential(Linear(4, 3), ReLU(), Linear(3, 2)),
                            exactly as save_file writes it (no metadata)
  torch_mlp_io.safetensors  "x" [5, 4] and "y" = mlp(x) [5, 2], float32
  torch_nested.safetensors  state_dict() of Nested (below), with BatchNorm running stats
                            after 3 training-mode forwards; metadata "state_dict_order" and
                            "named_parameters_order" hold torch's key orders as JSON lists
"""
import json
import os

import safetensors
import safetensors.torch
import torch
from torch import nn

SEED = 20240
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures")


class Nested(nn.Module):
    """Parameters registered after the children: torch still lists a module's own
    parameters, then its buffers, then its children's entries."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(),
                                      nn.Linear(6, 5))
        self.head = nn.Linear(5, 3)
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 3))
        self.register_buffer("step", torch.tensor([7], dtype=torch.int64))

    def forward(self, x):
        return self.head(self.features(x)) * self.scale


def provenance():
    return {"generator": "tools/gen_nn_fixtures.py", "torch_version": torch.__version__,
            "safetensors_version": safetensors.__version__, "seed": str(SEED)}


def main():
    torch.manual_seed(SEED)
    mlp = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    x = torch.randn(5, 4)
    with torch.no_grad():
        y = mlp(x)
    safetensors.torch.save_file(mlp.state_dict(), os.path.join(OUT_DIR, "torch_mlp.safetensors"))
    safetensors.torch.save_file({"x": x, "y": y},
                                os.path.join(OUT_DIR, "torch_mlp_io.safetensors"),
                                metadata=provenance())

    net = Nested()
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, 4) * 2 + 1)
    sd = net.state_dict()
    meta = provenance()
    meta["state_dict_order"] = json.dumps(list(sd.keys()))
    meta["named_parameters_order"] = json.dumps([n for n, _ in net.named_parameters()])
    safetensors.torch.save_file(sd, os.path.join(OUT_DIR, "torch_nested.safetensors"),
                                metadata=meta)
    for name in ("torch_mlp", "torch_mlp_io", "torch_nested"):
        path = os.path.join(OUT_DIR, name + ".safetensors")
        print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
