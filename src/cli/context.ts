// Loading the config for a command and reaching its daemon.
import { loadConfig, type LoadedConfig } from "../config/load.js";
import { request } from "../control/client.js";
import type { CommandContext } from "./command.js";

export async function configFor(ctx: CommandContext): Promise<LoadedConfig> {
  return loadConfig(ctx.values.config as string | undefined, ctx.cwd);
}

export async function daemonRequest<T>(ctx: CommandContext, method: string, route: string, body?: unknown, timeoutMs?: number): Promise<{ loaded: LoadedConfig; result: T }> {
  const loaded = await configFor(ctx);
  const result = await request<T>(loaded.config.control.path, method, route, body, timeoutMs);
  return { loaded, result };
}
