import { request, type RequestOptions } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';

export interface HttpsResponse {
  status: number;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any;
  headers: IncomingHttpHeaders;
  /** Milliseconds from the TLS connection being up to the end of the answer: the server's own time. */
  serverMs: number;
}

/** One HTTPS request on a fresh connection (so client certificates are presented every time). */
export function httpsGet(url: string, options: RequestOptions = {}): Promise<HttpsResponse> {
  return new Promise((resolve, reject) => {
    let connectedAt = performance.now();
    const req = request(url, { agent: false, ...options }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, text, json, headers: res.headers, serverMs: performance.now() - connectedAt });
      });
    });
    req.on('socket', (socket) => socket.once('secureConnect', () => (connectedAt = performance.now())));
    req.on('error', reject);
    req.end();
  });
}
