/**
 * The client: any program that can present a certificate from files. Here curl, with the
 * files the sidecar keeps fresh:
 *
 *   curl --cacert server.pem --cert identity/cert.pem --key identity/key.pem https://127.0.0.1:PORT/
 */
import { execFile } from 'node:child_process';

export interface CallResult {
  /** The HTTP status, or 0 when no HTTP answer came (curl's exit code is in `curlExit`). */
  status: number;
  body: string;
  curlExit: number;
}

export function callThroughNginx(url: string, o: { cacert: string; cert: string; key: string }): Promise<CallResult> {
  const args = ['-s', '--max-time', '5', '--cacert', o.cacert, '--cert', o.cert, '--key', o.key, '-w', '\n%{http_code}', url];
  return new Promise((resolve) => {
    execFile('curl', args, (err, stdout) => {
      const nl = stdout.lastIndexOf('\n');
      resolve({
        status: Number(stdout.slice(nl + 1)) || 0,
        body: stdout.slice(0, Math.max(nl, 0)),
        curlExit: err ? Number(err.code ?? 1) : 0,
      });
    });
  });
}
