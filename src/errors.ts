// Errors carry a stable `code` so the control API can map them to HTTP statuses
// and the CLI to messages and exit codes; tests assert on the code, not the text.
export type ErrorCode =
  | "CONFIG_NOT_FOUND"
  | "CONFIG_INVALID"
  | "CONFIG_LOAD_FAILED"
  | "DESIRED_INVALID"
  | "DESIRED_NOT_FOUND"
  | "TEMPLATE_UNRESOLVED"
  | "TEMPLATE_UNSAFE"
  | "STREAM_FELL_BEHIND"
  | "PORT_RANGE_EXHAUSTED"
  | "SPAWN_FAILED"
  | "HEALTH_FAILED"
  | "LISTENER_NOT_OWNED"
  | "PROCESS_EXITED"
  | "DAEMON_NOT_RUNNING"
  | "DAEMON_ALREADY_RUNNING"
  | "CONTROL_REQUEST_FAILED"
  | "UNKNOWN_RELEASE"
  | "UNKNOWN_PROCESS"
  | "NO_PREVIOUS_RELEASE"
  | "RELEASE_ALREADY_ACTIVE"
  | "NO_ROLLOUT"
  | "NOT_SUPPORTED"
  | "DAEMON_START_FAILED"
  | "ROLLOUT_FAILED"
  | "ROLLED_BACK"
  | "TIMEOUT"
  | "STATE_FILE_INVALID"
  | "STOP_FAILED"
  | "UNSAFE_PATH"
  | "UNTRUSTED_SOCKET"
  | "USAGE";

export class RollbridgeError extends Error {
  readonly code: ErrorCode;
  readonly fix: string | undefined;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; fix?: string; details?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "RollbridgeError";
    this.code = code;
    this.fix = options.fix;
    this.details = options.details;
  }
}

export function isRollbridgeError(error: unknown, code?: ErrorCode): error is RollbridgeError {
  return error instanceof RollbridgeError && (code === undefined || error.code === code);
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
