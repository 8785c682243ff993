import assert from 'node:assert/strict';

// Test-only reader of the Prometheus text exposition format (version 0.0.4), written from the format's
// description rather than from prom-client, so tests check what a scraper would really read.

export interface ExpositionSample {
  /** Sample name: the family name, or it plus `_bucket`, `_sum`, `_count`. */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface ExpositionFamily {
  readonly name: string;
  readonly type: string;
  readonly help: string;
  readonly samples: ExpositionSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/** As Prometheus reads values (Go's strconv.ParseFloat): special values in any case; prom-client writes `Nan`. */
function parseValue(text: string): number {
  if (/^nan$/i.test(text)) return NaN;
  const inf = /^([+-]?)inf(inity)?$/i.exec(text);
  if (inf) return inf[1] === '-' ? -Infinity : Infinity;
  const n = Number(text);
  assert.ok(text !== '' && !Number.isNaN(n), `bad sample value ${JSON.stringify(text)}`);
  return n;
}

function readLabels(line: string, start: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = start + 1;
  for (;;) {
    if (line[i] === '}') return { labels, end: i + 1 };
    const name = LABEL_NAME.exec(line.slice(i))?.[0];
    assert.ok(name, `bad label name at ${i} in ${line}`);
    i += name.length;
    assert.equal(line.slice(i, i + 2), '="', `expected =" after label ${name} in ${line}`);
    i += 2;
    let value = '';
    for (;;) {
      const ch = line[i];
      assert.ok(ch !== undefined, `unterminated label value in ${line}`);
      i++;
      if (ch === '"') break;
      if (ch === '\\') {
        const esc = line[i++];
        if (esc === 'n') value += '\n';
        else if (esc === '\\' || esc === '"') value += esc;
        else assert.fail(`bad escape \\${esc} in ${line}`);
      } else value += ch;
    }
    assert.ok(!(name in labels), `label ${name} twice in ${line}`);
    labels[name] = value;
    if (line[i] === ',') i++;
  }
}

/** Families in order; asserts on anything a strict scraper would reject. */
export function readExposition(text: string): Map<string, ExpositionFamily> {
  const families = new Map<string, ExpositionFamily>();
  const familyOf = (sample: string): ExpositionFamily | undefined => {
    const exact = families.get(sample);
    if (exact) return exact;
    for (const suffix of ['_bucket', '_sum', '_count']) {
      if (!sample.endsWith(suffix)) continue;
      const f = families.get(sample.slice(0, -suffix.length));
      if (f && (f.type === 'histogram' || f.type === 'summary')) return f;
    }
    return undefined;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) ?(.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      const f = families.get(name) ?? { name, type: 'untyped', help: '', samples: [] };
      families.set(name, kind === 'HELP' ? { ...f, help: rest } : { ...f, type: rest });
      continue;
    }
    if (line.startsWith('#')) continue;
    const name = NAME.exec(line)?.[0];
    assert.ok(name, `bad sample line ${line}`);
    let i = name.length;
    let labels: Record<string, string> = {};
    if (line[i] === '{') ({ labels, end: i } = readLabels(line, i));
    assert.equal(line[i], ' ', `expected a space before the value in ${line}`);
    const [valueText, timestamp, extra] = line.slice(i + 1).split(' ');
    assert.ok(extra === undefined && (timestamp === undefined || /^-?\d+$/.test(timestamp)), `bad sample line ${line}`);
    const family = familyOf(name);
    assert.ok(family, `sample ${name} comes before (or without) its # TYPE line`);
    family.samples.push({ name, labels, value: parseValue(valueText!) });
  }
  return families;
}

/** The value of the one sample named `name` whose labels include `labels`; fails when there is none or several. */
export function sampleValue(families: Map<string, ExpositionFamily>, name: string, labels: Record<string, string> = {}): number {
  const matches = [...families.values()]
    .flatMap((f) => f.samples)
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(matches.length, 1, `expected one ${name}${JSON.stringify(labels)}, found ${matches.length}`);
  return matches[0]!.value;
}
