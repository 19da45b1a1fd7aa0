// The control API's routes and payloads, shared by the server and the CLI's client.
import type { DesiredDocument } from "../config/desired-schema.js";

export const API_PREFIX = "/v1";

/** The longest wait a timer can hold (2^31-1 ms, about 24.8 days): a longer `timeoutMs` is refused, never wrapped to a few ms. */
export { MAX_TIMER_MS as MAX_TIMEOUT_MS } from "../config/constants.js";

export interface ApplyRequest {
  document: DesiredDocument;
  /** Only validate and diff; write nothing. */
  dryRun?: boolean;
}

export interface ApplyResponse {
  file: string;
  releaseId: string | null;
  generation: string | null;
  stopped: boolean;
  /** Event sequence number before the write: `wait` streams events after it. */
  sinceSeq: number;
  changes: { type: string; message: string }[];
  /** Things the write does that the caller may not mean (e.g. the file stops following a symlink). */
  warnings: ApplyWarning[];
}

export interface ApplyWarning {
  message: string;
  /** What to do instead, when the warned-about effect is not what was meant. */
  hint: string;
}

export interface WaitOutcome {
  outcome: "converged" | "failed" | "timeout" | "superseded";
  message: string;
  releaseId: string | null;
  failure?: { reason: string; code: string; instanceId: string | null; output: string[] } | null;
  /**
   * The release traffic moved off, still finishing its connections in the background when the
   * rollout was done (null when nothing drains; always null with `--wait-drained`).
   */
  draining?: { releaseId: string; inflight: number; websockets: number; deadline: string | null; message: string } | null;
}

/** A `/wait` stream line between events: what the rollout is waiting for right now. */
export interface WaitProgress {
  message: string;
}

/** One retained or streamed output line of a managed process (`logs`, `logs --follow`). */
export interface LogLine {
  /** When the daemon read the line (ISO time). */
  at: string;
  instanceId: string;
  processId: string;
  releaseId: string;
  /** The OS process that wrote it (a slot gets a new one on each restart). */
  pid: number | null;
  stream: "stdout" | "stderr";
  line: string;
  /** On `logs --follow`: set on the lines that were retained before the stream started. */
  retained?: true;
}

/** `GET /logs`: the selected lines of every matching process, oldest first. */
export interface LogsResponse {
  lines: LogLine[];
}

export interface ErrorBody {
  error: { code: string; message: string; fix?: string };
}
