import type { DiscoveredSeries } from '../rules/series-naming.ts';

/**
 * One frozen entry per distinct (name, label names): a million series of a few shapes cost a pointer each rather
 * than an object and an array each.
 */
export class SeriesShapes {
  readonly #byKey = new Map<string, DiscoveredSeries>();
  // Series arrive grouped by name with the same label names in the same order, so most are the previous one's shape:
  // compared as given, before any sorting or key building.
  #lastName = '';
  #lastGiven: readonly string[] = [];
  #last: DiscoveredSeries | undefined;

  /** The entry for `name` with `labels` (sorted in place; the table may keep the array). */
  of(name: string, labels: string[]): DiscoveredSeries {
    const last = this.#last;
    if (last !== undefined && name === this.#lastName && sameStrings(labels, this.#lastGiven)) return last;
    const given = labels.slice();
    labels.sort();
    // JSON of the pair: unambiguous whatever characters the names hold.
    const key = JSON.stringify([name, labels]);
    let shape = this.#byKey.get(key);
    if (shape === undefined) {
      shape = Object.freeze({ name, labels: Object.freeze(labels) });
      this.#byKey.set(key, shape);
    }
    this.#lastName = name;
    this.#lastGiven = given;
    this.#last = shape;
    return shape;
  }

  get size(): number {
    return this.#byKey.size;
  }
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
