import { request } from 'node:http';
import type { Listen } from '../server/config.js';

export interface HealthResult {
  readonly status: number;
  readonly body: string;
}

/** GET /healthz over the configured listener (TCP or unix socket). */
export function fetchHealth(listen: Listen, timeoutMs = 3_000): Promise<HealthResult> {
  return new Promise((resolve, reject) => {
    const target =
      listen.kind === 'unix'
        ? { socketPath: listen.path }
        : { host: listen.host === '0.0.0.0' || listen.host === '::' ? '127.0.0.1' : listen.host, port: listen.port };
    const req = request({ ...target, path: '/healthz', method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
