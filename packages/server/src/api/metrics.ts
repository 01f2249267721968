/**
 * The API's Prometheus metrics, on a registry of its own (never prom-client's global one, so
 * that several apps in one process — tests, replicas — count separately). Label values are
 * bounded: route patterns, issuance methods and stable error codes, never request data.
 */
import { Counter, Histogram, Registry } from 'prom-client';
import type { StoreCounters } from '@agentca/core';

export class ApiMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'method' | 'status'>;
  readonly issued: Counter<'method'>;
  readonly denied: Counter<'method' | 'code'>;
  readonly signDuration: Histogram<'outcome'>;

  /** With `store`, each counter it has (commits; on SQLite, WAL syncs) is read at each scrape. */
  constructor(store?: StoreCounters) {
    const registers = [this.registry];
    this.requests = new Counter({ name: 'agentca_api_requests_total', help: 'API requests answered, by route pattern, method and status', labelNames: ['route', 'method', 'status'], registers });
    this.issued = new Counter({ name: 'agentca_certificates_issued_total', help: 'certificates issued through the API, by attestation method', labelNames: ['method'], registers });
    this.denied = new Counter({ name: 'agentca_issuance_denied_total', help: 'issuance requests refused, by attestation method and error code', labelNames: ['method', 'code'], registers });
    this.signDuration = new Histogram({
      name: 'agentca_sign_duration_seconds',
      help: 'latency of POST /v1/sign, by outcome (issued, denied, error)',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    const scraped = (name: string, help: string, key: keyof StoreCounters) => {
      if (store?.[key] === undefined) return;
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(store[key] ?? 0);
        },
      });
    };
    scraped('agentca_store_commits_total', 'write transactions the store committed (group commit: each holds every write queued meanwhile)', 'committedBatches');
    scraped('agentca_store_wal_syncs_total', 'syncs of the SQLite write-ahead log, made off the event loop (under load, fewer than commits)', 'walSyncs');
  }
}
