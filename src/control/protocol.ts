// The control API's routes and payloads, shared by the server and the CLI's client.
import type { DesiredDocument } from "../config/desired-schema.js";

export const API_PREFIX = "/v1";

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
}

export interface WaitOutcome {
  outcome: "converged" | "failed" | "timeout" | "superseded";
  message: string;
  releaseId: string | null;
  failure?: { reason: string; code: string; instanceId: string | null; output: string[] } | null;
}

export interface ErrorBody {
  error: { code: string; message: string; fix?: string };
}
