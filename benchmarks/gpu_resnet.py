"""Images per second and fraction of peak for CIFAR ResNet-44 at global batch 4096 on one GPU.

Synthetic CIFAR-shaped data; prints one table. Each variant is timed after warm-up, median of
several timed windows: a plain loop in fp32, bf16, bf16 + channels-last and + torch.compile, and
batchgap's own path (Classifier, its callbacks, a Lightning Trainer at bf16-mixed). Run with
`bash benchmarks/gpu.sh` (or `--device cpu --batch 8 --skip-compile` to check the script on a
CPU). FLOPs per step come from torch.utils.flop_counter; peak is this device's measured bf16
(and fp32) matmul throughput.
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


def resnet44(device: torch.device) -> CifarResNet:
    torch.manual_seed(0)
    return CifarResNet((3, 32, 32), 10, depth=44, widths=[16, 32, 64], norm="bn").to(device)


def summary(rates: list[float], flops: int, batch: int) -> dict:
    """Median images/s over the timed windows, their spread, and the FLOP/s that implies."""
    images_per_s = statistics.median(rates)
    return {
        "images_per_s": images_per_s,
        "spread": (min(rates), max(rates)),
        "flop_per_s": flops * images_per_s / batch,
    }


def measure(variant: dict, batch: int, device: torch.device, windows: int, steps: int) -> dict:
    net = resnet44(device)
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
    return summary(rates, flops, batch)


def measure_batchgap(batch: int, device: torch.device, windows: int, steps: int) -> dict:
    """The same net and batch through batchgap's path: Classifier, its callbacks and a Lightning
    Trainer at bf16-mixed with a channels-last net (trainer=gpu_fast perf.channels_last=true)."""
    import functools
    import logging
    import warnings

    import lightning as L

    from batchgap.callbacks import DivergenceGuard, WeightDistance
    from batchgap.data.batches import HeldTensors, training_batches
    from batchgap.modules.classifier import Classifier

    class WindowTimer(L.Callback):
        def __init__(self):
            self.start, self.rates = None, []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch_, batch_idx):
            if trainer.global_step < 3 or (trainer.global_step - 3) % steps:
                return
            sync(device)
            now = time.perf_counter()
            if self.start is not None:
                self.rates.append(batch * steps / (now - self.start))
            self.start = now

    # Lightning's start-up notes would split the table.
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    net = resnet44(device)
    # Two batches an epoch, held on the device as batchgap holds a dataset.
    x = torch.randn(2 * batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (2 * batch,), device=device)
    # Counted on the device: a CPU pass at batch 4096 would spend the script's time limit.
    flops = step_flops(net, x[:batch], y[:batch])
    net = net.to(memory_format=torch.channels_last)
    module = Classifier(
        net,
        optimizer=functools.partial(torch.optim.SGD, momentum=0.9, weight_decay=1e-4),
        lr=0.1,
        lr_milestones=[],
        lr_gamma=0.1,
    )
    timer = WindowTimer()
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        precision="bf16-mixed",
        max_steps=3 + windows * steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[timer, DivergenceGuard(), WeightDistance(None)],
    )
    loader = training_batches(HeldTensors(x, y), batch, rank=0, world_size=1, seed=0)
    trainer.fit(module, train_dataloaders=loader)
    return summary(timer.rates, flops, batch)


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
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            f"gpu_resnet.py: error: --device {args.device} but torch sees no CUDA GPU here; "
            "run it where a GPU is lent, or check the script with --device cpu --batch 8"
        )
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
        if variant["compile"]:
            # Before the compiled variant, whose compile time may meet gpu.sh's time limit.
            result = measure_batchgap(args.batch, device, args.windows, args.steps)
            print_row("batchgap: Lightning, bf16, ch-last", result, peaks["bf16"])
            if args.skip_compile:
                continue
        result = measure(variant, args.batch, device, args.windows, args.steps)
        print_row(variant["name"], result, peaks[variant["precision"]])


def print_row(name: str, result: dict, peak: float) -> None:
    low, high = result["spread"]
    print(
        f"{name:34} | {result['images_per_s']:10.0f} | "
        f"{low:8.0f}-{high:<10.0f} | {result['flop_per_s'] / 1e12:7.2f} | "
        f"{result['flop_per_s'] / peak:.1%}",
        flush=True,
    )


if __name__ == "__main__":
    main()
