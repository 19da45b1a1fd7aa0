// Every CLI command, in the order `--help` lists them.
import type { Command } from "../command.js";
import { applyCommand } from "./apply.js";
import { completionCommand } from "./completion.js";
import { daemonCommand } from "./daemon.js";
import { deployCommand } from "./deploy.js";
import { diffCommand } from "./diff.js";
import { doctorCommand } from "./doctor.js";
import { ensureDaemonCommand } from "./ensure-daemon.js";
import { eventsCommand } from "./events.js";
import { helpCommand } from "./help.js";
import { logsCommand } from "./logs.js";
import { predeployCleanupCommand } from "./predeploy-cleanup.js";
import { recoverCommand } from "./recover.js";
import { restartCommand } from "./restart.js";
import { rollbackCommand } from "./rollback.js";
import { abortCommand, pauseCommand, promoteCommand, resumeCommand } from "./rollout-control.js";
import { shutdownCommand } from "./shutdown.js";
import { statusCommand } from "./status.js";
import { stopCommand } from "./stop.js";
import { upgradeCommand } from "./upgrade.js";
import { validateCommand } from "./validate.js";

export const COMMANDS: Command[] = [
  validateCommand,
  doctorCommand,
  daemonCommand,
  ensureDaemonCommand,
  applyCommand,
  diffCommand,
  deployCommand,
  statusCommand,
  logsCommand,
  eventsCommand,
  rollbackCommand,
  promoteCommand,
  abortCommand,
  pauseCommand,
  resumeCommand,
  stopCommand,
  restartCommand,
  upgradeCommand,
  shutdownCommand,
  recoverCommand,
  predeployCleanupCommand,
  completionCommand,
  helpCommand,
];
