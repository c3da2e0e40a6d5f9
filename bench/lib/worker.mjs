/**
 * A load-generator process (bench/load-worker.mjs or a phase's worker) driven over IPC: one
 * command at a time, {id, cmd, args} -> {id, ok, result | error}, with `mark` messages that open
 * and close measurement windows so the orchestrator reads CPU use over exactly those windows.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanestWindow, cpuUse, snapshot } from './measure.mjs';
import { spawnNode, stopChild } from './procs.mjs';

const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');

export class Worker {
  /**
   * Starts `script` (relative to bench/) pinned to `cpu`. `spawn`: { cpu, nofile, lifetimeSeconds, log }.
   */
  static async start(name, script, spawn) {
    const child = spawnNode({
      script: join(BENCH_DIR, script),
      env: { BENCH_WORKER_MAX_MS: String(spawn.lifetimeSeconds * 1000) },
      cpu: spawn.cpu,
      nofile: spawn.nofile,
      lifetimeSeconds: spawn.lifetimeSeconds,
      ipc: true,
      name,
    });
    const worker = new Worker(name, child, spawn.log);
    await worker.ready;
    return worker;
  }

  constructor(name, child, log) {
    this.name = name;
    this.child = child;
    this.log = log;
    this.calls = new Map();
    this.nextId = 1;
    this.onMark = null;
    this.ready = new Promise((resolveReady, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not start: ${child.lines.join('\n')}`)), 10_000);
      child.proc.on('message', (message) => {
        if (message.ready) {
          clearTimeout(timer);
          this.pid = message.pid;
          child.entry.nodePid = message.pid;
          resolveReady();
        } else if (message.mark !== undefined) {
          this.onMark?.(message.mark);
        } else {
          const call = this.calls.get(message.id);
          if (call === undefined) return;
          this.calls.delete(message.id);
          clearTimeout(call.timer);
          if (message.ok) call.resolve(message.result);
          else call.reject(new Error(`${name} ${call.cmd}: ${message.error}`));
        }
      });
      child.exited.then((code) => {
        for (const call of this.calls.values())
          call.reject(new Error(`${name} exited (${code}) during ${call.cmd}: ${child.lines.slice(-5).join('\n')}`));
        this.calls.clear();
      });
    });
  }

  call(cmd, args, timeoutMs) {
    const id = this.nextId++;
    return new Promise((resolveCall, reject) => {
      const timer = setTimeout(() => {
        this.calls.delete(id);
        reject(
          new Error(
            `${this.name} ${cmd} took longer than ${timeoutMs} ms; its last ` +
              `output:\n${this.child.lines.slice(-10).join('\n')}`,
          ),
        );
      }, timeoutMs);
      this.calls.set(id, { resolve: resolveCall, reject, timer, cmd });
      this.child.proc.send({ id, cmd, args });
    });
  }

  /**
   * Runs a command and reads CPU use over each of its measurement windows (`start`/`end` marks).
   * With several windows, `chosen` is the window the table reports (see cleanestWindow) and `cpu`
   * is that window's CPU; `spanCpu` covers all windows.
   */
  async measured(cmd, args, timeoutMs, pids) {
    const marks = [];
    this.onMark = (label) => marks.push({ label, snap: snapshot(pids) });
    const result = await this.call(cmd, args, timeoutMs);
    this.onMark = null;
    if (result.closedEarly > 0)
      this.log(`WARNING: the server closed ${result.closedEarly} of the ${cmd} connections during the measurement`);
    const starts = marks.filter((x) => x.label === 'start');
    const ends = marks.filter((x) => x.label === 'end');
    const windowCpus = starts.map((x, i) => (ends[i] === undefined ? null : cpuUse(x.snap, ends[i].snap)));
    const spanCpu = starts.length > 0 && ends.length > 0 ? cpuUse(starts[0].snap, ends[ends.length - 1].snap) : null;
    if (!Array.isArray(result.windows)) return { result, cpu: spanCpu, spanCpu };
    const chosen = cleanestWindow(result.windows, windowCpus);
    return { result: { ...result, windowCpus }, cpu: chosen.cpu, spanCpu, chosen };
  }

  stop() {
    return stopChild(this.child, 3_000);
  }
}
