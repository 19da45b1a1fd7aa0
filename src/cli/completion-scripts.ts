// Shell completion scripts generated from the command table, so a new command or flag is
// completed without anyone editing a script by hand.
import { GLOBAL_OPTIONS, type Command, type OptionSpec } from "./command.js";

export type Shell = "bash" | "zsh";
export const SHELLS: Shell[] = ["bash", "zsh"];

const POLICY_VALUES = ["proxied", "companion", "singleton", "service"];

type ValueKind = { kind: "file" } | { kind: "words"; words: string[] } | { kind: "free" };

/** What a string flag's value is: a path (complete files), one of a few words, or free text. */
function valueKind(name: string, spec: OptionSpec): ValueKind {
  if (name === "policy") return { kind: "words", words: POLICY_VALUES };
  if (name === "config" || name === "file" || name.endsWith("-path") || spec.valueName === "FILE" || spec.valueName === "PATH") return { kind: "file" };
  return { kind: "free" };
}

function flagsOf(spec: OptionSpec, name: string): string[] {
  return spec.short ? [`--${name}`, `-${spec.short}`] : [`--${name}`];
}

/** The script for `shell`; `source <(rollbridge completion bash)` installs it. */
export function completionScript(shell: Shell, commands: Command[]): string {
  switch (shell) {
    case "bash":
      return bashScript(commands);
    case "zsh":
      return zshScript(commands);
    default: {
      const _exhaustive: never = shell;
      return _exhaustive;
    }
  }
}

function bashScript(commands: Command[]): string {
  const all = (c: Command) => ({ ...GLOBAL_OPTIONS, ...c.options });
  const names = commands.map((c) => c.name).join(" ");
  const valueCases: string[] = [];
  const flagCases: string[] = [];
  for (const c of commands) {
    const flags: string[] = [];
    for (const [name, spec] of Object.entries(all(c))) {
      flags.push(...flagsOf(spec, name));
      if (spec.type !== "string") continue;
      const kind = valueKind(name, spec);
      const pattern = flagsOf(spec, name).map((f) => `${c.name}:${f}`).join("|");
      if (kind.kind === "file") valueCases.push(`    ${pattern}) COMPREPLY=( $(compgen -f -- "$cur") ); return 0 ;;`);
      else if (kind.kind === "words") valueCases.push(`    ${pattern}) COMPREPLY=( $(compgen -W "${kind.words.join(" ")}" -- "$cur") ); return 0 ;;`);
      else valueCases.push(`    ${pattern}) COMPREPLY=(); return 0 ;;`);
    }
    const words = [...(c.positional?.choices ?? []), ...flags].join(" ");
    flagCases.push(`    ${c.name}) words="${words}" ;;`);
  }
  return `# bash completion for rollbridge. Install: source <(rollbridge completion bash)  (e.g. in ~/.bashrc)
_rollbridge() {
  local cur prev cmd words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev=""
  if [ "$COMP_CWORD" -gt 0 ]; then prev="\${COMP_WORDS[COMP_CWORD-1]}"; fi
  if [ "$COMP_CWORD" -le 1 ]; then
    COMPREPLY=( $(compgen -W "${names} --help --version" -- "$cur") )
    return 0
  fi
  cmd="\${COMP_WORDS[1]}"
  case "$cmd:$prev" in
${valueCases.join("\n")}
  esac
  case "$cmd" in
${flagCases.join("\n")}
    *) words="" ;;
  esac
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
  return 0
}
complete -o default -F _rollbridge rollbridge
`;
}

function zshQuote(text: string): string {
  return text.replace(/'/g, "'\\''").replace(/\[/g, "\\[").replace(/\]/g, "\\]").replace(/:/g, "\\:");
}

function zshSpec(name: string, spec: OptionSpec): string {
  const description = zshQuote(spec.description);
  let value = "";
  if (spec.type === "string") {
    const kind = valueKind(name, spec);
    const label = zshQuote(spec.valueName ?? "VALUE");
    value = kind.kind === "file" ? `:${label}:_files` : kind.kind === "words" ? `:${label}:(${kind.words.join(" ")})` : `:${label}: `;
  }
  const repeat = spec.multiple ? "*" : "";
  if (spec.short) return `'${repeat}(-${spec.short} --${name})'{-${spec.short},--${name}}'[${description}]${value}'`;
  return `'${repeat}--${name}[${description}]${value}'`;
}

function zshScript(commands: Command[]): string {
  const describe = commands.map((c) => `    '${c.name}:${zshQuote(c.summary)}'`).join("\n");
  const cases = commands
    .map((c) => {
      const specs = Object.entries({ ...GLOBAL_OPTIONS, ...c.options }).map(([name, spec]) => zshSpec(name, spec));
      if (c.positional) specs.push(`'1:${zshQuote(c.positional.name)}:(${c.positional.choices.join(" ")})'`);
      return `    ${c.name}) _arguments -s ${specs.join(" ")} ;;`;
    })
    .join("\n");
  return `#compdef rollbridge
# zsh completion for rollbridge. Install: source <(rollbridge completion zsh)  (e.g. in ~/.zshrc, after compinit)
_rollbridge() {
  local -a commands
  commands=(
${describe}
  )
  if (( CURRENT == 2 )); then
    _describe -t commands 'rollbridge command' commands
    return
  fi
  local cmd=\${words[2]}
  shift words
  (( CURRENT-- ))
  case $cmd in
${cases}
  esac
}
if (( $+functions[compdef] )); then
  compdef _rollbridge rollbridge
fi
`;
}
