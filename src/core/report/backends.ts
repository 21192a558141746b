/**
 * What ran the tensor tasks whose results a sweep's tables hold: the backend
 * each train, predict and score artifact recorded in its meta.json (task
 * keys do not depend on the backend, so a resumed sweep may mix them; the
 * table says so).
 */
import type { ScoreValue } from '../plugins/types.ts';
import { STAGES, type Stage } from '../plan/stages.ts';
import type { Store } from '../store/store.ts';

export type BackendRow = Record<string, ScoreValue> & { stage: string; backend: string; engine: string; device: string; threads: number | null; tasks: number };

export function backendRows(cells: { stage: Stage; key: string }[], store: Store): BackendRow[] {
  const counted = new Map<string, BackendRow>();
  for (const cell of cells) {
    const backend = store.readMeta(cell.stage, cell.key)?.backend;
    if (!backend) continue; // a cpu task (map-only metrics), or an artifact from before backends were recorded
    const engine = backend.engine ?? (backend.name.startsWith('onnx:') ? 'onnx' : 'tfjs');
    const row: BackendRow = { stage: cell.stage, backend: backend.name, engine, device: backend.device, threads: backend.threads ?? null, tasks: 0 };
    const id = [row.stage, row.backend, row.device, row.threads].join('\0');
    const seen = counted.get(id) ?? row;
    seen.tasks++;
    counted.set(id, seen);
  }
  const order = (stage: string) => STAGES.indexOf(stage as Stage);
  return [...counted.values()].sort((a, b) => order(a.stage) - order(b.stage) || a.backend.localeCompare(b.backend) || a.device.localeCompare(b.device) || (a.threads ?? 0) - (b.threads ?? 0));
}

/** "onnx:cpu on CPU (ONNX Runtime 1.23.2), 2 threads", as the backend line of a run says it. */
export function describeBackendRow(row: Record<string, ScoreValue>): string {
  const threads = typeof row.threads === 'number' ? `, ${row.threads} thread${row.threads === 1 ? '' : 's'}` : '';
  return `${row.backend} on ${row.device}${threads}`;
}
