/**
 * tor/cluster.sh's settings are checked before anything else it does: a bad one stops it with
 * the variable's name and what to do (they go into SQL and into sleep).
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SCRIPT = resolve(import.meta.dirname, '../../tor/cluster.sh');

describe('tor/cluster.sh', () => {
  it.each(['CLUSTER_POLL_SECONDS', 'CLUSTER_LEASE_GRACE_SECONDS', 'CLUSTER_PUBLISH_WAIT_SECONDS'])(
    'refuses %s that is not a whole number of seconds',
    (name) => {
      const run = spawnSync('sh', [SCRIPT, 'backends'], {
        env: { PATH: process.env['PATH'] ?? '', [name]: "30'; DROP TABLE x; --" },
        encoding: 'utf8',
      });
      expect(run.status).toBe(1);
      expect(run.stderr).toContain(`cluster backends: error: ${name} must be a whole number of seconds`);
    },
  );
});

describe('tor/cluster-ops.sh', () => {
  const OPS = resolve(import.meta.dirname, '../../tor/cluster-ops.sh');
  const run = (compose: string, ...args: string[]) =>
    spawnSync('bash', [OPS, ...args], { env: { PATH: process.env['PATH'] ?? '', COMPOSE: compose }, encoding: 'utf8' });

  it('says so when docker compose cannot read the compose file', () => {
    const upgrade = run('false', 'upgrade', '--no-build');
    expect(upgrade.status).toBe(1);
    expect(upgrade.stderr).toContain('cluster upgrade: error: docker compose config failed');
  });

  it('refuses a backend the compose file does not have, naming what to give instead', () => {
    // A stand-in for `docker compose`: `config --services` lists one backend.
    const drain = run('printf backend1-tor\\nbackend1-registry\\n', 'drain', 'backend9');
    expect(drain.status).toBe(1);
    expect(drain.stderr).toContain(
      "no service backend9-tor in this compose file: give a backend's name (backend1) or its onion address",
    );
  });
});
