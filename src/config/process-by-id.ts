// The one lookup of a process definition by its id, on the resolved config (or the planner's
// view of it): the executor, status, adoption and supervisors all ask "which process is this
// slot's?" the same way.

/** The process with this id, or undefined when the config (a reloaded one, say) no longer defines it. */
export function processById<P extends { id: string }>(config: { processes: readonly P[] }, id: string): P | undefined {
  return config.processes.find((p) => p.id === id);
}
