import { connect, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders, type SecureClientSessionOptions } from 'node:http2';

export interface Http2Response {
  status: number;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any;
  headers: IncomingHttpHeaders;
}

/** An HTTP/2 session over TLS, the way kube-apiserver's aggregator talks to an aggregated server. */
export function connectHttp2(url: string, options: SecureClientSessionOptions = {}): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    // Node's client refuses to send more than 64 KiB of encoded headers; Go's (the aggregator's) has no such
    // limit of its own, only the server's advertised SETTINGS_MAX_HEADER_LIST_SIZE.
    const session = connect(url, { maxSendHeaderBlockLength: 1 << 20, ...options });
    const failed = (err: Error): void => reject(err);
    session.once('error', failed);
    session.once('connect', () => {
      session.off('error', failed);
      // An error after connecting belongs to a request; the request's own handlers report it.
      session.on('error', () => undefined);
      resolve(session);
    });
  });
}

/** One request (stream) on an open session; arrays in `headers` are sent as repeated header fields. */
export function http2Request(session: ClientHttp2Session, path: string, headers: OutgoingHttpHeaders = {}, method = 'GET'): Promise<Http2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ':method': method, ...headers });
    let responseHeaders: IncomingHttpHeaders = {};
    let text = '';
    stream.setEncoding('utf8');
    stream.on('response', (h) => (responseHeaders = h));
    stream.on('data', (c: string) => (text += c));
    stream.on('error', reject);
    stream.on('end', () => {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      resolve({ status: Number(responseHeaders[':status'] ?? 0), text, json, headers: responseHeaders });
    });
    stream.end();
  });
}

/** One request on a session of its own (so client certificates are presented every time). */
export async function http2Get(
  url: string,
  options: SecureClientSessionOptions & { headers?: OutgoingHttpHeaders; method?: string } = {},
): Promise<Http2Response & { alpnProtocol: string | undefined }> {
  const { headers, method, ...tls } = options;
  const u = new URL(url);
  const session = await connectHttp2(u.origin, tls);
  try {
    const res = await http2Request(session, `${u.pathname}${u.search}`, headers ?? {}, method ?? 'GET');
    return { ...res, alpnProtocol: session.alpnProtocol };
  } finally {
    session.close();
  }
}
