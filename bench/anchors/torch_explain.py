#!/usr/bin/env python3
"""The PyTorch anchor of bench/engines.ts: the same work as one of its rows,
written by hand in plain PyTorch on torchvision's networks (random weights,
4 classes, 224x224), so that salgrid's engines are timed against PyTorch
in the same run on the same machine.

This is NOT pytorch-grad-cam or Captum (neither is installable here): it is a
straightforward hand-written PyTorch equivalent of each method, in the
standard formulation those libraries use:

  forward               model(x) under no_grad, batch 8
  gradcam               forward hook on the target layer + a hook on its output's
                        gradient, one backward pass of the target logits; channel
                        weights = spatial mean of the gradients, ReLU, bilinear
                        upsampling, min-max
  integrated-gradients  Gauss-Legendre steps (Captum's default quadrature) from a
                        zero baseline, interpolated inputs in batches of
                        --internal-batch, one backward pass per batch
  scorecam              activations at the target layer; each channel upsampled
                        (align-corners bilinear), min-max scaled and multiplied
                        into the image; masked inputs scored in batches of
                        --batch-size (16, pytorch-grad-cam's default); softmax over
                        channels as weights
  occlusion             15x15 windows, stride 9, zero baseline, windows scored in
                        batches of --batch-size; mean drop of the target logit
  confidence-change     pytorch-grad-cam's CamMultImageConfidenceChange: softmax
                        score of the predicted class on x and on x * m,
                        m = relu(map) / max(map)
  deletion              salgrid's deletion metric (Xplique's): pixels ranked by
                        decreasing map value, 10 steps (11 points) from x to a
                        zero baseline, inputs forwarded in chunks of 64 (5 images'
                        curves at a time), trapezoid AUC

It is an anchor for the bench, not a test dependency. It prints one line
`RESULT {json}` with the milliseconds per image.

Usage: python3 bench/anchors/torch_explain.py --net mobilenet-v2 --work gradcam
       [--images N] [--batch B] [--threads 2] [--sample K] [--repeat-below-ms 10000]
"""
import argparse
import json
import math
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

SIZE = 224
CLASSES = 4
WORKS = ['forward', 'gradcam', 'integrated-gradients', 'scorecam', 'occlusion', 'confidence-change', 'deletion']


def build(net):
    """torchvision's network with seeded random weights and its CAM target layer (pytorch-grad-cam's usual choice)."""
    torch.manual_seed(2026)
    models = torchvision.models
    if net == 'mobilenet-v2':
        model = models.mobilenet_v2(num_classes=CLASSES)
        layer = model.features[18]
    elif net == 'resnet101':
        model = models.resnet101(num_classes=CLASSES)
        layer = model.layer4
    elif net == 'densenet201':
        model = models.densenet201(num_classes=CLASSES)
        layer = model.features.norm5
    elif net == 'googlenet':
        model = models.googlenet(num_classes=CLASSES, aux_logits=False, init_weights=True, transform_input=False)
        layer = model.inception5b
    else:
        raise SystemExit(f'unknown net {net}')
    return model.eval(), layer


def min_max(maps):
    """Per image min-max scaling of [n, h, w] maps."""
    flat = maps.reshape(maps.shape[0], -1)
    low = flat.min(1, keepdim=True)[0]
    high = flat.max(1, keepdim=True)[0]
    return ((flat - low) / (high - low + 1e-7)).reshape(maps.shape)


def target_logits(logits, targets):
    return logits.gather(1, targets[:, None])[:, 0]


class Sampler:
    """Runs only the first `limit` batches of a long loop (0: all) and extrapolates the rest from their mean time."""

    def __init__(self, total, limit):
        self.total = total
        self.limit = total if limit <= 0 else min(limit, total)
        self.times = []

    def batches(self):
        return range(self.limit)

    def record(self, ms):
        self.times.append(ms)

    def extra_ms(self):
        """Time the skipped batches would have taken (the first batch left out of the mean when there are 3 or more)."""
        if self.limit >= self.total:
            return 0.0
        timed = self.times[1:] if len(self.times) >= 3 else self.times
        return (self.total - self.limit) * statistics.mean(timed)

    def note(self):
        return None if self.limit >= self.total else f'{self.limit} of {self.total} batches timed, the rest extrapolated'


def gradcam(model, layer, x, _args):
    store = {}

    def keep(_module, _inputs, output):
        store['activations'] = output
        output.register_hook(lambda grad: store.__setitem__('gradients', grad))

    handle = layer.register_forward_hook(keep)
    try:
        # The weights are constants, so the input carries requires_grad (as pytorch-grad-cam sets it) for the layer's output to have a gradient.
        logits = model(x.detach().requires_grad_(True))
        targets = logits.argmax(1)
        model.zero_grad(set_to_none=True)
        target_logits(logits, targets).sum().backward()
    finally:
        handle.remove()
    with torch.no_grad():
        weights = store['gradients'].mean((2, 3), keepdim=True)
        cam = F.relu((weights * store['activations']).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=x.shape[-2:], mode='bilinear', align_corners=False)[:, 0]
        return min_max(cam), None


def gauss_legendre(steps):
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return [0.5 * (1 + a) for a in nodes], [0.5 * w for w in weights]


def integrated_gradients(model, _layer, x, args):
    with torch.no_grad():
        targets = model(x).argmax(1)
    alphas, weights = gauss_legendre(args.steps)
    baseline = torch.zeros_like(x)
    n = x.shape[0]
    total = torch.zeros_like(x)
    rows = [(k, i) for k in range(len(alphas)) for i in range(n)]  # step-major, as Captum
    for start in range(0, len(rows), args.internal_batch):
        chunk = rows[start:start + args.internal_batch]
        alpha = torch.tensor([float(alphas[k]) for k, _ in chunk], dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)
        images = torch.tensor([i for _, i in chunk], device=x.device)
        scaled = (baseline[images] + alpha * (x[images] - baseline[images])).requires_grad_(True)
        score = target_logits(model(scaled), targets[images]).sum()
        (grad,) = torch.autograd.grad(score, scaled)
        with torch.no_grad():
            w = torch.tensor([float(weights[k]) for k, _ in chunk], dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)
            total.index_add_(0, images, grad * w)
    return (x - baseline) * total, None


def scorecam(model, layer, x, args):
    store = {}
    handle = layer.register_forward_hook(lambda _m, _i, output: store.__setitem__('activations', output))
    with torch.no_grad():
        try:
            targets = model(x).argmax(1)
        finally:
            handle.remove()
        activations = store['activations']
        n, channels = activations.shape[:2]
        upsampled = F.interpolate(activations, size=x.shape[-2:], mode='bilinear', align_corners=True)
        flat = upsampled.reshape(n, channels, -1)
        low = flat.min(2)[0][:, :, None, None]
        high = flat.max(2)[0][:, :, None, None]
        masks = (upsampled - low) / (high - low + 1e-8)
        scores = torch.zeros(n, channels, device=x.device)
        batches = math.ceil(channels / args.batch_size)
        sampler = Sampler(batches * n, args.sample)
        done = 0
        for i in range(n):
            for b in range(batches):
                if done >= sampler.limit:
                    break
                started = time.perf_counter()
                c = slice(b * args.batch_size, min(channels, (b + 1) * args.batch_size))
                masked = x[i][None] * masks[i, c][:, None]
                scores[i, c] = model(masked)[:, targets[i]]
                sampler.record((time.perf_counter() - started) * 1000)
                done += 1
        weights = torch.softmax(scores, 1)[:, :, None, None]
        cam = F.relu((weights * activations).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=x.shape[-2:], mode='bilinear', align_corners=False)[:, 0]
        return min_max(cam), sampler


def occlusion(model, _layer, x, args):
    window, stride = args.window, args.stride
    n, _, h, w = x.shape
    starts = lambda size: [k * stride for k in range(math.ceil((size - window) / stride) + 1)]
    positions = [(r, c) for r in starts(h) for c in starts(w)]
    batches = math.ceil(len(positions) / args.batch_size)
    sampler = Sampler(batches * n, args.sample)
    done = 0
    with torch.no_grad():
        logits = model(x)
        targets = logits.argmax(1)
        before = target_logits(logits, targets)
        sums = torch.zeros(n, 1, h, w, device=x.device)
        counts = torch.zeros(1, 1, h, w, device=x.device)
        for r, c in positions:
            counts[..., r:r + window, c:c + window] += 1
        for i in range(n):
            for b in range(batches):
                if done >= sampler.limit:
                    break
                started = time.perf_counter()
                chunk = positions[b * args.batch_size:(b + 1) * args.batch_size]
                occluded = x[i][None].repeat(len(chunk), 1, 1, 1)
                for k, (r, c) in enumerate(chunk):
                    occluded[k, :, r:r + window, c:c + window] = 0  # the zero baseline
                drops = before[i] - model(occluded)[:, targets[i]]
                for k, (r, c) in enumerate(chunk):
                    sums[i, :, r:r + window, c:c + window] += drops[k]
                sampler.record((time.perf_counter() - started) * 1000)
                done += 1
        return (sums / counts)[:, 0], sampler


def unit_maps(maps):
    return F.relu(maps) / maps.reshape(maps.shape[0], -1).max(1)[0][:, None, None]


def confidence_change(model, _layer, x, _args, maps):
    with torch.no_grad():
        probabilities = torch.softmax(model(x), 1)
        predicted = probabilities.argmax(1)
        before = target_logits(probabilities, predicted)
        after = target_logits(torch.softmax(model(x * unit_maps(maps)[:, None]), 1), predicted)
        return after - before, None


def deletion(model, _layer, x, _args, maps, steps=10, chunk=64):
    n, _, h, w = x.shape
    pixels = h * w
    counts = [pixels if i == steps else math.trunc(i * pixels / steps) for i in range(steps + 1)]
    group = max(1, chunk // len(counts))
    with torch.no_grad():
        predicted = model(x).argmax(1)
        aucs = []
        for start in range(0, n, group):
            images = range(start, min(n, start + group))
            perturbed = []
            for i in images:
                order = torch.argsort(-maps[i].reshape(-1), stable=True)
                ranks = torch.empty(pixels, device=x.device)
                ranks[order] = torch.arange(pixels, dtype=torch.float32, device=x.device)
                ranks = ranks.reshape(1, 1, h, w)
                kept = (ranks >= torch.tensor(counts, dtype=torch.float32, device=x.device).view(-1, 1, 1, 1)).float()
                perturbed.append(x[i][None] * kept)  # removed pixels go to the zero baseline
            scores = torch.softmax(model(torch.cat(perturbed)), 1)
            for k, i in enumerate(images):
                curve = scores[k * len(counts):(k + 1) * len(counts), predicted[i]]
                aucs.append(((curve[1:] + curve[:-1]) / 2).mean())
        return torch.stack(aucs), None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--net', required=True)
    parser.add_argument('--work', required=True, choices=WORKS)
    parser.add_argument('--images', type=int, default=1)
    parser.add_argument('--batch', type=int, default=8, help='forward: batch size')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--steps', type=int, default=50)
    parser.add_argument('--internal-batch', type=int, default=16)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--window', type=int, default=15)
    parser.add_argument('--stride', type=int, default=9)
    parser.add_argument('--sample', type=int, default=0, help='scorecam/occlusion: time only this many batches and extrapolate (0: all)')
    parser.add_argument('--repeat-below-ms', type=float, default=10_000)
    parser.add_argument('--device', default='cpu', help='cpu, or cuda on a GPU machine')
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, layer = build(args.net)
    model.to(device)
    for p in model.parameters():
        p.requires_grad_(False)  # constant weights, as salgrid's engines: no weight gradient
    generator = torch.Generator().manual_seed(7)
    images = args.batch if args.work == 'forward' else args.images
    x = torch.randn(images, 3, SIZE, SIZE, generator=generator).to(device)
    maps = torch.rand(images, SIZE, SIZE, generator=generator).to(device)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)

    def call():
        """One timed call: its wall time in ms (extrapolated where sampled) and the sampler's note."""
        started = time.perf_counter()
        if args.work == 'forward':
            with torch.no_grad():
                model(x)
            sampler = None
        elif args.work in ('confidence-change', 'deletion'):
            _, sampler = (confidence_change if args.work == 'confidence-change' else deletion)(model, layer, x, args, maps)
        else:
            method = {'gradcam': gradcam, 'integrated-gradients': integrated_gradients, 'scorecam': scorecam, 'occlusion': occlusion}[args.work]
            _, sampler = method(model, layer, x, args)
        sync()
        elapsed = (time.perf_counter() - started) * 1000
        return elapsed + (sampler.extra_ms() if sampler else 0), (sampler.note() if sampler else None)

    first, note = call()
    times = [first]
    if first < args.repeat_below_ms:
        times = [call()[0] for _ in range(3)]
    result = {
        'msPerImage': statistics.median(times) / images,
        'firstMs': first,
        'calls': len(times),
        'images': images,
        'sampled': note,
        'device': f'PyTorch {torch.__version__} (hand-written equivalents, not pytorch-grad-cam/Captum), '
        + (torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU, {torch.get_num_threads()} threads'),
    }
    print('RESULT ' + json.dumps(result), flush=True)


if __name__ == '__main__':
    try:
        main()
    except MemoryError as error:
        print('RESULT ' + json.dumps({'error': f'out of memory: {error}'}), flush=True)
        sys.exit(1)
