#!/usr/bin/env python3
"""Golden data for optim/: torch.optim.AdamW (float32, CPU) over 10 steps on random tensors.

Run on the CPU with torch (written against torch 2.15):
    python tests/golden/make_optim_golden.py [OUT_DIR]      # default tests/golden/optim/
Writes OUT_DIR/adamw_torch.safetensors and OUT_DIR/header.json (script, versions, date, cases).
For each case C (hyperparameters in header.json and in the tensors) and tensor index k:
    C.hyper        F64 [4]      beta1, beta2, eps, weight_decay (as Python passed them)
    C.lr           F64 [10]     the learning rate of each step (set on the param group before it)
    C.k.p0         F32 [n]      the parameter before the first step
    C.k.grad       F32 [10, n]  the gradient of each step
    C.k.p          F32 [10, n]  the parameter after each step
    C.k.exp_avg    F32 [10, n]  torch's state after each step
    C.k.exp_avg_sq F32 [10, n]
Gradients are N(0, 1) times a per-tensor scale; one tensor has scale 1e-6 so eps matters, and
one has a few exact zeros. torch.optim.AdamW runs with foreach=False (the single-tensor path that
nibble's element order follows; on CPU the default picks it anyway).
"""
import datetime
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

STEPS = 10
CASES = {
    # transformers' defaults with a typical QLoRA learning rate.
    "default": dict(lr=[2e-4] * STEPS, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
    # Everything non-default, and a learning rate that changes every step (a warmup ramp).
    "decay": dict(lr=[3e-2 * (k + 1) / STEPS for k in range(STEPS)], betas=(0.8, 0.95), eps=1e-6,
                  weight_decay=0.1),
}
SHAPES = [(7,), (33, 5), (300,)]
SCALES = [1.0, 1e-6, 3e-2]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "optim")
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    tensors = {}
    for name, case in CASES.items():
        params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float32)) for s in SHAPES]
        p0 = [p.detach().clone() for p in params]
        grads = []
        for s, scale in zip(SHAPES, SCALES):
            g = torch.randn((STEPS,) + s, generator=gen, dtype=torch.float32) * scale
            grads.append(g)
        grads[2][:, :5] = 0.0
        opt = torch.optim.AdamW(params, lr=case["lr"][0], betas=case["betas"], eps=case["eps"],
                                weight_decay=case["weight_decay"], foreach=False)
        hist = {k: [] for k in ("p", "exp_avg", "exp_avg_sq")}
        for step in range(STEPS):
            for group in opt.param_groups:
                group["lr"] = case["lr"][step]
            for p, g in zip(params, grads):
                p.grad = g[step].clone()
            opt.step()
            hist["p"].append([p.detach().clone().reshape(-1) for p in params])
            hist["exp_avg"].append([opt.state[p]["exp_avg"].clone().reshape(-1) for p in params])
            hist["exp_avg_sq"].append([opt.state[p]["exp_avg_sq"].clone().reshape(-1) for p in params])
        tensors[f"{name}.hyper"] = torch.tensor([case["betas"][0], case["betas"][1], case["eps"],
                                                 case["weight_decay"]], dtype=torch.float64)
        tensors[f"{name}.lr"] = torch.tensor(case["lr"], dtype=torch.float64)
        for k in range(len(SHAPES)):
            tensors[f"{name}.{k}.p0"] = p0[k].reshape(-1).contiguous()
            tensors[f"{name}.{k}.grad"] = grads[k].reshape(STEPS, -1).contiguous()
            for key in hist:
                tensors[f"{name}.{k}.{key}"] = torch.stack([h[k] for h in hist[key]]).contiguous()
    save_file(tensors, os.path.join(out, "adamw_torch.safetensors"), metadata={"format": "pt"})
    header = {
        "script": "tests/golden/make_optim_golden.py",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "date": datetime.date.today().isoformat(),
        "steps": STEPS,
        "shapes": SHAPES,
        "grad_scales": SCALES,
        "cases": {k: dict(v, betas=list(v["betas"])) for k, v in CASES.items()},
    }
    with open(os.path.join(out, "header.json"), "w") as f:
        json.dump(header, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
