/**
 * What a failed `docker compose up` leaves to read: every container's state, start time and
 * health, and for each one that is not healthy (still starting, unhealthy, or a one-shot that
 * failed) its last health checks and the tail of its log. A startup failure of the e2e stacks is a
 * defect with a cause; this is what the cause is found from. testcontainers removes the project
 * as soon as its `up` fails, so `watchComposeStartup` takes these snapshots while `up` runs.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { DockerComposeEnvironment, StartedDockerComposeEnvironment } from 'testcontainers';

const exec = promisify(execFile);

async function docker(args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await exec('docker', args, { maxBuffer: 16 * 1024 * 1024, timeout: 30_000 });
    return `${stdout}${stderr}`.trim();
  } catch (err) {
    return `(docker ${args.slice(0, 2).join(' ')} failed: ${(err as Error).message})`;
  }
}

interface ContainerState {
  readonly name: string;
  readonly status: string;
  readonly exitCode: number;
  readonly startedAt: string;
  readonly health: string | null;
  readonly checks: ReadonlyArray<{ readonly ExitCode: number; readonly Output: string; readonly Start: string }>;
}

async function stateOf(name: string): Promise<ContainerState | null> {
  const raw = await docker(['inspect', '--format', '{{json .State}}', name]);
  try {
    const state = JSON.parse(raw) as {
      Status: string;
      ExitCode: number;
      StartedAt: string;
      Health?: { Status: string; Log?: ContainerState['checks'] };
    };
    return {
      name,
      status: state.Status,
      exitCode: state.ExitCode,
      startedAt: state.StartedAt,
      health: state.Health?.Status ?? null,
      checks: state.Health?.Log ?? [],
    };
  } catch {
    return null;
  }
}

/** One text block: a line per container, then the details of those that are not well. */
export async function composeDiagnostics(project: string, logLines = 40): Promise<string> {
  const names = (
    await docker(['ps', '-a', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.Names}}'])
  )
    .split('\n')
    .filter((name) => name.startsWith(project))
    .sort();
  const states = (await Promise.all(names.map(stateOf))).filter((s): s is ContainerState => s !== null);
  const lines = [`compose project ${project} at ${new Date().toISOString()}: ${states.length} containers`];
  for (const s of states)
    lines.push(`  ${s.name}: ${s.status} (exit ${s.exitCode}) started ${s.startedAt} health ${s.health ?? '-'}`);
  const unwell = states.filter(
    (s) =>
      (s.health !== null && s.health !== 'healthy' && s.status === 'running') ||
      (s.status === 'exited' && s.exitCode !== 0),
  );
  for (const s of unwell) {
    lines.push(`--- ${s.name}: last health checks`);
    for (const check of s.checks.slice(-3))
      lines.push(`  ${check.Start} exit ${check.ExitCode}: ${check.Output.trim().slice(0, 300)}`);
    lines.push(`--- ${s.name}: last ${logLines} log lines`);
    lines.push(await docker(['logs', '--timestamps', '--tail', String(logLines), s.name]));
  }
  return lines.join('\n');
}

export interface ComposeStartupWatch {
  /** A snapshot now, or, when the project is gone already, the last one taken while it existed. */
  report(): Promise<string>;
  stop(): void;
}

/** Snapshots of `composeDiagnostics` every `everyMs` while a stack starts (one at a time). */
export function watchComposeStartup(project: string, everyMs = 10_000): ComposeStartupWatch {
  let last: string | null = null;
  let busy = false;
  const timer = setInterval(async () => {
    if (busy) return;
    busy = true;
    const text = await composeDiagnostics(project);
    if (!text.includes(': 0 containers')) last = text;
    busy = false;
  }, everyMs).unref();
  return {
    async report() {
      const now = await composeDiagnostics(project);
      if (!now.includes(': 0 containers') || last === null) return now;
      const heading = '(testcontainers removed the project after the failed up; the last snapshot before that:)';
      return `${now}\n${heading}\n${last}`;
    },
    stop: () => clearInterval(timer),
  };
}

/** `env.up()`, printing the last startup snapshot when it fails (see watchComposeStartup). */
export async function upWithDiagnostics(
  env: DockerComposeEnvironment,
  project: string,
): Promise<StartedDockerComposeEnvironment> {
  const watch = watchComposeStartup(project);
  try {
    return await env.up();
  } catch (err) {
    console.error(await watch.report());
    throw err;
  } finally {
    watch.stop();
  }
}
