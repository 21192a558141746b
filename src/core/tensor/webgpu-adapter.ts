/**
 * The WebGPU adapter Dawn (npm `webgpu`) would give, asked in a child process
 * (quiet-probe.ts) so that its warnings about missing drivers stay out of
 * the user's terminal when salgrid merely looks for a GPU.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { firstStderrLine, runQuietProbe } from './quiet-probe.ts';

export type AdapterProbe = { ok: true; name: string; software: boolean } | { ok: false; reason: string };

interface Answer {
  adapter?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean } | null;
  error?: string;
}

const CHILD_SCRIPT = `
const [webgpuUrl] = process.argv.slice(1);
let answer;
try {
  const dawn = await import(webgpuUrl);
  const adapter = await dawn.create([]).requestAdapter({ powerPreference: 'high-performance' });
  const i = adapter ? (adapter.info ?? {}) : null;
  answer = { adapter: i && { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, isFallbackAdapter: i.isFallbackAdapter } };
} catch (error) {
  answer = { error: String(error && error.message ? error.message : error).split('\\n')[0] };
}
process.stdout.write('\\n' + JSON.stringify(answer) + '\\n');
process.exit(0);
`;

export function adapterName(info: NonNullable<Answer['adapter']>): string {
  return info.description || [info.vendor, info.device].filter(Boolean).join(' ') || 'unknown adapter';
}

export function isSoftwareAdapter(info: NonNullable<Answer['adapter']>, name: string): boolean {
  return Boolean(info.isFallbackAdapter) || info.architecture === 'software' || /llvmpipe|lavapipe|swiftshader/i.test(name);
}

export async function probeDawnAdapter(): Promise<AdapterProbe> {
  let url: string;
  try {
    url = pathToFileURL(createRequire(import.meta.url).resolve('webgpu')).href;
  } catch {
    return { ok: false, reason: 'webgpu is not installed' };
  }
  const outcome = await runQuietProbe<Answer>(CHILD_SCRIPT, [url]);
  const answer = outcome.answer;
  if (!answer) return { ok: false, reason: outcome.failure ?? 'the adapter probe gave no answer' };
  if (answer.error) return { ok: false, reason: answer.error };
  if (!answer.adapter) {
    const said = firstStderrLine(outcome.stderr)?.replace(/^Warning:\s*/, '');
    return { ok: false, reason: `no WebGPU adapter (${said ? `Dawn: ${said}` : 'no Vulkan-capable driver found'})` };
  }
  const name = adapterName(answer.adapter);
  return { ok: true, name, software: isSoftwareAdapter(answer.adapter, name) };
}
