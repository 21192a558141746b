// Which WebGPU adapter does Dawn (npm `webgpu`) give this process? Run by
// gpu-bench/run.sh before the bench, with the same environment (WEBGPU_FLAGS,
// VK_DRIVER_FILES, LD_LIBRARY_PATH). Prints one line; exit code 0: a hardware
// adapter (or a software one with --allow-software), 3: only a software
// adapter, 2: none or Dawn failed.
import { create } from 'webgpu';

const allowSoftware = process.argv.includes('--allow-software');
const flags = (process.env.WEBGPU_FLAGS ?? '').split(',').filter(Boolean);
try {
  const adapter = await create(flags).requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    console.log(`adapter (${flags.join(',') || 'default flags'}): none`);
    process.exit(2);
  }
  const info = adapter.info ?? {};
  const name = info.description || [info.vendor, info.device].filter(Boolean).join(' ');
  const software = Boolean(adapter.isFallbackAdapter ?? info.isFallbackAdapter) || info.architecture === 'software' || /llvmpipe|lavapipe|swiftshader/i.test(`${name} ${info.device}`);
  const { vendor, architecture, device, description } = info;
  console.log(`adapter (${flags.join(',') || 'default flags'}): ${JSON.stringify({ vendor, architecture, device, description, software })}`);
  if (software && !allowSoftware) {
    console.log('  a software adapter: refused (pass --allow-software to run on it anyway; it is for tests, not for figures)');
    process.exit(3);
  }
  process.exit(0);
} catch (error) {
  console.log(`adapter (${flags.join(',') || 'default flags'}): Dawn failed: ${String(error?.message ?? error).split('\n').join(' | ')}`);
  process.exit(2);
}
