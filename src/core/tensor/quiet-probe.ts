/**
 * Asking a GPU stack whether it works, in a child process whose stderr is
 * kept: Dawn and ONNX Runtime's provider loader write warnings with C++
 * source locations straight to file descriptor 2 when a device is missing,
 * which Node cannot silence in its own process. The child prints one JSON
 * line; what it wrote to stderr is handed back for a message when the user
 * asked for that device by name.
 */
import { spawn } from 'node:child_process';

export interface ProbeOutcome<T> {
  /** The child's JSON answer, or undefined when it gave none. */
  answer?: T;
  /** What the child wrote to stderr, ANSI colours removed. */
  stderr: string;
  /** Why there is no answer (a crash, a timeout). */
  failure?: string;
}

// Kept short: the child only loads one native library and builds one tiny session.
const DEFAULT_TIMEOUT_MS = 60_000;

/** Runs `script` (an ES module's text; `process.argv.slice(1)` are `args`) and parses the last line it prints. */
export function runQuietProbe<T>(script: string, args: string[], timeoutMs = DEFAULT_TIMEOUT_MS): Promise<ProbeOutcome<T>> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ stderr, failure: error.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const clean = stripAnsi(stderr);
      const last = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve({ answer: JSON.parse(last) as T, stderr: clean });
      } catch {
        const how = signal === 'SIGKILL' ? `did not answer within ${timeoutMs / 1000} s` : signal ? `was killed by ${signal}` : `exited with code ${code}`;
        resolve({ stderr: clean, failure: `the probe ${how}` });
      }
    });
  });
}

export function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m/g, '');
}

/** The first line of a native library's stderr worth quoting: its message, without the C++ location lines. */
export function firstStderrLine(stderr: string): string | undefined {
  const line = stderr
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('at '));
  return line?.slice(0, 300);
}
