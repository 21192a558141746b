#!/usr/bin/env python3
"""The PyTorch anchor of bench/train.ts: one training step of a study net,
written by hand in plain PyTorch on torchvision's networks, so that
salgrid's training engines are timed against PyTorch in the same run on the
same machine.

The step is the textbook one: torchvision's densenet201, googlenet
(aux_logits=False, init_weights=True), mobilenet_v2 or resnet101 with
num_classes=4 and seeded random weights, in model.train() (batch norm on
batch statistics, dropout on), 224x224 random inputs, mean cross-entropy,
zero_grad, backward, then torch.optim.SGD(lr=0.001, momentum=0.9).
--warmup untimed steps (default 1), then --steps timed steps.

It is an anchor for the bench, not a test dependency. It prints one line
`ROW {json}`: the median seconds per step, every timed step, the warm-up
step (the first warm-up step), and the process's peak resident memory (maxRSS, KiB, as
getrusage reports it on Linux). A step that does not fit prints
`FAILED {json}` and exits 1.

Usage: python3 bench/anchors/torch_train.py --arch mobilenetv2 --batch 8
       [--steps 3] [--warmup 1] [--threads 2] [--device cpu|cuda]
"""
import argparse
import json
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import torchvision

SIZE = 224
CLASSES = 4
ARCHS = ['mobilenetv2', 'googlenet', 'resnet101', 'densenet201']


def build(arch):
    """torchvision's network for `arch` (bench/train.ts's keys) with seeded random weights and a 4-class head."""
    torch.manual_seed(2026)
    models = torchvision.models
    if arch == 'mobilenetv2':
        return models.mobilenet_v2(num_classes=CLASSES)
    if arch == 'googlenet':
        return models.googlenet(num_classes=CLASSES, aux_logits=False, init_weights=True, transform_input=False)
    if arch == 'resnet101':
        return models.resnet101(num_classes=CLASSES)
    if arch == 'densenet201':
        return models.densenet201(num_classes=CLASSES)
    raise SystemExit(f'unknown arch {arch}')


def max_rss_kib():
    """Peak resident memory of this process in KiB (Linux's ru_maxrss unit)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--arch', required=True, choices=ARCHS)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--steps', type=int, default=3, help='timed steps after the warm-up steps')
    parser.add_argument('--warmup', type=int, default=1, help='untimed steps first (at least 1)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', default='cpu', help='cpu, or cuda on a GPU machine')
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = build(args.arch).to(device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(args.batch, 3, SIZE, SIZE, generator=generator).to(device)
    # The labels bench/train.ts gives its own engines.
    y = torch.tensor([(i * 7 + 3) % CLASSES for i in range(args.batch)], dtype=torch.long).to(device)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)

    def step():
        """One optimizer step; its wall time in seconds."""
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        loss.item()  # waits for the step, as reading salgrid's batch statistics does
        sync()
        return time.perf_counter() - started

    first = step()
    for _ in range(args.warmup - 1):
        step()
    steps = [step() for _ in range(args.steps)]
    where = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    row = {
        'seconds': statistics.median(steps) if steps else first,
        'steps': steps,
        'firstSeconds': first,
        'maxRSS': max_rss_kib(),
        'device': f'PyTorch {torch.__version__}, {where}',
    }
    print('ROW ' + json.dumps(row), flush=True)


if __name__ == '__main__':
    try:
        main()
    except (MemoryError, RuntimeError) as error:
        # CPU allocations that fail raise MemoryError or a RuntimeError naming the bytes; CUDA's say "out of memory".
        print('FAILED ' + json.dumps({'message': f'{type(error).__name__}: {str(error).splitlines()[0]}', 'maxRSS': max_rss_kib()}), flush=True)
        sys.exit(1)
