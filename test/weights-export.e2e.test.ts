/**
 * `salgrid weights export` through the real CLI: the torchvision goldens'
 * state dicts go in (as .pth with --arch, and as a weights-store entry) and
 * come back out as .pth files holding every key torchvision's model has,
 * in its shapes and with the same values; PyTorch itself loads them with
 * `load_state_dict(strict=True)` and gives the golden logits, where a
 * Python with torch and torchvision is installed (Debian's python3-torch;
 * CI installs it and sets SALGRID_REQUIRE_TORCH=1, which turns the skip into
 * a failure). Mistakes are one line each.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { readStateDict, toFloat32, type StateDict } from '../src/core/io/pytorch-state-dict.ts';
import { ROOT, cliAsync, mistake, ok, tempDir, type CliResult } from './helpers.ts';

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'golden', 'torchvision');
/** ResNet's and GoogLeNet's state dicts (14 and 22 MB) stay in ../shared/golden, which CI always has. */
const SHARED = path.join(ROOT, '..', 'shared', 'golden', 'torchvision');

interface Family {
  folder: string;
  arch: string;
  params: (config: Record<string, unknown>) => string[];
  /** Builds torchvision's model from the golden's config.json (`c`) in Python. */
  torchvision: string;
}

const FAMILIES: Family[] = [
  {
    folder: 'mobilenet_v2',
    arch: 'mobilenet-v2',
    params: (c) => [`widthMult=${c.width_mult}`],
    torchvision: "torchvision.models.mobilenet_v2(width_mult=c['width_mult'], num_classes=c['num_classes'])",
  },
  {
    folder: 'densenet',
    arch: 'densenet',
    params: (c) => [`growthRate=${c.growth_rate}`, `blockConfig=[${(c.block_config as number[]).join(',')}]`, `initFeatures=${c.num_init_features}`],
    torchvision: "torchvision.models.DenseNet(growth_rate=c['growth_rate'], block_config=tuple(c['block_config']), num_init_features=c['num_init_features'], num_classes=c['num_classes'])",
  },
  {
    folder: 'resnet',
    arch: 'resnet',
    params: (c) => [`layers=[${(c.layers as number[]).join(',')}]`, `widthPerGroup=${c.width_per_group}`],
    torchvision: "torchvision.models.resnet.ResNet(torchvision.models.resnet.Bottleneck, c['layers'], num_classes=c['num_classes'], width_per_group=c['width_per_group'])",
  },
  {
    folder: 'googlenet',
    arch: 'googlenet',
    params: (c) => [`transformInput=${c.transform_input}`],
    torchvision: "torchvision.models.googlenet(aux_logits=False, transform_input=c['transform_input'], init_weights=False, num_classes=c['num_classes'])",
  },
];

/** The golden's folder: the test fixtures' copy (config, inputs, logits) and where its state dict is. */
function golden(family: Family): { dir: string; pth: string } | undefined {
  const dir = path.join(FIXTURES, family.folder);
  for (const pth of [path.join(dir, 'state_dict.pth'), path.join(SHARED, family.folder, 'state_dict.pth')]) if (existsSync(pth)) return { dir, pth };
  return undefined;
}

const work = tempDir('salgrid-weights-export-');
const env = { SALGRID_WEIGHTS: path.join(work, 'store') };
const salgrid = (...args: string[]): Promise<CliResult> => cliAsync(args, work, env).done;
const readConfig = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
const exported = (family: Family) => path.join(work, `${family.folder}.pth`);

/** A Python with torch and torchvision, or why there is none. */
function findTorch(): { python: string } | { reason: string } {
  const reasons: string[] = [];
  for (const python of [process.env.SALGRID_TORCH_PYTHON, '/usr/bin/python3', 'python3'].filter((p): p is string => Boolean(p))) {
    const probe = spawnSync(python, ['-c', 'import torch, torchvision'], { encoding: 'utf8', timeout: 120_000 });
    if (probe.status === 0) return { python };
    reasons.push(`${python}: ${probe.error?.message ?? probe.stderr.trim().split('\n').pop()}`);
  }
  return { reason: `no Python with torch and torchvision (${reasons.join('; ')}); on Debian: apt-get install python3-torch python3-torchvision` };
}
const torch = findTorch();
const TORCH_REQUIRED = process.env.SALGRID_REQUIRE_TORCH === '1';

function assertSameState(actual: StateDict, expected: StateDict, what: string): void {
  assert.deepEqual([...actual.names].sort(), [...expected.names].sort(), `${what}: the keys differ from torchvision's`);
  for (const key of expected.names) {
    const a = actual.get(key)!;
    const e = expected.get(key)!;
    assert.deepEqual(a.shape, e.shape, `${what}: ${key} has shape [${a.shape}], torchvision [${e.shape}]`);
    if (key.endsWith('num_batches_tracked')) {
      assert.equal(a.dtype, 'int64', `${what}: ${key} is ${a.dtype}`);
      assert.equal(a.data[0], e.data[0], `${what}: ${key} is ${a.data[0]}, torchvision's ${e.data[0]}`);
      continue;
    }
    assert.equal(a.dtype, 'float32');
    // Permuting a layout back and forth moves values, never changes them.
    assert.deepEqual(toFloat32(a), toFloat32(e), `${what}: ${key} has other values`);
  }
}

describe('salgrid weights export', () => {
  const present = FAMILIES.filter((family) => golden(family) !== undefined);

  before(async () => {
    const runs = present.map((family) => {
      const { pth, dir } = golden(family)!;
      const params = family.params(readConfig(dir)).flatMap((p) => ['--arch-param', p]);
      return salgrid('weights', 'export', pth, exported(family), '--arch', family.arch, ...params, '--input-size', '96', '--backend', 'cpu');
    });
    for (const result of await Promise.all(runs)) ok(result);
  });

  for (const family of FAMILIES) {
    it(`writes ${family.folder}'s weights back as torchvision's state dict: every key, shape and value`, async (t) => {
      const found = golden(family);
      if (!found) return t.skip(`${family.folder}'s state_dict.pth is neither in test/fixtures nor in ../shared/golden`);
      assertSameState(await readStateDict(exported(family)), await readStateDict(found.pth), family.folder);
    });
  }

  it('writes the same bytes for the same weights, from a .pth or from the weights store', async () => {
    const family = FAMILIES[0];
    const { pth, dir } = golden(family)!;
    const params = family.params(readConfig(dir)).flatMap((p) => ['--arch-param', p]);
    ok(await salgrid('weights', 'import', family.arch, pth, ...params, '--input-size', '96', '--as', 'small-mobilenet', '--backend', 'cpu'));
    const again = path.join(work, 'again.pth');
    const result = ok(await salgrid('weights', 'export', 'small-mobilenet', again, '--backend', 'cpu'));
    assert.match(result.stdout, /exported .*small-mobilenet: mobilenet-v2 \(widthMult=0\.5\), 4 classes, 314 tensors \(711,400 values\)/);
    assert.ok(readFileSync(again).equals(readFileSync(exported(family))), 'the two exports differ');
  });

  it('gives files that PyTorch loads with strict=True and that give torchvision’s logits', async (t) => {
    if ('reason' in torch) {
      if (TORCH_REQUIRED) assert.fail(`SALGRID_REQUIRE_TORCH=1, but ${torch.reason}`);
      return t.skip(torch.reason);
    }
    const checked = present.map((family) => ({ folder: family.folder, dir: golden(family)!.dir, pth: exported(family), build: family.torchvision }));
    const script = `
import json, sys, numpy as np, torch, torchvision
worst = {}
for case in json.loads(sys.argv[1]):
    c = json.load(open(case['dir'] + '/config.json'))
    model = eval(case['build'])
    model.load_state_dict(torch.load(case['pth']), strict=True)
    model.eval()
    x = torch.from_numpy(np.load(case['dir'] + '/inputs.npy')).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        logits = model(x).numpy()
    worst[case['folder']] = float(np.abs(logits - np.load(case['dir'] + '/logits.npy')).max())
print(json.dumps(worst))
`;
    const run = spawnSync(torch.python, ['-c', script, JSON.stringify(checked)], { encoding: 'utf8', timeout: 300_000 });
    assert.equal(run.status, 0, `PyTorch could not load the exported state dicts: ${run.stderr.trim().split('\n').slice(-3).join(' ')}`);
    const worst = JSON.parse(run.stdout.trim().split('\n').pop()!) as Record<string, number>;
    assert.deepEqual(Object.keys(worst).sort(), checked.map((c) => c.folder).sort());
    for (const [folder, diff] of Object.entries(worst)) assert.ok(diff <= 1e-4, `${folder}: max |logit − golden| is ${diff} after the round trip through salgrid`);
  });

  it('answers mistakes in one line: another kind of output, a bare tfjs model, a missing model', async () => {
    const family = FAMILIES[0];
    const { pth, dir } = golden(family)!;
    const params = family.params(readConfig(dir)).flatMap((p) => ['--arch-param', p]);
    mistake(await salgrid('weights', 'export', pth, path.join(work, 'x.safetensors'), '--arch', family.arch, ...params), /must end in \.pth, \.pt or \.onnx; got .*x\.safetensors/);
    mistake(await salgrid('weights', 'export', path.join(ROOT, 'test', 'fixtures', 'golden', 'tiny-cnn'), path.join(work, 'tiny.pth')), /is a bare tfjs model \(no model card\), so which torchvision architecture/);
    mistake(await salgrid('weights', 'export', 'no-such-entry', path.join(work, 'none.pth')), /no-such-entry is neither a file or folder here nor a name in the weights store/);
    mistake(await salgrid('weights', 'export', pth, path.join(work, 'missing-folder', 'x.pth'), '--arch', family.arch, ...params), /missing-folder/);
  });
});
