// Shell completion scripts generated from the command table, so a new command or flag is
// completed without anyone editing a script by hand. Process and release ids come from the
// running daemon through the hidden `rollbridge __complete processes|releases` command.
import { GLOBAL_OPTIONS, type Command, type DynamicValues, type OptionSpec } from "./command.js";

export type Shell = "bash" | "zsh" | "fish";
export const SHELLS: Shell[] = ["bash", "zsh", "fish"];

const POLICY_VALUES = ["proxied", "companion", "singleton", "service"];

type ValueKind = { kind: "file" } | { kind: "words"; words: string[] } | { kind: "dynamic"; what: DynamicValues } | { kind: "free" };

/** What a string flag's value is: a path (complete files), one of a few words, ids from the daemon, or free text. */
function valueKind(name: string, spec: OptionSpec): ValueKind {
  if (spec.complete !== undefined) return { kind: "dynamic", what: spec.complete };
  if (name === "policy") return { kind: "words", words: POLICY_VALUES };
  if (name === "config" || name === "file" || name.endsWith("-path") || spec.valueName === "FILE" || spec.valueName === "PATH") return { kind: "file" };
  return { kind: "free" };
}

function flagsOf(spec: OptionSpec, name: string): string[] {
  return spec.short ? [`--${name}`, `-${spec.short}`] : [`--${name}`];
}

/** The script for `shell`: `source <(rollbridge completion bash)` installs it. */
export function completionScript(shell: Shell, commands: readonly Command[]): string {
  switch (shell) {
    case "bash":
      return bashScript(commands);
    case "zsh":
      return zshScript(commands);
    case "fish":
      return fishScript(commands);
    default: {
      const _exhaustive: never = shell;
      return _exhaustive;
    }
  }
}

function bashScript(commands: readonly Command[]): string {
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
      const pattern = flagsOf(spec, name)
        .map((f) => `${c.name}:${f}`)
        .join("|");
      if (kind.kind === "file") valueCases.push(`    ${pattern}) COMPREPLY=( $(compgen -f -- "$cur") ); return 0 ;;`);
      else if (kind.kind === "words") valueCases.push(`    ${pattern}) COMPREPLY=( $(compgen -W "${kind.words.join(" ")}" -- "$cur") ); return 0 ;;`);
      else if (kind.kind === "dynamic") valueCases.push(`    ${pattern}) COMPREPLY=( $(compgen -W "$(_rollbridge_ids ${kind.what})" -- "$cur") ); return 0 ;;`);
      else valueCases.push(`    ${pattern}) COMPREPLY=(); return 0 ;;`);
    }
    const words = [...(c.positional?.choices ?? []), ...flags].join(" ");
    flagCases.push(`    ${c.name}) words="${words}" ;;`);
  }
  return `# bash completion for rollbridge. Install: source <(rollbridge completion bash)  (e.g. in ~/.bashrc)
# Ids the running daemon knows (processes, releases), for the --config on the command line.
_rollbridge_ids() {
  local i config=()
  for (( i = 1; i < \${#COMP_WORDS[@]}; i++ )); do
    case "\${COMP_WORDS[i]}" in
      --config|-c) config=(--config "\${COMP_WORDS[i+1]}") ;;
      --config=*) config=(--config "\${COMP_WORDS[i]#--config=}") ;;
    esac
  done
  "\${COMP_WORDS[0]}" __complete "$1" "\${config[@]}" 2>/dev/null
}
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
    switch (kind.kind) {
      case "file":
        value = `:${label}:_files`;
        break;
      case "words":
        value = `:${label}:(${kind.words.join(" ")})`;
        break;
      case "dynamic":
        value = `:${label}:_rollbridge_ids ${kind.what}`;
        break;
      case "free":
        value = `:${label}: `;
        break;
      default: {
        const _exhaustive: never = kind;
        return _exhaustive;
      }
    }
  }
  const repeat = spec.multiple ? "*" : "";
  if (spec.short) return `'${repeat}(-${spec.short} --${name})'{-${spec.short},--${name}}'[${description}]${value}'`;
  return `'${repeat}--${name}[${description}]${value}'`;
}

function zshScript(commands: readonly Command[]): string {
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
# Ids the running daemon knows (processes, releases), for the --config on the command line.
_rollbridge_ids() {
  local -a ids config
  local i
  for (( i = 1; i < \${#words}; i++ )); do
    case \${words[i]} in
      --config|-c) config=(--config "\${(Q)words[i+1]}") ;;
      --config=*) config=(--config "\${(Q)words[i]#--config=}") ;;
    esac
  done
  ids=(\${(f)"$(\${_rollbridge_bin:-rollbridge} __complete $1 $config 2>/dev/null)"})
  compadd -a ids
}
_rollbridge() {
  local -a commands
  commands=(
${describe}
  )
  if (( CURRENT == 2 )); then
    _describe -t commands 'rollbridge command' commands
    return
  fi
  typeset -g _rollbridge_bin=\${words[1]}
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

function fishQuote(text: string): string {
  return `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

function fishOption(name: string, spec: OptionSpec, condition: string | null): string {
  const parts = ["complete -c rollbridge"];
  if (condition !== null) parts.push(`-n ${fishQuote(condition)}`);
  if (spec.short) parts.push(`-s ${spec.short}`);
  parts.push(`-l ${name}`, `-d ${fishQuote(spec.description)}`);
  if (spec.type === "string") {
    const kind = valueKind(name, spec);
    switch (kind.kind) {
      case "file":
        parts.push("-r -F");
        break;
      case "words":
        parts.push(`-x -a ${fishQuote(kind.words.join(" "))}`);
        break;
      case "dynamic":
        parts.push(`-x -a ${fishQuote(`(__rollbridge_ids ${kind.what})`)}`);
        break;
      case "free":
        parts.push("-x");
        break;
      default: {
        const _exhaustive: never = kind;
        return _exhaustive;
      }
    }
  }
  return parts.join(" ");
}

function fishScript(commands: readonly Command[]): string {
  const lines: string[] = [];
  for (const c of commands) lines.push(`complete -c rollbridge -n __fish_use_subcommand -a ${c.name} -d ${fishQuote(c.summary)}`);
  lines.push(`complete -c rollbridge -n __fish_use_subcommand -s v -l version -d 'print the version'`);
  for (const [name, spec] of Object.entries(GLOBAL_OPTIONS)) lines.push(fishOption(name, spec, null));
  for (const c of commands) {
    const when = `__fish_seen_subcommand_from ${c.name}`;
    for (const [name, spec] of Object.entries(c.options)) lines.push(fishOption(name, spec, when));
    if (c.positional) lines.push(`complete -c rollbridge -n ${fishQuote(when)} -a ${fishQuote(c.positional.choices.join(" "))}`);
  }
  return `# fish completion for rollbridge. Install: rollbridge completion fish > ~/.config/fish/completions/rollbridge.fish
# Ids the running daemon knows (processes, releases), for the --config on the command line.
function __rollbridge_ids
    set -l tokens (commandline -opc)
    set -l config
    for i in (seq (count $tokens))
        switch $tokens[$i]
            case --config -c
                if test $i -lt (count $tokens)
                    set config --config $tokens[(math $i + 1)]
                end
            case '--config=*'
                set config --config (string replace -- --config= '' $tokens[$i])
        end
    end
    $tokens[1] __complete $argv[1] $config 2>/dev/null
end
# Subcommands and flags take no file names unless a flag says so.
complete -c rollbridge -f
${lines.join("\n")}
`;
}
