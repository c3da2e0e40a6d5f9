/** What `moderation list` and `audit` print: a line per decision or action, or JSON. */
import type { AuditEntry, Decisions } from '../store/moderation/moderation-store.js';
import type { StoreIo } from './store-commands.js';

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

function quoted(label: string, value: string | null): string {
  return value === null ? '' : `  ${label} ${JSON.stringify(value)}`;
}

export function printDecisions(decisions: Decisions, json: boolean, io: StoreIo): number {
  const blocks = decisions.blocks.map((b) => ({
    type: 'block',
    kind: b.kind,
    target: b.target,
    label: b.label,
    reason: b.reason,
    note: b.note,
    by: b.by,
    at: iso(b.createdAt),
    until: iso(b.expiresAt),
  }));
  const reservations = decisions.reservations.map((r) => ({
    type: 'reservation',
    pattern: r.pattern,
    forKeyId: r.forKeyId,
    forLabel: r.forLabel,
    reason: r.reason,
    note: r.note,
    by: r.by,
    at: iso(r.createdAt),
    until: iso(r.expiresAt),
  }));
  if (json) {
    io.stdout.write(`${JSON.stringify({ blocks, reservations })}\n`);
    return 0;
  }
  for (const b of blocks) {
    const label = b.label === null ? '' : ` (${b.label})`;
    io.stdout.write(
      `block ${b.kind} ${b.target}${label}  by ${b.by} at ${b.at}  until ` +
        `${b.until ?? 'lifted'}${quoted('reason', b.reason)}${quoted('note', b.note)}\n`,
    );
  }
  for (const r of reservations) {
    const forKey = r.forKeyId === null ? '' : ` for key ${r.forKeyId}${r.forLabel === null ? '' : ` (${r.forLabel})`}`;
    io.stdout.write(
      `reserve ${r.pattern}${forKey}  by ${r.by} at ${r.at}  until ` +
        `${r.until ?? 'lifted'}${quoted('reason', r.reason)}${quoted('note', r.note)}\n`,
    );
  }
  if (blocks.length + reservations.length === 0) io.stderr.write('no blocks or reservations in force\n');
  return 0;
}

export function printAudit(entries: readonly AuditEntry[], json: boolean, io: StoreIo): number {
  for (const entry of entries) {
    const line = { ...entry, at: iso(entry.at) };
    if (json) io.stdout.write(`${JSON.stringify(line)}\n`);
    else
      io.stdout.write(
        `${line.at}  ${entry.actor}  ${entry.action} ` +
          `${entry.target}${quoted('reason', entry.reason)}${quoted('note', entry.note)}` +
          `${entry.detail === null ? '' : `  (${entry.detail})`}\n`,
      );
  }
  if (entries.length === 0 && !json) io.stderr.write('no operator actions recorded\n');
  return 0;
}
