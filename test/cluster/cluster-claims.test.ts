/**
 * Claims in a cluster (PROTOCOL.md "Claims", "Durability"): a registration the shared presence
 * refuses after the claim store was written changes nothing, in the claims either.
 */
import { describe, expect, it } from 'vitest';
import { clusterTestScope, freshDatabase, sql, startInstance } from '../support/cluster.js';
import { ed25519Identity, type TestServer } from '../support/registry-harness.js';
import { waitUntil } from '../support/wait.js';

const { instances, connect } = clusterTestScope();

async function instanceIdOf(server: TestServer): Promise<string> {
  const health = (await server.health()).body as { cluster: { instance: string } };
  return health.cluster.instance;
}

describe('claims in a cluster', () => {
  it(
    "keep the key's claim where it was when the presence refuses the registration that moved it (UNAVAILABLE, " +
      'ClaimAfterSeconds 0)',
    async () => {
      const database = await freshDatabase('refused');
      const a = await startInstance(database, { claims: { ClaimAfterSeconds: 0 } });
      instances.push(a);
      const id = ed25519Identity();
      const first = await connect(a.url);
      expect(await first.register(id, 'alice')).toMatchObject({
        type: 'registered',
        claim: { until: expect.any(String) },
      });
      first.close();
      await waitUntil('alice to leave', async () => (await sql(database, 'SELECT 1 FROM presence')).rowCount === 0);
      // The instance loses its lease and cannot take it again: the presence refuses its registrations.
      const instance = await instanceIdOf(a);
      await sql(
        database,
        `ALTER TABLE registry_instances ADD CONSTRAINT lease_lost CHECK (id <> '${instance}') NOT VALID`,
      );
      await sql(database, 'DELETE FROM registry_instances WHERE id = $1', [instance]);
      const again = await connect(a.url);
      expect(await again.register(id, 'alice2', 5050, ed25519Identity().address)).toMatchObject({
        type: 'error',
        code: 'UNAVAILABLE',
      });
      expect((await sql(database, 'SELECT nickname, address FROM claims')).rows).toEqual([
        { nickname: 'alice', address: id.address },
      ]);
      await sql(database, 'ALTER TABLE registry_instances DROP CONSTRAINT lease_lost');
    },
  );
});
