/**
 * Child processes of the bench and what /proc says about them. Every child runs under coreutils
 * `timeout` (so it cannot outlive the run even if the bench itself is killed with SIGKILL), with a
 * raised fd limit, pinned to one CPU with `taskset` when available.
 */
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const children = new Set();

function hasCommand(name) {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const CAN_PIN = hasCommand('taskset');
export const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * Starts `node <nodeArgs> <script> <args>` as a child; with `command` (another program, such as
 * pgbench), `<command> <args>` instead.
 * @returns {{ proc, pid: Promise<number>, exited: Promise<number|null>, lines: string[] }}
 *   `pid` resolves to the node process (or the command) itself (not the sh/timeout wrappers).
 */
export function spawnNode({
  script,
  args = [],
  nodeArgs = [],
  env = {},
  cpu,
  nofile,
  lifetimeSeconds,
  ipc = false,
  name,
  command,
}) {
  const pin = CAN_PIN && cpu !== undefined ? `taskset -c ${cpu} ` : '';
  const shell =
    `ulimit -n ${nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; ` +
    `exec timeout --kill-after=5 ${lifetimeSeconds} ${pin}"$0" "$@"`;
  const argv = command === undefined ? [process.execPath, ...nodeArgs, script, ...args] : [command, ...args];
  const proc = spawn('sh', ['-c', shell, ...argv], {
    stdio: ['ignore', 'pipe', 'pipe', ...(ipc ? ['ipc'] : [])],
    env: { ...process.env, ...env },
  });
  const lines = [];
  const keep = (chunk) => {
    for (const line of chunk.toString().split('\n')) {
      if (line.trim() === '') continue;
      lines.push(line);
      if (lines.length > 200) lines.shift();
    }
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal)));
  const entry = { proc, name, nodePid: null };
  children.add(entry);
  exited.then(() => children.delete(entry));
  const pid = (async () => {
    // sh execs timeout, which forks the (taskset-exec'd) node: the node pid is timeout's only child.
    for (let i = 0; i < 200; i += 1) {
      try {
        const kids = readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, 'utf8')
          .trim()
          .split(/\s+/)
          .filter(Boolean);
        if (kids.length > 0) {
          const candidate = Number(kids[0]);
          const comm = readFileSync(`/proc/${candidate}/comm`, 'utf8').trim();
          if (command !== undefined || comm.startsWith('node') || comm === 'MainThread') {
            entry.nodePid = candidate;
            return candidate;
          }
        }
      } catch {
        // not there yet
      }
      await sleep(10);
    }
    throw new Error(`${name}: could not find the node process under pid ${proc.pid}`);
  })();
  return { proc, pid, exited, lines, entry };
}

/** SIGTERM, then SIGKILL after `graceMs`, for one child; resolves when it has exited. */
export async function stopChild(child, graceMs = 5_000) {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  const pids = [child.entry.nodePid, child.proc.pid].filter((p) => p !== null);
  try {
    process.kill(child.proc.pid, 'SIGTERM'); // timeout forwards it to node
  } catch {
    // gone already
  }
  const timer = setTimeout(() => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }, graceMs);
  await child.exited;
  clearTimeout(timer);
}

/** Last resort on exit or error: SIGKILL every child we started (and the node under each wrapper). */
export function killAllChildren() {
  for (const entry of children) {
    for (const pid of [entry.nodePid, entry.proc.pid]) {
      if (pid === null || pid === undefined) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
  children.clear();
}

/** utime + stime of a process (all its threads), in seconds. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  if (match === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** Busy and total CPU seconds of the whole machine, from /proc/stat. */
export function machineCpu() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  const total = values.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / CLOCK_TICKS, total: total / CLOCK_TICKS };
}

/** The fd limit a process really got. */
export function openFilesLimit(pid) {
  const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
  const match = /Max open files\s+(\d+|unlimited)/.exec(limits);
  return match === null ? NaN : match[1] === 'unlimited' ? Infinity : Number(match[1]);
}
