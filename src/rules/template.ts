/**
 * The subset of Go's text/template that prometheus-adapter rule files use, with its `<<` `>>`
 * delimiters: `<<.Field>>`, `<<index .Map "key">>` and the `<<-` / `->>` whitespace trim markers.
 * Templates are compiled once when the rule file loads, so a typo fails at start-up (with the
 * field name and the fields that exist) rather than on the first HPA request.
 */

export type TemplateValue = string | readonly string[] | Readonly<Record<string, string>>;
export type TemplateVars = Readonly<Record<string, TemplateValue>>;

type Part =
  | { kind: 'text'; text: string }
  | { kind: 'field'; field: string }
  | { kind: 'index'; field: string; key: string };

export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateError';
  }
}

export interface CompiledTemplate {
  readonly source: string;
  /** Top-level fields the template reads; lets callers skip work a template does not need. */
  readonly fields: ReadonlySet<string>;
  render(vars: TemplateVars): string;
}

const FIELD = /^\.([A-Za-z_][A-Za-z0-9_]*)$/;
const INDEX = /^index\s+\.([A-Za-z_][A-Za-z0-9_]*)\s+("(?:[^"\\]|\\.)*"|`[^`]*`)$/;

function parseGoStringLiteral(literal: string): string {
  if (literal.startsWith('`')) return literal.slice(1, -1);
  try {
    // Go's interpreted string escapes are a superset of JSON's for the cases rule files use.
    return JSON.parse(literal) as string;
  } catch {
    throw new TemplateError(`cannot read the string ${literal} in an index action`);
  }
}

export function compileTemplate(source: string, knownFields: readonly string[]): CompiledTemplate {
  const parts: Part[] = [];
  const fields = new Set<string>();
  let pos = 0;
  let trimNextText = false;
  while (pos <= source.length) {
    const open = source.indexOf('<<', pos);
    let text = open === -1 ? source.slice(pos) : source.slice(pos, open);
    if (trimNextText) text = text.replace(/^\s+/, '');
    trimNextText = false;
    if (open === -1) {
      if (text) parts.push({ kind: 'text', text });
      break;
    }
    const close = source.indexOf('>>', open + 2);
    if (close === -1) throw new TemplateError(`unclosed action starting at offset ${open}: missing ">>"`);
    let action = source.slice(open + 2, close);
    if (/^-\s/.test(action)) {
      text = text.replace(/\s+$/, '');
      action = action.slice(1);
    }
    if (/\s-$/.test(action)) {
      trimNextText = true;
      action = action.slice(0, -1);
    }
    if (text) parts.push({ kind: 'text', text });
    action = action.trim();
    const field = FIELD.exec(action);
    const index = field ? null : INDEX.exec(action);
    const name = field?.[1] ?? index?.[1];
    if (name === undefined) {
      throw new TemplateError(
        `unsupported template action <<${action}>>: use <<.Field>> or <<index .Field "key">>`,
      );
    }
    if (!knownFields.includes(name)) {
      throw new TemplateError(
        `template uses .${name}, which does not exist; available: ${knownFields.map((f) => '.' + f).join(', ')}`,
      );
    }
    fields.add(name);
    parts.push(index ? { kind: 'index', field: name, key: parseGoStringLiteral(index[2]!) } : { kind: 'field', field: name });
    pos = close + 2;
  }
  return {
    source,
    fields,
    render(vars: TemplateVars): string {
      let out = '';
      for (const part of parts) {
        if (part.kind === 'text') out += part.text;
        else if (part.kind === 'field') out += formatValue(vars[part.field]);
        else {
          const map = vars[part.field];
          if (map !== undefined && (typeof map !== 'object' || Array.isArray(map))) {
            throw new TemplateError(`index .${part.field}: .${part.field} is not a map`);
          }
          out += (map as Readonly<Record<string, string>> | undefined)?.[part.key] ?? '';
        }
      }
      return out;
    },
  };
}

/** Go's fmt rendering of the values templates see: slices print as `[a b]`, maps as `map[k:v]`. */
function formatValue(value: TemplateValue | undefined): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return `[${value.join(' ')}]`;
  const entries = Object.entries(value as Record<string, string>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `map[${entries.map(([k, v]) => `${k}:${v}`).join(' ')}]`;
}
