// Each CLI command's module by name, loaded on demand: a command loads its own code and what
// that imports, not every other command's (commands/index.ts lists them all, for help).
import type { Command } from "../command.js";

export const COMMAND_LOADERS: Readonly<Record<string, () => Promise<Command>>> = {
  validate: async () => (await import("./validate.js")).validateCommand,
  doctor: async () => (await import("./doctor.js")).doctorCommand,
  daemon: async () => (await import("./daemon.js")).daemonCommand,
  "ensure-daemon": async () => (await import("./ensure-daemon.js")).ensureDaemonCommand,
  apply: async () => (await import("./apply.js")).applyCommand,
  diff: async () => (await import("./diff.js")).diffCommand,
  deploy: async () => (await import("./deploy.js")).deployCommand,
  status: async () => (await import("./status.js")).statusCommand,
  logs: async () => (await import("./logs.js")).logsCommand,
  events: async () => (await import("./events.js")).eventsCommand,
  rollback: async () => (await import("./rollback.js")).rollbackCommand,
  promote: async () => (await import("./rollout-control.js")).promoteCommand,
  abort: async () => (await import("./rollout-control.js")).abortCommand,
  pause: async () => (await import("./rollout-control.js")).pauseCommand,
  resume: async () => (await import("./rollout-control.js")).resumeCommand,
  stop: async () => (await import("./stop.js")).stopCommand,
  restart: async () => (await import("./restart.js")).restartCommand,
  upgrade: async () => (await import("./upgrade.js")).upgradeCommand,
  shutdown: async () => (await import("./shutdown.js")).shutdownCommand,
  recover: async () => (await import("./recover.js")).recoverCommand,
  "predeploy-cleanup": async () => (await import("./predeploy-cleanup.js")).predeployCleanupCommand,
  // These two list every command: load them through the table (index.js), so the table's
  // modules evaluate before it is built (importing help.js first would hit the table in its TDZ).
  completion: async () => (await import("./index.js")).COMMANDS.find((c) => c.name === "completion")!,
  help: async () => (await import("./index.js")).COMMANDS.find((c) => c.name === "help")!,
};
