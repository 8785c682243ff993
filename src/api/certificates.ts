// Serving certificates for the HTTPS aggregated API server, plus a small PKI toolkit that tests reuse to stand in
// for kube-apiserver's front-proxy CA and client CA.
//
// Everything is ECDSA P-256 signed with SHA-256: Go (kube-apiserver, kubectl) rejects SHA-1 signatures, and P-256
// keys make generation fast enough to do at start-up and in every test.

import 'reflect-metadata'; // @peculiar/x509 2.x resolves its DI container through Reflect metadata at import time
import * as x509 from '@peculiar/x509';
import { createPrivateKey, webcrypto, X509Certificate } from 'node:crypto';
import { access, chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

x509.cryptoProvider.set(webcrypto);

export type CertificateUsage = 'server' | 'client' | 'both';

export type IssueOptions = {
  commonName: string;
  organizations?: string[];
  hosts?: string[];
  ips?: string[];
  usage: CertificateUsage;
  validDays?: number;
};

export type CertificateAndKey = { certPem: string; keyPem: string };

export type CertificateAuthority = CertificateAndKey & {
  issue(opts: IssueOptions): Promise<CertificateAndKey>;
};

export type ServingCertOptions = {
  certFile?: string;
  keyFile?: string;
  certDir?: string;
  hosts?: string[];
  ips?: string[];
  log?: (message: string) => void;
};

export type ServingCert = CertificateAndKey & {
  certPath?: string;
  keyPath?: string;
  generated: boolean;
};

export const DEFAULT_SERVING_HOSTS: readonly string[] = ['localhost'];
export const DEFAULT_SERVING_IPS: readonly string[] = ['127.0.0.1', '::1'];

/** File names prometheus-adapter (k8s.io/apiserver SecureServingOptions) uses inside --cert-dir. */
export const CERT_DIR_CERT_NAME = 'apiserver.crt';
export const CERT_DIR_KEY_NAME = 'apiserver.key';

const KEY_ALGORITHM: webcrypto.EcKeyGenParams & webcrypto.EcdsaParams = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const DEFAULT_LEAF_DAYS = 365;
const DEFAULT_CA_DAYS = 3650;
const DAY_MS = 86_400_000;
// Backdated like client-go's GenerateSelfSignedCertKey, so peers with a slightly slow clock accept the cert at once.
const CLOCK_SKEW_MS = 3_600_000;

const EKU_BY_USAGE: Record<CertificateUsage, string[]> = {
  server: [x509.ExtendedKeyUsage.serverAuth],
  client: [x509.ExtendedKeyUsage.clientAuth],
  both: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
};

// keyEncipherment means nothing for an EC key but mirrors client-go's leaf certificates; no verifier rejects it.
const LEAF_KEY_USAGE = x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment;

async function generateKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', key);
  return `${x509.PemConverter.encode(pkcs8, 'PRIVATE KEY')}\n`;
}

function certificatePem(cert: x509.X509Certificate): string {
  return `${cert.toString('pem')}\n`;
}

function validity(validDays: number): { notBefore: Date; notAfter: Date } {
  if (!Number.isFinite(validDays) || validDays <= 0) throw new RangeError(`validDays must be positive, got ${validDays}`);
  const now = Date.now();
  return { notBefore: new Date(now - CLOCK_SKEW_MS), notAfter: new Date(now + validDays * DAY_MS) };
}

/**
 * A DN built from literal values. @peculiar/x509 treats plain JSON strings as RFC 4514 text (`"…"` is unquoted,
 * a leading `#` is hex), so values go in as typed strings, PrintableString where possible as Go's pkix does.
 */
function literalName(attributes: ReadonlyArray<[type: 'CN' | 'O', value: string]>): x509.Name {
  return new x509.Name(
    attributes.map(([type, value]) => ({
      [type]: [x509.Name.isPrintableString(value) ? { printableString: value } : { utf8String: value }],
    })),
  );
}

function subjectAltNames(hosts: readonly string[], ips: readonly string[]): x509.Extension[] {
  const names: x509.JsonGeneralNames = [
    ...hosts.map((value) => ({ type: 'dns' as const, value })),
    ...ips.map((value) => ({ type: 'ip' as const, value })),
  ];
  return names.length === 0 ? [] : [new x509.SubjectAlternativeNameExtension(names, false)];
}

/**
 * A self-signed serving leaf (no separate CA). Clients trust it by pinning the certificate itself (`ca: [certPem]`,
 * `curl --cacert`, an APIService caBundle): OpenSSL 3 and Go both accept a self-signed leaf with cA=false as its own
 * trust anchor, and keeping cA=false means the pinned cert cannot be used to sign anything else.
 */
export async function generateSelfSignedServingCert(opts: {
  hosts: string[];
  ips: string[];
  validDays?: number;
}): Promise<CertificateAndKey> {
  const commonName = opts.hosts[0] ?? opts.ips[0];
  if (commonName === undefined) throw new Error('a serving certificate needs at least one host name or IP address');
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: literalName([['CN', commonName]]),
    keys,
    signingAlgorithm: KEY_ALGORITHM,
    ...validity(opts.validDays ?? DEFAULT_LEAF_DAYS),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(LEAF_KEY_USAGE, true),
      new x509.ExtendedKeyUsageExtension(EKU_BY_USAGE.server, false),
      ...subjectAltNames(opts.hosts, opts.ips),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: certificatePem(cert), keyPem: await privateKeyPem(keys.privateKey) };
}

/** A CA whose leaves verify in Node (OpenSSL) and Go; it keeps its private key in memory to sign them. */
export async function createCertificateAuthority(
  commonName: string,
  opts: { validDays?: number } = {},
): Promise<CertificateAuthority> {
  const keys = await generateKeyPair();
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    name: literalName([['CN', commonName]]),
    keys,
    signingAlgorithm: KEY_ALGORITHM,
    ...validity(opts.validDays ?? DEFAULT_CA_DAYS),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const authorityKeyId = await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey);

  async function issue(issueOpts: IssueOptions): Promise<CertificateAndKey> {
    const leafKeys = await generateKeyPair();
    const subject = literalName([
      ...(issueOpts.organizations ?? []).map((o): ['O', string] => ['O', o]),
      ['CN', issueOpts.commonName],
    ]);
    const cert = await x509.X509CertificateGenerator.create({
      subject,
      // Reuse the parsed subject so the issuer DN is byte-identical; Go finds parents by raw issuer bytes.
      issuer: caCert.subjectName,
      publicKey: leafKeys.publicKey,
      signingKey: keys.privateKey,
      signingAlgorithm: KEY_ALGORITHM,
      ...validity(issueOpts.validDays ?? DEFAULT_LEAF_DAYS),
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(LEAF_KEY_USAGE, true),
        new x509.ExtendedKeyUsageExtension(EKU_BY_USAGE[issueOpts.usage], false),
        ...subjectAltNames(issueOpts.hosts ?? [], issueOpts.ips ?? []),
        await x509.SubjectKeyIdentifierExtension.create(leafKeys.publicKey),
        authorityKeyId,
      ],
    });
    return { certPem: certificatePem(cert), keyPem: await privateKeyPem(leafKeys.privateKey) };
  }

  return { certPem: certificatePem(caCert), keyPem: await privateKeyPem(keys.privateKey), issue };
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function readPemFile(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${what} file "${path}": ${errorMessage(error)}`, { cause: error });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new Error(`cannot read "${path}": ${errorMessage(error)}`, { cause: error });
  }
}

/** Parses both PEMs and proves the key belongs to the (first) certificate, naming the files in every failure. */
function validatePair(
  certPem: string,
  keyPem: string,
  certPath: string,
  keyPath: string,
  log: ((message: string) => void) | undefined,
): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (error) {
    throw new Error(`serving certificate file "${certPath}" holds no valid PEM certificate: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyPem);
  } catch (error) {
    throw new Error(`serving key file "${keyPath}" holds no valid PEM private key: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  if (!cert.checkPrivateKey(key)) {
    throw new Error(`serving key file "${keyPath}" does not match the certificate in "${certPath}"`);
  }
  if (cert.validToDate.getTime() < Date.now()) {
    log?.(`warning: serving certificate "${certPath}" expired at ${cert.validToDate.toISOString()}`);
  }
}

/**
 * Reads a certificate/key pair from disk and checks that it parses and matches; the same checks as at start-up,
 * for reloading rotated files.
 */
export async function readServingPair(
  certPath: string,
  keyPath: string,
  log?: (message: string) => void,
): Promise<CertificateAndKey> {
  const certPem = await readPemFile(certPath, 'serving certificate');
  const keyPem = await readPemFile(keyPath, 'serving key');
  validatePair(certPem, keyPem, certPath, keyPath, log);
  return { certPem, keyPem };
}

/**
 * Serving certificate with k8s.io/apiserver semantics (as in prometheus-adapter):
 * --tls-cert-file + --tls-private-key-file are used as given; otherwise `<certDir>/apiserver.{crt,key}` are reused,
 * or generated self-signed and written when both are absent; with neither, a self-signed cert lives in memory only.
 */
export async function loadOrCreateServingCert(opts: ServingCertOptions): Promise<ServingCert> {
  const hosts = opts.hosts ?? [...DEFAULT_SERVING_HOSTS];
  const ips = opts.ips ?? [...DEFAULT_SERVING_IPS];
  const log = opts.log;

  if (opts.certFile !== undefined || opts.keyFile !== undefined) {
    if (opts.certFile === undefined || opts.keyFile === undefined) {
      const given = opts.certFile ?? opts.keyFile;
      throw new Error(
        `the serving certificate and key must be given together: got only "${given}" ` +
          `(set both --tls-cert-file and --tls-private-key-file)`,
      );
    }
    const certPem = await readPemFile(opts.certFile, 'serving certificate');
    const keyPem = await readPemFile(opts.keyFile, 'serving key');
    validatePair(certPem, keyPem, opts.certFile, opts.keyFile, log);
    return { certPem, keyPem, certPath: opts.certFile, keyPath: opts.keyFile, generated: false };
  }

  if (opts.certDir !== undefined) {
    const certPath = join(opts.certDir, CERT_DIR_CERT_NAME);
    const keyPath = join(opts.certDir, CERT_DIR_KEY_NAME);
    const [certExists, keyExists] = await Promise.all([exists(certPath), exists(keyPath)]);
    if (certExists && keyExists) {
      const certPem = await readPemFile(certPath, 'serving certificate');
      const keyPem = await readPemFile(keyPath, 'serving key');
      validatePair(certPem, keyPem, certPath, keyPath, log);
      return { certPem, keyPem, certPath, keyPath, generated: false };
    }
    if (certExists !== keyExists) {
      // Regenerating would silently discard whichever half an operator put there, so refuse like client-go does.
      throw new Error(
        `found only one of "${certPath}" and "${keyPath}": the certificate and key must be supplied as a pair`,
      );
    }
    const pair = await generateSelfSignedServingCert({ hosts, ips });
    try {
      await mkdir(opts.certDir, { recursive: true, mode: 0o755 });
      // 'wx' so a concurrently started replica's files are never overwritten with a non-matching half.
      await writeFile(certPath, pair.certPem, { mode: 0o644, flag: 'wx' });
      await writeFile(keyPath, pair.keyPem, { mode: 0o600, flag: 'wx' });
      await chmod(keyPath, 0o600);
    } catch (error) {
      throw new Error(`cannot write self-signed serving certificate into "${opts.certDir}": ${errorMessage(error)}`, {
        cause: error,
      });
    }
    log?.(`generated self-signed serving certificate "${certPath}" for ${[...hosts, ...ips].join(', ')}`);
    return { ...pair, certPath, keyPath, generated: true };
  }

  const pair = await generateSelfSignedServingCert({ hosts, ips });
  log?.(`generated in-memory self-signed serving certificate for ${[...hosts, ...ips].join(', ')}`);
  return { ...pair, generated: true };
}
