"""Images per second and fraction of peak for CIFAR ResNet-44 at global batch 4096 on one GPU.

Synthetic CIFAR-shaped data; prints one table. Each variant is timed after warm-up, median of
several timed windows. Run with `bash benchmarks/gpu.sh` (or `--device cpu --batch 64` to check
the script on a CPU). FLOPs per step come from torch.utils.flop_counter; peak is this device's
measured bf16 (and fp32) matmul throughput.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from batchgap.models.resnet import CifarResNet


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int) -> float:
    """Measured FLOP/s of a large square matmul: the practical peak the step is compared with."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    reps = 20 if device.type == "cuda" else 2
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start)


def make_step(net, optimizer, x, y, precision: str):
    def step():
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def step_flops(net, x, y) -> int:
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(net(x), y).backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def measure(variant: dict, batch: int, device: torch.device, windows: int, steps: int) -> dict:
    torch.manual_seed(0)
    net = CifarResNet((3, 32, 32), 10, depth=44, widths=[16, 32, 64], norm="bn").to(device)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    flops = step_flops(net, x, y)
    if variant["channels_last"]:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    model = torch.compile(net) if variant["compile"] else net
    step = make_step(model, optimizer, x, y, variant["precision"])
    for _ in range(3):
        step()
    sync(device)
    rates = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        rates.append(batch * steps / (time.perf_counter() - start))
    images_per_s = statistics.median(rates)
    return {
        "images_per_s": images_per_s,
        "spread": (min(rates), max(rates)),
        "flop_per_s": flops * images_per_s / batch,
    }


VARIANTS = [
    {"name": "fp32", "precision": "fp32", "channels_last": False, "compile": False},
    {"name": "bf16", "precision": "bf16", "channels_last": False, "compile": False},
    {"name": "bf16 + channels-last", "precision": "bf16", "channels_last": True, "compile": False},
    {
        "name": "bf16 + channels-last + compile",
        "precision": "bf16",
        "channels_last": True,
        "compile": True,
    },
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--skip-compile", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    n = 8192 if device.type == "cuda" else 1024
    peaks = {"fp32": matmul_peak(device, torch.float32, n)}
    peaks["bf16"] = matmul_peak(device, torch.bfloat16, n)
    print(f"device: {name} | torch {torch.__version__} | global batch {args.batch} | ResNet-44")
    print(
        f"measured matmul peak: fp32 {peaks['fp32'] / 1e12:.1f} TFLOP/s, "
        f"bf16 {peaks['bf16'] / 1e12:.1f} TFLOP/s"
    )
    print(f"{'variant':34} | {'images/s':>10} | {'spread':>19} | {'TFLOP/s':>7} | of peak")
    for variant in VARIANTS:
        if variant["compile"] and args.skip_compile:
            continue
        result = measure(variant, args.batch, device, args.windows, args.steps)
        low, high = result["spread"]
        peak = peaks[variant["precision"]]
        print(
            f"{variant['name']:34} | {result['images_per_s']:10.0f} | "
            f"{low:8.0f}-{high:<10.0f} | {result['flop_per_s'] / 1e12:7.2f} | "
            f"{result['flop_per_s'] / peak:.1%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
