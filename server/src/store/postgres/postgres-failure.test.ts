import { describe, expect, it } from 'vitest';
import { describeTarget, environmentFailure, redactConnectionString } from './postgres-failure.js';

describe('PostgreSQL targets in messages', () => {
  it('drops the password of a connection string and keeps the rest', () => {
    expect(redactConnectionString('postgres://registry:s3cret@db.internal:5432/claims?sslmode=require')).toBe(
      'postgres://registry@db.internal:5432/claims?sslmode=require',
    );
    expect(redactConnectionString('postgresql://registry:s3cret@/claims?host=/run/postgresql')).toBe(
      'postgresql://registry@/claims?host=/run/postgresql',
    );
  });

  it('ends the user-info at the last @ before the host, as URL parsing and the driver do', () => {
    expect(redactConnectionString('postgres://reg:s3cr@t@db/registry')).toBe('postgres://reg@db/registry');
    expect(redactConnectionString('postgresql://reg:a@b@c@/registry?host=/run/postgresql')).toBe(
      'postgresql://reg@/registry?host=/run/postgresql',
    );
  });

  it(
    'shows nothing of a URL with an @ past its host part, or a port of letters (a password with an unescaped / ? or ' +
      '#, or no host)',
    () => {
      for (const url of [
        'postgres://reg:Xq7/Zr9@db/registry',
        'postgres://reg:Xq7?Zr9@db/registry',
        'postgres://reg:Xq7#Zr9@db/registry',
        'postgres://reg:7/Zr9@db/registry',
        'postgres://reg:Xq7Zr9/registry',
      ]) {
        const shown = redactConnectionString(url);
        expect(shown).not.toContain('Xq7');
        expect(shown).not.toContain('Zr9');
      }
    },
  );

  it('drops parameters that carry secrets', () => {
    const shown = redactConnectionString(
      'postgres://registry@db/claims?password=s3cret&sslkey=/k.pem&sslpassword=x&application_name=r',
    );
    expect(shown).toBe('postgres://registry@db/claims?application_name=r');
  });

  it('shows nothing of a string that is not a postgres:// URL', () => {
    expect(redactConnectionString('host=db password=s3cret')).not.toContain('s3cret');
  });

  it('describes pool options without a password', () => {
    expect(describeTarget({ host: 'db', port: 5432, user: 'registry', database: 'claims' })).toBe(
      'postgres://registry@db:5432/claims',
    );
    expect(describeTarget({ host: '/run/postgresql', database: 'claims' })).toBe(
      'postgres:///claims?host=/run/postgresql',
    );
  });
});

describe('PostgreSQL failures', () => {
  it(
    'counts an unreachable server, a full disk and a read-only database as the environment, a ' + 'constraint as a bug',
    () => {
      const target = 'postgres://registry@db/claims';
      expect(
        environmentFailure(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), target)?.name,
      ).toBe('ECONNREFUSED');
      expect(
        environmentFailure(Object.assign(new Error('could not extend file'), { code: '53100' }), target)?.fix,
      ).toMatch(/disk space/);
      expect(
        environmentFailure(
          Object.assign(new Error('cannot execute INSERT in a read-only transaction'), { code: '25006' }),
          target,
        )?.fix,
      ).toMatch(/primary/);
      expect(environmentFailure(new Error('Connection terminated unexpectedly'), target)?.name).toBe('CONNECTION');
      expect(environmentFailure(Object.assign(new Error('duplicate key'), { code: '23505' }), target)).toBeUndefined();
    },
  );

  it(
    'counts too many connections (53300) as the environment, with a fix that names max_connections and what a ' +
      'registry instance holds',
    () => {
      const failure = environmentFailure(
        Object.assign(new Error('sorry, too many clients already'), { code: '53300' }),
        'postgres://registry@db/claims',
      );
      expect(failure?.name).toBe('53300');
      expect(failure?.fix).toMatch(/raise max_connections/);
      expect(failure?.fix).toMatch(/a registry instance holds up to 10 connections/);
      expect(failure?.fix).toMatch(/Connection budget/);
    },
  );
});
