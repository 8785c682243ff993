// The TLS side of the HTTPS server after start-up: the serving certificate and the client CAs both change at run
// time (rotated Secret files; kube-system/extension-apiserver-authentication), and `setSecureContext` replaces the
// whole context, so both kinds of change go through the one object below that knows every part of it.

import { createHash, X509Certificate } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';
import { readServingPair, type CertificateAndKey } from './certificates.ts';

export type TlsMinVersion = 'TLSv1.2' | 'TLSv1.3';

/** What `setSecureContext` needs: `tls.Server`, hence `https.Server` and `Http2SecureServer`. */
export interface SecureContextTarget {
  setSecureContext(options: SecureContextOptions): void;
}

export interface ServingTlsInit {
  readonly pair: CertificateAndKey;
  readonly clientCaPem?: string | undefined;
  readonly minVersion?: TlsMinVersion;
  readonly log: Logger;
}

/**
 * The single owner of the server's secure context. Each change rebuilds the context from all parts, so a
 * certificate rotation never drops the client CAs and a CA reload never brings back an old certificate.
 */
export class ServingTls {
  #pair: CertificateAndKey;
  #clientCaPem: string | undefined;
  readonly #minVersion: TlsMinVersion;
  readonly #log: Logger;
  #server: SecureContextTarget | undefined;

  constructor(init: ServingTlsInit) {
    this.#pair = init.pair;
    this.#clientCaPem = init.clientCaPem || undefined;
    this.#minVersion = init.minVersion ?? 'TLSv1.2';
    this.#log = init.log;
  }

  /** The context options, for creating the server and for every later swap. */
  contextOptions(): SecureContextOptions {
    return {
      key: this.#pair.keyPem,
      cert: this.#pair.certPem,
      // Without this the context falls back to TLS 1.2 even when --tls-min-version asked for 1.3.
      minVersion: this.#minVersion,
      ...(this.#clientCaPem ? { ca: this.#clientCaPem } : {}),
    };
  }

  get pair(): CertificateAndKey {
    return this.#pair;
  }

  get clientCaPem(): string | undefined {
    return this.#clientCaPem;
  }

  /** Starts pushing changes into this server; connections already open keep the context they began with. */
  attach(server: unknown): void {
    // fastify types its server as http.Server whichever kind it built; what matters is that it is a TLS server.
    if (typeof (server as Partial<SecureContextTarget>)?.setSecureContext !== 'function') throw new TypeError('not a TLS server');
    this.#server = server as SecureContextTarget;
  }

  /** Serves a new certificate to new connections; throws (and keeps the old one) if Node rejects the pair. */
  setServingPair(pair: CertificateAndKey): void {
    const previous = this.#pair;
    this.#pair = pair;
    try {
      this.#apply();
    } catch (err) {
      this.#pair = previous;
      throw err;
    }
  }

  /** Trusts these CAs for client certificates on new connections; a bad bundle is logged and the old one kept. */
  setClientCas(pem: string | undefined): void {
    const next = pem || undefined;
    if (next === this.#clientCaPem) return;
    const previous = this.#clientCaPem;
    this.#clientCaPem = next;
    try {
      this.#apply();
    } catch (err) {
      this.#clientCaPem = previous;
      this.#log.error({ err: (err as Error).message }, 'cannot use the new client CA bundle; new connections keep trusting the previous one');
    }
  }

  #apply(): void {
    this.#server?.setSecureContext(this.contextOptions());
  }
}

export function certificateFingerprint(certPem: string): string {
  try {
    return new X509Certificate(certPem).fingerprint256;
  } catch {
    return 'unparseable';
  }
}

export interface ServingCertReloaderOptions {
  readonly certPath: string;
  readonly keyPath: string;
  readonly tls: ServingTls;
  readonly log: Logger;
  /** How often the files are read even when no file-system event arrived. */
  readonly intervalMs?: number;
}

/**
 * Follows --tls-cert-file/--tls-private-key-file (or the --cert-dir files) on disk. Kubelet updates a mounted
 * Secret by swapping a `..data` symlink inside the directory, which inotify reports on the directory, not on
 * the file path; polling covers file systems and editors that send no event at all. A pair that does not parse
 * or whose halves do not match (a half-written update) is reported once and the last good pair keeps serving.
 */
export class ServingCertReloader {
  readonly #options: ServingCertReloaderOptions;
  readonly #watchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  /** Hash of the files as last read, good or bad, so a bad pair is reported once, not on every poll. */
  #seen: string;
  #running: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(options: ServingCertReloaderOptions) {
    this.#options = options;
    this.#seen = hashPair(options.tls.pair.certPem, options.tls.pair.keyPem);
  }

  start(): void {
    const dirs = new Set([dirname(this.#options.certPath), dirname(this.#options.keyPath)]);
    for (const dir of dirs) {
      try {
        const w = watch(dir, { persistent: false }, () => this.#soon());
        w.on('error', () => undefined);
        this.#watchers.push(w);
      } catch (err) {
        this.#options.log.debug({ dir, err: (err as Error).message }, 'cannot watch the serving certificate directory; polling only');
      }
    }
    this.#timer = setInterval(() => void this.check(), this.#options.intervalMs ?? 5_000);
    this.#timer.unref();
  }

  /** Reads both files and swaps the served pair if they changed and are valid. Never rejects. */
  check(): Promise<void> {
    // One check at a time: two overlapping reads could otherwise apply an older pair last.
    this.#running = this.#running.then(() => this.#check()).catch((err: Error) => this.#options.log.error({ err: err.message }, 'serving certificate check failed'));
    return this.#running;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#debounce) clearTimeout(this.#debounce);
    for (const w of this.#watchers) w.close();
  }

  #soon(): void {
    // A symlink swap is a burst of events; the files are complete once it ends.
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => void this.check(), 100);
    this.#debounce.unref();
  }

  async #check(): Promise<void> {
    if (this.#stopped) return;
    const { certPath, keyPath, tls, log } = this.#options;
    let hash: string;
    try {
      const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
      hash = hashPair(cert, key);
    } catch (err) {
      // Mid-swap a path can briefly dangle; the next event or poll sees the finished state.
      log.debug({ err: (err as Error).message }, 'cannot read the serving certificate files; will retry');
      return;
    }
    if (hash === this.#seen || this.#stopped) return;
    this.#seen = hash;
    const previous = certificateFingerprint(tls.pair.certPem);
    try {
      const pair = await readServingPair(certPath, keyPath, (m) => log.warn(m));
      // The files may have changed again between the two reads; judge what is actually served.
      this.#seen = hashPair(pair.certPem, pair.keyPem);
      tls.setServingPair(pair);
      log.info(
        { certFile: certPath, keyFile: keyPath, fingerprint: certificateFingerprint(pair.certPem), previous },
        'serving certificate changed on disk; new connections get the new certificate',
      );
    } catch (err) {
      log.error(
        { certFile: certPath, keyFile: keyPath, err: (err as Error).message, serving: previous },
        'cannot load the changed serving certificate; still serving the previous one',
      );
    }
  }
}

function hashPair(certPem: string, keyPem: string): string {
  return createHash('sha256').update(certPem).update('\0').update(keyPem).digest('hex');
}
