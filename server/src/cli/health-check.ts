import { request } from 'node:http';

export interface HealthResult {
  readonly status: number;
  readonly body: string;
}

/** GET /healthz on the operator listener's unix socket ([Host] OperatorSocket). */
export function fetchHealth(operatorSocket: string, timeoutMs = 3_000): Promise<HealthResult> {
  return fetchOperator(operatorSocket, '/healthz', timeoutMs);
}

/** GET `path` (/healthz, /metrics) on the operator listener's unix socket. */
export function fetchOperator(operatorSocket: string, path: string, timeoutMs = 3_000): Promise<HealthResult> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: operatorSocket, path, method: 'GET', timeout: timeoutMs }, (res) => {
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
