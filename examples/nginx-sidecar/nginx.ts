/**
 * nginx in front of the upstream: client certificates are required, verified against the CA
 * bundle (root + intermediate), and checked against the CRL file agentca keeps current. The
 * subject of an agentca certificate is empty: nginx hands the whole client certificate to the
 * upstream, which reads the SPIFFE ID from it.
 *
 * nginx runs as a child process with its own prefix (config, pid, logs, temp paths) in a
 * directory of its own, listening on 127.0.0.1 only.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

export interface NginxOptions {
  prefix: string;
  port: number;
  upstreamPort: number;
  /** nginx's own server certificate and key. */
  serverCert: string;
  serverKey: string;
  /** Root + intermediate, PEM: the CAs client certificates must chain to. */
  clientCas: string;
  /** agentca's proxy CRL file (`<ca dir>/crl.pem`). */
  crlFile: string;
}

export function nginxConfig(o: NginxOptions): string {
  const tmp = join(o.prefix, 'tmp');
  return `# written by examples/nginx-sidecar
${process.getuid?.() === 0 ? 'user root;  # workers read the temp dir, which only its owner may enter' : ''}
worker_processes 1;
pid ${o.prefix}/nginx.pid;
error_log ${o.prefix}/logs/error.log info;   # "info": client certificate errors are logged at this level
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;

  server {
    listen 127.0.0.1:${o.port} ssl;
    ssl_certificate         ${o.serverCert};
    ssl_certificate_key     ${o.serverKey};

    ssl_client_certificate  ${o.clientCas};   # root.pem + intermediate.pem
    ssl_verify_client       on;
    ssl_verify_depth        2;
    ssl_crl                 ${o.crlFile};     # issuing CA CRL + root CRL; re-read on reload

    location / {
      proxy_pass http://127.0.0.1:${o.upstreamPort};
      proxy_set_header X-Client-Cert $ssl_client_escaped_cert;
    }
  }
}
`;
}

/**
 * nginx's own server certificate: a throwaway self-signed one for 127.0.0.1 (the client trusts
 * exactly it). What this example shows is the other direction: client certificates.
 */
export function selfSignedServerCertificate(dir: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, 'server.pem');
  const key = join(dir, 'server.key');
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'];
  return new Promise((resolve, reject) =>
    execFile('openssl', args, (err, _out, stderr) => (err ? reject(new Error(`openssl req: ${stderr.trim() || err.message}`)) : resolve({ cert, key }))),
  );
}

export class Nginx {
  readonly conf: string;
  readonly errorLog: string;
  readonly #o: NginxOptions;
  #child: ChildProcess | null = null;

  constructor(o: NginxOptions) {
    this.#o = o;
    this.conf = join(o.prefix, 'nginx.conf');
    this.errorLog = join(o.prefix, 'logs/error.log');
    mkdirSync(join(o.prefix, 'logs'), { recursive: true });
    mkdirSync(join(o.prefix, 'tmp'), { recursive: true });
    writeFileSync(this.conf, nginxConfig(o));
  }

  /** The nginx command line for this instance (`-e` keeps even early errors out of /var/log). */
  args(...extra: string[]): string[] {
    return ['-p', this.#o.prefix, '-c', this.conf, '-e', this.errorLog, ...extra];
  }

  /** What `agentca serve --on-crl-update` runs: nginx reads `ssl_crl` again on reload. */
  get reloadCommand(): string {
    return ['nginx', ...this.args('-s', 'reload')].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      execFile('nginx', this.args('-t'), (err, _out, stderr) => {
        if (!err) return resolve();
        const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
        reject(new Error(missing ? 'nginx is not installed (Debian: apt-get install nginx)' : `nginx -t: ${stderr.trim() || err.message}`));
      }),
    );
    const child = spawn('nginx', this.args('-g', 'daemon off;'), { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const end = Date.now() + 10_000;
    while (!(await accepts(this.#o.port))) {
      if (child.exitCode !== null) throw new Error(`nginx exited ${child.exitCode}: ${stderr.trim()}`);
      if (Date.now() > end) throw new Error(`nginx did not listen on 127.0.0.1:${this.#o.port} within 10 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The error log lines that mention `needle`. */
  logLines(needle: string): string[] {
    return readFileSync(this.errorLog, 'utf8')
      .split('\n')
      .filter((l) => l.includes(needle));
  }

  /** Stops nginx (SIGTERM: the master stops its workers; SIGKILL after 5 s). */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const force = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(force);
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}
