/**
 * Kubernetes RequestInfo for the paths this server serves: the attributes a SubjectAccessReview is
 * asked about, computed exactly as kube-apiserver's delegated authorizers compute them.
 */
export type RequestAttributes =
  | { kind: 'resource'; verb: string; group: string; version: string; namespace: string; resource: string; subresource: string; name: string }
  | { kind: 'nonResource'; verb: string; path: string };

export function requestAttributes(method: string, rawUrl: string): RequestAttributes {
  const [path = '/', queryString = ''] = rawUrl.split('?');
  const verb = method === 'GET' || method === 'HEAD' ? 'get' : method.toLowerCase();
  const parts = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  // Resource requests start at /apis/{group}/{version}/{something}; shorter paths are discovery.
  if (parts[0] !== 'apis' || parts.length < 4) return { kind: 'nonResource', verb, path };
  const group = parts[1]!;
  const version = parts[2]!;
  let rest = parts.slice(3);
  let namespace = '';
  if (rest[0] === 'namespaces') {
    if (rest.length >= 2) {
      namespace = rest[1]!;
      // `namespaces/{ns}` alone is the namespace object itself.
      rest = rest.length > 2 ? rest.slice(2) : ['namespaces', rest[1]!];
    }
  }
  const resource = rest[0] ?? '';
  const name = rest[1] ?? '';
  const subresource = rest[2] ?? '';
  let resourceVerb = verb;
  if (verb === 'get' && name === '') {
    resourceVerb = new URLSearchParams(queryString).get('watch') === 'true' ? 'watch' : 'list';
  }
  return { kind: 'resource', verb: resourceVerb, group, version, namespace, resource, subresource, name };
}

/** The text kube-apiserver puts in a 403, so users read the RBAC rule they are missing. */
export function forbiddenMessage(user: string, a: RequestAttributes, reason: string): string {
  const suffix = reason ? `: ${reason}` : '';
  if (a.kind === 'nonResource') return `forbidden: User "${user}" cannot ${a.verb} path "${a.path}"${suffix}`;
  const gr = a.group ? `${a.resource}.${a.group}` : a.resource;
  const prefix = a.name ? `${gr} "${a.name}" is forbidden: ` : `${gr} is forbidden: `;
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const scope = a.namespace ? ` in the namespace "${a.namespace}"` : ' at the cluster scope';
  return `${prefix}User "${user}" cannot ${a.verb} resource "${res}" in API group "${a.group}"${scope}${suffix}`;
}
