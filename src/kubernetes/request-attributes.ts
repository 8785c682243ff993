/**
 * Kubernetes RequestInfo for the paths this server serves: the attributes a SubjectAccessReview is
 * asked about, computed exactly as kube-apiserver's delegated authorizers compute them.
 */
export type RequestAttributes =
  | { kind: 'resource'; verb: string; group: string; version: string; namespace: string; resource: string; subresource: string; name: string }
  | { kind: 'nonResource'; verb: string; path: string };

/** Verbs of resource requests by HTTP method; anything else is '' (requestinfo.go). */
const RESOURCE_VERBS = new Map([
  ['POST', 'create'],
  ['GET', 'get'],
  ['HEAD', 'get'],
  ['PUT', 'update'],
  ['PATCH', 'patch'],
  ['DELETE', 'delete'],
]);

/** ListOptions.Watch from the query: only a missing value, "0" or "false" (any case) is false (Convert_Slice_string_To_bool). */
function isWatch(queryString: string): boolean {
  const v = new URLSearchParams(queryString).get('watch');
  return v !== null && v !== '0' && v.toLowerCase() !== 'false';
}

export function requestAttributes(method: string, rawUrl: string): RequestAttributes {
  const [path = '/', queryString = ''] = rawUrl.split('?');
  // Non-resource requests use the lower-cased method as their verb (HEAD is "head", not "get").
  const verb = method.toLowerCase();
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
  let resourceVerb = RESOURCE_VERBS.get(method.toUpperCase()) ?? '';
  if (name === '' && resourceVerb === 'get') resourceVerb = isWatch(queryString) ? 'watch' : 'list';
  if (name === '' && resourceVerb === 'delete') resourceVerb = 'deletecollection';
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
