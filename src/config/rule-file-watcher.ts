import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../errors.ts';
import { parseRuleFile, type PartialRuleFile } from './load.ts';

export type ReloadOutcome = 'reloaded' | 'unchanged' | 'rejected';

export interface RuleFileWatcherOptions {
  readonly file: string;
  /** The text the running rules were loaded from, so the first poll does not reload the same file. */
  readonly loadedText: string;
  readonly log: Logger;
  /** Swaps the served rules; a throw (e.g. rules the providers refuse) rejects the file like a parse error. */
  readonly apply: (loaded: PartialRuleFile) => Promise<void>;
  /** Called once per rejected file content, with every problem found. */
  readonly rejected: (problems: readonly string[]) => void;
  /** How often the file is read even when no file-system event arrived. */
  readonly intervalMs?: number;
  readonly debounceMs?: number;
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Follows the rule file on disk. A mounted ConfigMap is updated by swapping a `..data` symlink in the
 * directory, which inotify reports on the directory rather than on the file path, so the directory is
 * watched; polling covers file systems that send no events. Only content changes count (mtime alone can move
 * without one), and a rejected content is reported once, not on every poll.
 */
export class RuleFileWatcher {
  readonly #options: RuleFileWatcherOptions;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #servedHash: string;
  #rejectedHash: string | null = null;
  #running: Promise<ReloadOutcome> = Promise.resolve('unchanged');
  #stopped = false;

  constructor(options: RuleFileWatcherOptions) {
    this.#options = options;
    this.#servedHash = hash(options.loadedText);
  }

  start(): void {
    const dir = dirname(this.#options.file);
    try {
      this.#watcher = watch(dir, { persistent: false }, () => this.#soon());
      this.#watcher.on('error', () => undefined);
    } catch (err) {
      this.#options.log.debug({ dir, err: (err as Error).message }, 'cannot watch the rule file directory; polling only');
    }
    this.#timer = setInterval(() => void this.#enqueue(false), this.#options.intervalMs ?? 5_000);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#watcher?.close();
  }

  /**
   * Reads the file now (SIGHUP, tests). Unlike the watch, a content that was rejected before is judged (and
   * logged) again, because someone explicitly asked. Never rejects.
   */
  reload(): Promise<ReloadOutcome> {
    return this.#enqueue(true);
  }

  #enqueue(explicit: boolean): Promise<ReloadOutcome> {
    // One load at a time: two overlapping loads could otherwise apply the older file last.
    this.#running = this.#running.then(
      () => this.#check(explicit),
      () => this.#check(explicit),
    );
    return this.#running;
  }

  #soon(): void {
    // Writes and symlink swaps arrive as bursts of events; read once the burst is over.
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => void this.#enqueue(false), this.#options.debounceMs ?? 200);
    this.#debounce.unref();
  }

  async #check(explicit: boolean): Promise<ReloadOutcome> {
    if (this.#stopped) return 'unchanged';
    const { file, log } = this.#options;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if (!explicit) {
        // Mid-swap the path can dangle for a moment; the next event or poll sees the finished state.
        log.debug({ file, err: (err as Error).message }, 'cannot read the rule file; will retry');
        return 'unchanged';
      }
      return this.#reject(hash(''), [`cannot read the file: ${(err as Error).message}`]);
    }
    const h = hash(text);
    if (h === this.#servedHash) return 'unchanged';
    if (h === this.#rejectedHash && !explicit) return 'rejected';
    let loaded: PartialRuleFile;
    try {
      loaded = parseRuleFile(file, text, { skipInvalidRules: true });
    } catch (err) {
      return this.#reject(h, err instanceof ConfigError ? err.problems : [(err as Error).message]);
    }
    try {
      await this.#options.apply(loaded);
    } catch (err) {
      return this.#reject(h, err instanceof ConfigError ? err.problems : [(err as Error).message]);
    }
    this.#servedHash = h;
    this.#rejectedHash = null;
    return 'reloaded';
  }

  #reject(h: string, problems: readonly string[]): ReloadOutcome {
    this.#rejectedHash = h;
    this.#options.log.error(
      { file: this.#options.file, problems },
      `rule file rejected; still serving the last good rules:\n  - ${problems.join('\n  - ')}`,
    );
    this.#options.rejected(problems);
    return 'rejected';
  }
}
