// `logs --follow` and `events --follow`: print an NDJSON stream from the daemon until the user
// interrupts (Ctrl-C) or the daemon goes away.
import { endpointOf, stream, type ControlTarget } from "../control/client.js";
import type { CommandContext } from "./command.js";
import { printError } from "./output.js";
import { RollbridgeError, isRollbridgeError } from "../errors.js";

/** Prints each streamed value (as JSON lines with --json); exit 1 when the daemon ends the stream. */
export async function follow(ctx: CommandContext, socket: ControlTarget, route: string, render: (value: unknown) => string): Promise<number> {
  try {
    await stream(socket, route, (value) => {
      ctx.stdout(ctx.json ? JSON.stringify(value) + "\n" : render(value));
    });
  } catch (error) {
    // Cut for falling behind: the stream was under way, so (as below) stdout stays NDJSON.
    if (isRollbridgeError(error, "STREAM_FELL_BEHIND")) return printError({ ...ctx, json: false }, error, 1);
    throw error;
  }
  const error = new RollbridgeError("DAEMON_NOT_RUNNING", `the daemon closed the stream on ${endpointOf(socket).path} (it stopped or restarted)`, { fix: "rollbridge status shows whether it runs" });
  // With --json stdout is an NDJSON stream: the error goes to stderr only.
  return printError({ ...ctx, json: false }, error, 1);
}
