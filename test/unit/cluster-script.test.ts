/**
 * tor/cluster.sh's settings are checked before anything else it does: a bad one stops it with
 * the variable's name and what to do (they go into SQL and into sleep).
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SCRIPT = resolve(import.meta.dirname, '../../tor/cluster.sh');

describe('tor/cluster.sh', () => {
  it.each(['CLUSTER_POLL_SECONDS', 'CLUSTER_LEASE_GRACE_SECONDS', 'CLUSTER_PUBLISH_WAIT_SECONDS'])('refuses %s that is not a whole number of seconds', (name) => {
    const run = spawnSync('sh', [SCRIPT, 'backends'], { env: { PATH: process.env['PATH'] ?? '', [name]: "30'; DROP TABLE x; --" }, encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`cluster backends: error: ${name} must be a whole number of seconds`);
  });
});
