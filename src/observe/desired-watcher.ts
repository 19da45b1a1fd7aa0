// Watches the desired file through its parent directory (so renames over it and symlink
// flips are seen) and calls back, debounced, when anything there changes. A periodic resync
// in the loop heals whatever a watcher misses.
import path from "node:path";
import { watch, type FSWatcher } from "chokidar";

export interface DesiredWatcherOptions {
  /** Files whose changes matter (the desired file, a symlinked release path). */
  files: string[];
  debounceMs: number;
  onChange: (file: string) => void;
  onError?: (error: unknown) => void;
}

export class DesiredWatcher {
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private files = new Set<string>();
  private dirs = new Set<string>();

  constructor(private readonly options: DesiredWatcherOptions) {}

  async start(): Promise<void> {
    this.watcher = watch([], { ignoreInitial: true, followSymlinks: false, depth: 0, persistent: true, atomic: false });
    this.watcher.on("all", (_event, changed) => this.onEvent(changed));
    this.watcher.on("error", (error) => this.options.onError?.(error));
    this.setFiles([...this.options.files, ...this.files]);
    await new Promise<void>((resolve) => {
      if (!this.watcher) return resolve();
      this.watcher.once("ready", () => resolve());
      setTimeout(resolve, 2000).unref();
    });
  }

  /** Changes the watched set (e.g. when the desired release path is a different symlink). */
  setFiles(files: string[]): void {
    const nextFiles = new Set(files.map((f) => path.resolve(f)));
    const nextDirs = new Set([...nextFiles].map((f) => path.dirname(f)));
    if (!this.watcher) {
      this.files = nextFiles;
      return;
    }
    for (const dir of nextDirs) if (!this.dirs.has(dir)) this.watcher.add(dir);
    for (const dir of this.dirs) if (!nextDirs.has(dir)) this.watcher.unwatch(dir);
    this.files = nextFiles;
    this.dirs = nextDirs;
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.watcher?.close();
    this.watcher = null;
  }

  private onEvent(changed: string): void {
    const file = path.resolve(changed);
    if (!this.files.has(file)) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.options.onChange(file);
    }, this.options.debounceMs);
  }
}
