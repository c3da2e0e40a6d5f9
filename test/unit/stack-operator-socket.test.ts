/**
 * The Docker stacks give every registry server an operator socket that tor cannot reach: health
 * (uptime, peers, a cluster instance) and metrics must not answer on the onion (SECURITY.md). Read
 * from the compose files themselves, so that an edit that moves the socket into a volume tor
 * mounts fails here, without Docker (test/offline/check-stack.sh checks the running stack). The
 * socket's folder is a tmpfs volume of the server's user alone, which only the monitoring
 * profile's metrics forwarder mounts besides the server, read-only.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildConfig } from '../../server/src/server/config/config.js';

const ROOT = join(import.meta.dirname, '../..');
const SERVER_IMAGE = 'p2p-registry/server:latest';
const TOR_IMAGE = 'p2p-registry/tor:latest';

interface Service {
  readonly image?: string;
  readonly networks?: unknown;
  readonly command?: readonly string[];
  readonly environment?: Record<string, string>;
  readonly volumes?: ReadonlyArray<string | { readonly target: string }>;
  readonly tmpfs?: readonly string[];
  readonly healthcheck?: { readonly test?: readonly string[]; readonly disable?: boolean };
}

interface ComposeFile {
  readonly services: Record<string, Service>;
  readonly volumes: Record<string, { readonly driver_opts?: Record<string, string> } | null>;
}

function composeFile(file: string): ComposeFile {
  return parse(readFileSync(join(ROOT, file), 'utf8'), { merge: true }) as ComposeFile;
}

/** The volume mounted at `target`, with its read-only flag. */
function volumeAt(service: Service, target: string): { name: string; readOnly: boolean } | undefined {
  for (const volume of service.volumes ?? []) {
    if (typeof volume !== 'string') continue;
    const [name, at, mode] = volume.split(':');
    if (at === target) return { name: name as string, readOnly: mode === 'ro' };
  }
  return undefined;
}

/** Where a service's volumes are mounted. */
function mountTargets(service: Service): string[] {
  return (service.volumes ?? []).map((volume) =>
    typeof volume === 'string' ? (volume.split(':')[1] as string) : volume.target,
  );
}

const isServer = (service: Service): boolean => service.image === SERVER_IMAGE && service.command === undefined;

describe.each(['compose.yaml', 'compose.cluster.yaml'])('%s', (file) => {
  const doc = composeFile(file);
  const all = doc.services;
  const servers = Object.entries(all).filter(([, service]) => isServer(service));
  const tors = Object.entries(all).filter(([, service]) => service.image === TOR_IMAGE);

  it('has registry servers and tors to check (the check is not vacuous)', () => {
    expect(servers.length).toBeGreaterThan(0);
    expect(tors.length).toBeGreaterThan(0);
  });

  it.each(servers.map(([name]) => name))(
    '%s: its healthcheck runs `health`, which asks the operator socket of a config the server accepts',
    (name) => {
      const service = all[name] as Service;
      expect(service.healthcheck?.test).toEqual([
        'CMD',
        'node',
        '/app/server/dist/cli.js',
        'health',
        '--config',
        '/etc/p2p-registry/config.ini',
      ]);
      const config = buildConfig({ HiddenService: { HiddenServicePort: '80' } }, service.environment ?? {});
      expect(config.operatorSocket).toBe('/run/registry-operator/operator.sock');
      expect(config.listen).toEqual({ kind: 'unix', path: '/run/registry/registry.sock' });
    },
  );

  it.each(servers.map(([name]) => name))(
    "%s: the operator socket's folder is a tmpfs volume of the server's user alone, mounted by no tor, and by " +
      'nothing else but its metrics forwarder, read-only',
    (name) => {
      const service = all[name] as Service;
      const folder = dirname(service.environment?.REGISTRY_HOST_OPERATORSOCKET as string);
      const mounted = volumeAt(service, folder);
      expect(mounted?.readOnly).toBe(false);
      const volume = mounted?.name as string;
      expect(doc.volumes[volume]?.driver_opts).toEqual({
        type: 'tmpfs',
        device: 'tmpfs',
        o: 'uid=1000,gid=10001,mode=0700,size=1m',
      });
      const others = Object.entries(all).filter(
        ([other, s]) =>
          other !== name && (s.volumes ?? []).some((v) => typeof v === 'string' && v.startsWith(`${volume}:`)),
      );
      expect(others.length).toBeLessThanOrEqual(1);
      for (const [, forwarder] of others) {
        expect(forwarder.image).toBe(SERVER_IMAGE);
        expect(forwarder.command?.[0]).toBe('metrics-forward');
        expect(volumeAt(forwarder, folder)).toEqual({ name: volume, readOnly: true });
        expect(forwarder.networks).toEqual(['monitoring']);
      }
    },
  );

  it.each(tors.map(([name]) => name))(
    '%s: mounts the public socket, and nothing where the operator socket is',
    (name) => {
      const targets = mountTargets(all[name] as Service);
      expect(targets).toContain('/run/registry');
      expect(
        targets.filter((target) => target === '/run/registry-operator' || target === '/run' || target === '/'),
      ).toEqual([]);
    },
  );
});
