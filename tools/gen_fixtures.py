#!/usr/bin/python3
"""Generate PyTorch reference values for wick's tensor op tests.

Writes tests/fixtures/tensor_ops.safetensors and tests/fixtures/README.md.

    /usr/bin/python3 tools/gen_fixtures.py            # from the repository root

Each case stores its inputs and torch's output as "<case>.in0", "<case>.in1", ...,
"<case>.out", and its parameters as a JSON string in __metadata__["<case>"], e.g.
'{"op": "sum", "dims": [1], "keepdim": true}'. The safetensors file is written by hand
(json + struct: sorted names, header padded with spaces to 8 bytes), since the
safetensors package is not needed for such a simple format.
"""
import json
import os
import struct
import sys
import zlib

import torch
import torch.nn.functional as F

SEED = 1234
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures")
OUT_FILE = os.path.join(OUT_DIR, "tensor_ops.safetensors")

DTYPES = {
    torch.float32: "F32", torch.float64: "F64", torch.int32: "I32", torch.int64: "I64",
    torch.uint8: "U8", torch.bool: "BOOL", torch.bfloat16: "BF16", torch.float16: "F16",
}

gen = torch.Generator().manual_seed(SEED)


def randn(*shape, dtype=torch.float32, scale=1.0):
    return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(dtype)


def uniform(lo, hi, *shape, dtype=torch.float32):
    return (torch.rand(*shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo).to(dtype)


def away_from_zero(*shape, dtype=torch.float32):
    """Values in +-[0.5, 2.5): safe divisors."""
    sign = torch.randint(0, 2, shape, generator=gen) * 2 - 1
    return (uniform(0.5, 2.5, *shape, dtype=torch.float64) * sign).to(dtype)


def randint(lo, hi, *shape):
    return torch.randint(lo, hi, shape, generator=gen, dtype=torch.int64)


cases = []  # (name, params, inputs, output)


def case(name, params, inputs, out):
    assert all(name != c[0] for c in cases), name
    cases.append((name, params, list(inputs), out))


def binary_cases():
    for op, fn in (("add", torch.add), ("mul", torch.mul), ("div", torch.div)):
        a = randn(3, 1, 5)
        b = away_from_zero(4, 5) if op == "div" else randn(4, 5)
        case(f"{op}_bcast", {"op": op}, [a, b], fn(a, b))
        a = randn(2, 3, 7)
        b = away_from_zero(3, 1) if op == "div" else randn(3, 1)
        case(f"{op}_bcast_mid", {"op": op}, [a, b], fn(a, b))
    a, b = randn(4, 1, dtype=torch.float64), randn(1, 9, dtype=torch.float64)
    case("add_f64", {"op": "add"}, [a, b], a + b)
    a, b = randn(5, 7, dtype=torch.float64), away_from_zero(7, dtype=torch.float64)
    case("div_f64", {"op": "div"}, [a, b], a / b)


def unary_cases():
    x = randn(7, 9)
    case("exp", {"op": "exp"}, [x], torch.exp(x))
    x = uniform(0.05, 5.0, 6, 11)
    case("log", {"op": "log"}, [x], torch.log(x))
    x = randn(5, 13, scale=2.0)
    case("tanh", {"op": "tanh"}, [x], torch.tanh(x))
    x = randn(5, 13, scale=4.0)
    case("sigmoid", {"op": "sigmoid"}, [x], torch.sigmoid(x))
    x = randn(9, 11, scale=2.0)
    case("gelu_erf", {"op": "gelu", "approximate": "none"}, [x], F.gelu(x))
    x = randn(9, 11, scale=2.0)
    case("gelu_tanh", {"op": "gelu", "approximate": "tanh"}, [x], F.gelu(x, approximate="tanh"))
    x = randn(7, 13, scale=3.0)
    case("silu", {"op": "silu"}, [x], F.silu(x))
    x = randn(7, 13)
    case("relu", {"op": "relu"}, [x], F.relu(x))
    x = uniform(0.1, 3.0, 5, 9)
    case("pow_scalar", {"op": "pow", "exponent": 2.5}, [x], torch.pow(x, 2.5))
    x, e = uniform(0.1, 3.0, 4, 7), randn(7)
    case("pow_tensor", {"op": "pow"}, [x, e], torch.pow(x, e))
    x = randn(3, 17, dtype=torch.float64, scale=3.0)
    case("exp_f64", {"op": "exp"}, [x], torch.exp(x))
    x = randn(3, 17, dtype=torch.float64, scale=3.0)
    case("tanh_f64", {"op": "tanh"}, [x], torch.tanh(x))
    x = randn(3, 17, dtype=torch.float64, scale=3.0)
    case("gelu_erf_f64", {"op": "gelu", "approximate": "none"}, [x], F.gelu(x))


def reduce_cases():
    def red(name, op, x, dims, keepdim, **extra):
        d = tuple(dims) if dims is not None else None
        if op == "sum":
            out = torch.sum(x, dim=d, keepdim=keepdim) if d else torch.sum(x)
        elif op == "mean":
            out = torch.mean(x, dim=d, keepdim=keepdim) if d else torch.mean(x)
        elif op == "var":
            out = torch.var(x, dim=d, unbiased=True, keepdim=keepdim)
        elif op == "std":
            out = torch.std(x, dim=d, unbiased=True, keepdim=keepdim)
        elif op == "amax":
            out = torch.amax(x, dim=d, keepdim=keepdim)
        elif op == "logsumexp":
            out = torch.logsumexp(x, dim=d, keepdim=keepdim)
        elif op == "norm":
            out = torch.linalg.vector_norm(x, ord=2, dim=d, keepdim=keepdim)
        else:
            raise ValueError(op)
        params = {"op": op, "dims": list(dims) if dims is not None else None,
                  "keepdim": keepdim}
        params.update(extra)
        case(name, params, [x], out)

    x = randn(4, 7, 5)
    red("sum_d1_keep", "sum", x, [1], True)
    red("sum_d02", "sum", x, [0, 2], False)
    red("sum_all", "sum", randn(5, 9), None, False)
    red("sum_dneg1_f64", "sum", randn(3, 4, 11, dtype=torch.float64), [-1], False)
    red("mean_d2", "mean", randn(4, 7, 5), [2], False)
    red("mean_d0_keep", "mean", randn(6, 7), [0], True)
    red("var_d1_keep", "var", randn(4, 9, 3), [1], True, correction=1)
    red("var_d01_f64", "var", randn(5, 3, 7, dtype=torch.float64), [0, 1], False, correction=1)
    red("std_d0", "std", randn(7, 6), [0], False, correction=1)
    red("std_d2_keep", "std", randn(3, 4, 13), [2], True, correction=1)
    red("amax_d1_keep", "amax", randn(4, 7, 5), [1], True)
    red("amax_d12", "amax", randn(3, 5, 7), [1, 2], False)
    red("logsumexp_d2", "logsumexp", randn(3, 4, 9), [2], False)
    red("logsumexp_large", "logsumexp", randn(5, 11, scale=100.0), [1], True)
    red("norm_d1_keep", "norm", randn(4, 9, 3), [1], True, p=2)
    red("norm_d01_f64", "norm", randn(5, 6, 3, dtype=torch.float64), [0, 1], False, p=2)


def softmax_cases():
    for name, x in (("softmax", randn(6, 11)), ("softmax_3d", randn(2, 3, 9, scale=3.0)),
                    ("softmax_large", randn(5, 13, scale=50.0))):
        case(name, {"op": "softmax", "dim": -1}, [x], torch.softmax(x, dim=-1))
    for name, x in (("log_softmax", randn(6, 11)),
                    ("log_softmax_large", randn(5, 13, scale=50.0)),
                    ("log_softmax_f64", randn(4, 7, dtype=torch.float64, scale=3.0))):
        case(name, {"op": "log_softmax", "dim": -1}, [x], torch.log_softmax(x, dim=-1))


def linalg_cases():
    a, b = randn(7, 5), randn(5, 9)
    case("matmul_2d", {"op": "matmul"}, [a, b], a @ b)
    a, b = randn(2, 1, 3, 5), randn(4, 5, 6)
    case("matmul_batched_bcast", {"op": "matmul"}, [a, b], a @ b)
    a, b = randn(3, 4, 5, dtype=torch.float64), randn(5, 2, dtype=torch.float64)
    case("matmul_3d_2d_f64", {"op": "matmul"}, [a, b], a @ b)
    a, b = randn(4, 5), randn(5)
    case("matmul_mv", {"op": "matmul"}, [a, b], a @ b)
    a, b = randn(5), randn(5, 3)
    case("matmul_vm", {"op": "matmul"}, [a, b], a @ b)
    x, w, bias = randn(3, 7), randn(5, 7), randn(5)
    case("linear", {"op": "linear", "bias": True}, [x, w, bias], F.linear(x, w, bias))
    x, w, bias = randn(2, 3, 7), randn(4, 7), randn(4)
    case("linear_3d", {"op": "linear", "bias": True}, [x, w, bias], F.linear(x, w, bias))
    x, w, bias = (randn(3, 6, dtype=torch.float64), randn(2, 6, dtype=torch.float64),
                  randn(2, dtype=torch.float64))
    case("linear_f64", {"op": "linear", "bias": True}, [x, w, bias], F.linear(x, w, bias))


def index_cases():
    x, idx = randn(5, 7), torch.tensor([6, 0, 3, 3, 1], dtype=torch.int64)
    case("index_select_d1", {"op": "index_select", "dim": 1}, [x, idx],
         torch.index_select(x, 1, idx))
    x, idx = randn(6, 3), torch.tensor([5, 5, 0, 2], dtype=torch.int64)
    case("index_select_d0", {"op": "index_select", "dim": 0}, [x, idx],
         torch.index_select(x, 0, idx))
    x, idx = randn(4, 6), randint(0, 6, 4, 3)
    case("gather_d1", {"op": "gather", "dim": 1}, [x, idx], torch.gather(x, 1, idx))
    x, idx = randn(4, 6), randint(0, 4, 2, 6)
    case("gather_d0", {"op": "gather", "dim": 0}, [x, idx], torch.gather(x, 0, idx))
    parts = [randn(2, 3), randn(4, 3), randn(1, 3)]
    case("cat_d0", {"op": "cat", "dim": 0}, parts, torch.cat(parts, 0))
    parts = [randn(3, 2, 2), randn(3, 5, 2)]
    case("cat_d1", {"op": "cat", "dim": 1}, parts, torch.cat(parts, 1))
    parts = [randn(2, 3, dtype=torch.float64), randn(2, 1, dtype=torch.float64)]
    case("cat_dneg1_f64", {"op": "cat", "dim": -1}, parts, torch.cat(parts, -1))
    idx = randint(0, 5, 7)
    case("one_hot", {"op": "one_hot", "num_classes": 5}, [idx], F.one_hot(idx, 5))
    idx = randint(0, 4, 2, 3)
    case("one_hot_2d", {"op": "one_hot", "num_classes": 4}, [idx], F.one_hot(idx, 4))


def write_safetensors(path, tensors, metadata):
    """tensors: {name: tensor}; metadata: {str: str} (kept in insertion order)."""
    header = {"__metadata__": metadata} if metadata else {}
    chunks, pos = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        data = t.numpy().tobytes() if t.dtype != torch.bfloat16 else \
            t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [pos, pos + len(data)]}
        chunks.append(data)
        pos += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    body = b"".join(chunks)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(body)
    os.replace(tmp, path)
    return zlib.crc32(body)


README = """# Test fixtures

`tensor_ops.safetensors` holds PyTorch reference values for wick's tensor ops. It was
written by `tools/gen_fixtures.py` with torch {torch_version} (CPU, seed {seed}); regenerate
it from the repository root with

    /usr/bin/python3 tools/gen_fixtures.py

(no safetensors package is needed: the script writes the format by hand, with names in
sorted order and the JSON header padded with spaces to a multiple of 8 bytes). Commit the
regenerated file and this README together.

## Layout

- `<case>.in0`, `<case>.in1`, ...: the inputs, in the order the op takes them
  (cat: the tensors to join; linear: x, weight, bias; index_select/gather: x, index).
- `<case>.out`: torch's result, computed in the inputs' dtype.
- `__metadata__["<case>"]`: the parameters as a JSON string, e.g.
  `{{"op": "sum", "dims": [1], "keepdim": true}}`. `"dims": null` reduces every dim;
  `var`/`std` use `correction` 1 (unbiased); `norm` is the vector 2-norm
  (`torch.linalg.vector_norm`); `gelu` has `approximate` "none" (erf) or "tanh";
  softmax/log_softmax run along `dim` -1.
- `__metadata__["cases"]`: the case names as a JSON list, in generation order.
- `__metadata__["data_crc32"]`: zlib CRC-32 of the whole data section (decimal), so a
  test can tell a damaged file from a wrong op.
- `__metadata__["generator"]`, `["torch_version"]`, `["seed"]`: provenance.

Float inputs are float32 unless the case name ends in `_f64`; indices are int64, and
one_hot outputs are int64. Sizes are small and odd (a few to a few hundred elements).

## Cases ({n_cases} cases, {n_tensors} tensors, {n_bytes} bytes)

| case | op | inputs | output |
|---|---|---|---|
{rows}
"""


def main():
    torch.set_num_threads(1)
    binary_cases()
    unary_cases()
    reduce_cases()
    softmax_cases()
    linalg_cases()
    index_cases()

    tensors, metadata = {}, {}
    metadata["generator"] = "tools/gen_fixtures.py"
    metadata["torch_version"] = torch.__version__
    metadata["seed"] = str(SEED)
    metadata["cases"] = json.dumps([c[0] for c in cases])
    metadata["data_crc32"] = ""  # filled below; keeps its place in the key order
    for name, params, inputs, out in cases:
        metadata[name] = json.dumps(params)
        for i, t in enumerate(inputs):
            tensors[f"{name}.in{i}"] = t
        tensors[f"{name}.out"] = out

    os.makedirs(OUT_DIR, exist_ok=True)
    # The CRC covers only the data, so a first pass gives it without changing the data.
    crc = write_safetensors(OUT_FILE, tensors, metadata)
    metadata["data_crc32"] = str(crc)
    assert write_safetensors(OUT_FILE, tensors, metadata) == crc

    def desc(t):
        return f"{DTYPES[t.dtype]} {list(t.shape)}"

    rows = "\n".join(
        f"| {name} | `{json.dumps(params)}` | {', '.join(desc(t) for t in inputs)} | "
        f"{desc(out)} |" for name, params, inputs, out in cases)
    with open(os.path.join(OUT_DIR, "README.md"), "w") as f:
        f.write(README.format(torch_version=torch.__version__, seed=SEED,
                              n_cases=len(cases), n_tensors=len(tensors),
                              n_bytes=os.path.getsize(OUT_FILE), rows=rows))
    print(f"wrote {OUT_FILE}: {len(cases)} cases, {len(tensors)} tensors, "
          f"{os.path.getsize(OUT_FILE)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
