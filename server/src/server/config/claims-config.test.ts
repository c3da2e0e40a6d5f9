import { describe, expect, it } from 'vitest';
import { RegistryError } from '../../protocol/errors.js';
import { buildConfig } from './config.js';

const minimal = {
  Host: { HOST: '127.0.0.1', PORT: '5000' },
  HiddenService: { HiddenServiceDir: '/hs', HiddenServicePort: '80' },
};

function errorOf(run: () => unknown): RegistryError {
  try {
    run();
  } catch (err) {
    if (err instanceof RegistryError) return err;
    throw err;
  }
  throw new Error('expected CONFIG_INVALID');
}

describe('claims configuration', () => {
  it('defaults to ./data/registry.db, 30 claim days, claims after 600 seconds, and no required proof', () => {
    expect(buildConfig(minimal, {}).claims).toEqual({
      database: './data/registry.db',
      passwordFile: null,
      leaseSeconds: 15,
      claimDays: 30,
      claimAfterSeconds: 600,
      requireAddressProof: false,
    });
  });

  it('reads [Store] Database, [Claims] ClaimDays and ClaimAfterSeconds, and [Registry] RequireAddressProof', () => {
    const config = buildConfig(
      {
        ...minimal,
        Store: { Database: '/var/lib/p2p-registry/registry.db' },
        Claims: { ClaimDays: '7', ClaimAfterSeconds: '0' },
        Registry: { RequireAddressProof: 'yes' },
      },
      {},
    );
    expect(config.claims).toEqual({
      database: '/var/lib/p2p-registry/registry.db',
      passwordFile: null,
      leaseSeconds: 15,
      claimDays: 7,
      claimAfterSeconds: 0,
      requireAddressProof: true,
    });
  });

  it('takes RequireAddressProof as the ini parser gives it (true and false become booleans)', () => {
    expect(buildConfig({ ...minimal, Registry: { RequireAddressProof: true } }, {}).claims.requireAddressProof).toBe(
      true,
    );
    expect(buildConfig({ ...minimal, Registry: { RequireAddressProof: false } }, {}).claims.requireAddressProof).toBe(
      false,
    );
  });

  it('lets the environment override every one of them', () => {
    const config = buildConfig(minimal, {
      REGISTRY_STORE_DATABASE: '/data/r.db',
      REGISTRY_CLAIMS_CLAIMDAYS: '90',
      REGISTRY_CLAIMS_CLAIMAFTERSECONDS: '60',
      REGISTRY_REGISTRY_REQUIREADDRESSPROOF: 'TRUE',
    });
    expect(config.claims).toEqual({
      database: '/data/r.db',
      passwordFile: null,
      leaseSeconds: 15,
      claimDays: 90,
      claimAfterSeconds: 60,
      requireAddressProof: true,
    });
  });

  it("reads a cluster's PostgreSQL URL, its password file and its lease, from the file or the environment", () => {
    const config = buildConfig(
      {
        ...minimal,
        Store: {
          Database: 'postgres://registry@db:5432/registry?sslmode=verify-full',
          PasswordFile: '/run/secrets/db',
          LeaseSeconds: '30',
        },
      },
      {},
    );
    expect(config.claims).toMatchObject({
      database: 'postgres://registry@db:5432/registry?sslmode=verify-full',
      passwordFile: '/run/secrets/db',
      leaseSeconds: 30,
    });
    const fromEnv = buildConfig(minimal, {
      REGISTRY_STORE_DATABASE: 'postgresql://r@/reg?host=/run/postgresql',
      REGISTRY_STORE_PASSWORDFILE: '/pw',
      REGISTRY_STORE_LEASESECONDS: '5',
    });
    expect(fromEnv.claims).toMatchObject({
      database: 'postgresql://r@/reg?host=/run/postgresql',
      passwordFile: '/pw',
      leaseSeconds: 5,
    });
  });

  it('refuses a password file beside a SQLite file, and a lease out of range, saying what to do', () => {
    const err = errorOf(() =>
      buildConfig(
        { ...minimal, Store: { Database: './data/registry.db', PasswordFile: '/pw', LeaseSeconds: '1' } },
        {},
      ),
    );
    expect(err.invalid).toEqual([
      '[Store] PasswordFile is the password of a PostgreSQL database: set [Store] Database to a postgres:// URL, or ' +
        'delete the line',
      '[Store] LeaseSeconds must be between 2 and 600, got 1',
    ]);
  });

  it('reports every wrong value at once, and a misspelt key with the nearest name', () => {
    const err = errorOf(() =>
      buildConfig(
        {
          ...minimal,
          Store: { Database: ':memory:' },
          Claims: { ClaimDays: '0', ClaimAfterSeconds: '-1', ClaimDay: '3' },
          Registry: { RequireAddressProof: 'maybe' },
        },
        {},
      ),
    );
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.invalid).toEqual(
      expect.arrayContaining([
        expect.stringContaining('[Store] Database must be a file path'),
        '[Claims] ClaimDays must be between 1 and 3650, got 0',
        '[Claims] ClaimAfterSeconds must be between 0 and 2592000, got -1',
        '[Registry] RequireAddressProof must be true or false, got "maybe"',
        expect.stringContaining('unknown key [Claims] ClaimDay: did you mean ClaimDays?'),
      ]),
    );
  });
});
