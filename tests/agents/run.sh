#!/usr/bin/env bash
# tests/agents/run.sh [BUILD_DIR] [options] — the real coding agents (Claude
# Code, Codex CLI, opencode, pi; pinned in tests/agents/package.json) against
# a flashpool server on 127.0.0.1, with the settings measured in
# ../shared/docs/client-contract.md. NOT part of `make test` (heavy: ~1 GB of
# npm packages, minutes of prefill on the real engine). Results: docs/agents.md.
#
# For each agent a fresh server (free loopback port) and a fresh HOME:
#   tool run  the prompt makes the model emit a DSML tool call (apiserve: the
#             scripted backend's [[call NAME KEY=VALUE]] directive; serve: the
#             TEST-ONLY --test-script token source), the agent runs
#             `printf %s_%s fpmark PID` (prints the marker fpmark_PID), sends the result back, and the model answers.
#             Checked: exit 0, a generation with calls=1 in the server log,
#             a later request, and the marker inside that later request
#             (apiserve echoes the tool result into the answer; serve: the
#             --log-tokens prompt of the follow-up decodes to text holding it).
#   text run  a plain "say hi" on the same server (serve: sampled by the tiny
#             random model, so the text is noise; the bar is exit 0, no error).
# Every request must get HTTP 200 (non-200 lines in the server log fail).
#
# Options:
#   --server apiserve|serve|both   (default both when BUILD/flashpool exists)
#   --clients "claude codex opencode pi"   subset to run
#   --timeout S                    per agent run (default 120 apiserve, 900 serve)
#   --keep                         keep the work dir (logs, homes) and print it
#   --watchdog                     also: Claude Code against apiserve with a 5.5-minute
#                                  simulated prefill and no retries (its stream
#                                  watchdog fires after 300 s without a non-ping event)
#   --full                         serve: Claude Code with its full default prompt too
#                                  (~58k tiny-model tokens, ~25 min of prefill on 2
#                                  cores); by default it gets --tools Bash and a
#                                  one-line --system-prompt there (~3k tokens)
# Env: FP_VECTORS (default ../shared/vectors), FP_THREADS (serve, default 2).
set -uo pipefail
B=build
[ $# -gt 0 ] && [ "${1#-}" = "$1" ] && { B=$1; shift; }
SERVERS="" CLIENTS="claude codex opencode pi" TMO="" KEEP="" FULL="" WATCHDOG=""
while [ $# -gt 0 ]; do
  case "$1" in
    --server) SERVERS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --timeout) TMO=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --full) FULL=1; shift ;;
    --watchdog) WATCHDOG=1; shift ;;
    -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "agents: unknown option $1 (see --help)"; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
vec=${FP_VECTORS:-$root/../shared/vectors}
M="$vec/tiny-s1.gguf"
APISERVE="$root/$B/flashpool-apiserve"
FP="$root/$B/flashpool"
TOKENIZE="$root/$B/flashpool-tokenize"
[ -r "$M" ] || { echo "agents: $M missing (set FP_VECTORS)"; exit 1; }
[ -x "$TOKENIZE" ] || { echo "agents: $TOKENIZE missing (run make)"; exit 1; }
command -v node >/dev/null || { echo "agents: node is required"; exit 1; }
if [ -z "$SERVERS" ]; then
  SERVERS=apiserve
  "$FP" serve --help 2>/dev/null | grep -q -- --test-script && SERVERS="apiserve serve"
fi
[ "$SERVERS" = both ] && SERVERS="apiserve serve"

# The CLIs: pinned versions, installed here once (npm ci; ~1 GB, a few minutes).
if [ ! -x "$here/node_modules/.bin/claude" ] || [ ! -x "$here/node_modules/.bin/codex" ] ||
   [ ! -x "$here/node_modules/.bin/opencode" ] || [ ! -x "$here/node_modules/.bin/pi" ]; then
  echo "agents: installing the pinned CLIs into tests/agents/node_modules (npm ci)"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) || { echo "agents: npm ci failed"; exit 1; }
fi
BIN="$here/node_modules/.bin"

OUT=$(mktemp -d /tmp/fp-agents.XXXXXX)
SPID= CPID=
cleanup() {
  [ -n "$CPID" ] && kill -TERM "$CPID" 2>/dev/null   # timeout passes it on to the agent
  [ -n "$SPID" ] && kill -KILL "$SPID" 2>/dev/null
  wait 2>/dev/null
  if [ -n "$KEEP" ]; then echo "agents: work dir kept: $OUT"; else rm -rf "$OUT"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The tool prints MARK; its command line CMD does not contain MARK, so finding
# MARK in a follow-up prompt proves the tool's output was sent back.
MARK="fpmark_$$"
CMD="printf %s_%s fpmark $$"
D=$'\xef\xbd\x9c''DSML'$'\xef\xbd\x9c'
THINK_END='</think>'

server_start() {   # server_start KIND DIR: sets SPID and PORT
  local kind=$1 dir=$2
  rm -f "$dir/port"
  if [ "$kind" = apiserve ]; then
    "$APISERVE" --gguf "$M" --host 127.0.0.1 --port 0 --port-file "$dir/port" --ctx 1000000 \
      ${APISERVE_ARGS:-} >"$dir/server.log" 2>&1 &
  else
    "$FP" serve -m "$M" --host 127.0.0.1 --port 0 --port-file "$dir/port" --ctx 131072 \
      --threads "${FP_THREADS:-2}" --test-script "$dir/script.txt" --log-tokens "$dir/tokens.log" \
      >"$dir/server.log" 2>&1 &
  fi
  SPID=$!
  for _ in $(seq 300); do [ -s "$dir/port" ] && break; kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
  [ -s "$dir/port" ] || { echo "agents: $kind did not start:"; tail -n 20 "$dir/server.log"; return 1; }
  PORT=$(cat "$dir/port")
}
server_stop() {
  [ -n "$SPID" ] || return 0
  kill -TERM "$SPID" 2>/dev/null
  for _ in $(seq 300); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SPID" 2>/dev/null
  wait "$SPID" 2>/dev/null
  SPID=
}

# Per-client settings (client-contract.md §1-4). TOOL/KEY: the agent's shell tool.
client_info() {   # sets TOOL KEY ENDPOINT
  case "$1" in
    claude)   TOOL=Bash KEY=command ENDPOINT=/v1/messages ;;
    codex)    TOOL=exec_command KEY=cmd ENDPOINT=/v1/responses ;;
    opencode) TOOL=bash KEY=command ENDPOINT=/v1/chat/completions ;;
    pi)       TOOL=bash KEY=command ENDPOINT=/v1/chat/completions ;;
  esac
}
client_setup() {   # client_setup NAME HOME
  local h=$2
  case "$1" in
    codex) mkdir -p "$h/.codex"
      sed "s#http://127.0.0.1:18080/v1#http://127.0.0.1:$PORT/v1#" "$here/configs/codex-config.toml" >"$h/.codex/config.toml" ;;
    opencode) mkdir -p "$h/.config/opencode"
      sed "s#http://127.0.0.1:18080/v1#http://127.0.0.1:$PORT/v1#" "$here/configs/opencode.json" >"$h/.config/opencode/opencode.json" ;;
    pi) mkdir -p "$h/.pi/agent"
      sed "s#http://127.0.0.1:18080/v1#http://127.0.0.1:$PORT/v1#" "$here/configs/pi-models.json" >"$h/.pi/agent/models.json" ;;
  esac
}
# client_run NAME HOME PROMPT OUTPREFIX: runs the agent non-interactively; returns its exit code.
client_run() {
  local name=$1 h=$2 prompt=$3 o=$4 rc
  mkdir -p "$h/work"
  # Loopback only: any attempt to leave the machine goes to a closed port
  # (opencode's bun install of @opencode-ai/plugin, update checks).
  local px=(HOME="$h" HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9
            https_proxy=http://127.0.0.1:9 http_proxy=http://127.0.0.1:9
            NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost)
  local cmd
  case "$name" in
    claude) cmd=(env "${px[@]}" ANTHROPIC_BASE_URL="http://127.0.0.1:$PORT" ANTHROPIC_AUTH_TOKEN=dummy
                 ANTHROPIC_MODEL=deepseek-v4-flash CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1
                 CLAUDE_CODE_ATTRIBUTION_HEADER=0
                 "$BIN/claude" -p "$prompt" --allowedTools "Bash($CMD)" --output-format stream-json --verbose)
            # The tiny model's 512-token vocabulary makes Claude Code's default
            # prompt ~58k tokens: too slow to prefill on the real engine here.
            [ "$LEAN" = 1 ] && cmd+=(--tools Bash --system-prompt "You are a test agent. Use the Bash tool when asked to run a command.") ;;
    codex) cmd=(env "${px[@]}" CODEX_HOME="$h/.codex" LOCAL_API_KEY=dummy
                "$BIN/codex" exec --skip-git-repo-check "$prompt") ;;
    opencode) cmd=(env "${px[@]}" OPENCODE_DISABLE_MODELS_FETCH=1 OPENCODE_DISABLE_AUTOUPDATE=1
                   "$BIN/opencode" run --model local/deepseek-v4-flash "$prompt") ;;
    pi) cmd=(env "${px[@]}" PI_OFFLINE=1 "$BIN/pi" -p --provider local --model deepseek-v4-flash "$prompt") ;;
  esac
  # In the background + wait, so an INT/TERM trap runs at once and can stop it.
  (cd "$h/work" && exec timeout -k 5 "$TIMEOUT" "${cmd[@]}" </dev/null >"$o.stdout" 2>"$o.stderr") &
  CPID=$!
  wait "$CPID"
  rc=$?
  CPID=
  return $rc
}

# Scripted replies for `serve --test-script`: request k gets reply k. The
# server runs with thinking on (default high), so each reply closes the
# reasoning first. Two calls then the answer: opencode's first turn has an
# extra title request (no tools declared, so its "call" stays text) that may
# come before or after the main one.
write_script() {   # write_script FILE TOOL KEY
  local call="Running the command.</think>I will run it.

<${D}tool_calls>
<${D}invoke name=\"$2\">
<${D}parameter name=\"$3\" string=\"true\">$CMD</${D}parameter>
</${D}invoke>
</${D}tool_calls>"
  { echo "$call"; echo "%%"; [ "$1" != "${1%opencode/script.txt}" ] && { echo "$call"; echo "%%"; }
    echo "The command ran.</think>The tool printed the marker; done."; } >"$1"
}

# marker_in_followup DIR: does a prompt after the first scripted call hold MARK?
marker_in_followup() {
  local dir=$1
  [ -s "$dir/tokens.log" ] || return 1
  python3 - "$dir/tokens.log" <<'EOF' | "$TOKENIZE" decode -m "$M" 2>/dev/null | grep -q "$MARK"
import re, sys
for line in open(sys.argv[1]):
    m = re.search(r' prompt=(\[[0-9,]*\])', line)
    if m: print(m.group(1))
EOF
}

results=()
row() { results+=("$(printf '%-9s %-9s %-10s %-22s %-6s %-6s %s' "$@")"); }
total_fail=0

for kind in $SERVERS; do
  LEAN=0
  if [ "$kind" = apiserve ]; then
    [ -x "$APISERVE" ] || { echo "agents: $APISERVE missing (run make)"; total_fail=$((total_fail + 1)); continue; }
    TIMEOUT=${TMO:-120}
  else
    "$FP" serve --help 2>/dev/null | grep -q -- --test-script ||
      { echo "agents: $FP serve (with --test-script) missing"; total_fail=$((total_fail + 1)); continue; }
    TIMEOUT=${TMO:-900}
    [ -z "$FULL" ] && LEAN=1
  fi
  for c in $CLIENTS; do
    client_info "$c"
    dir="$OUT/$kind/$c"; mkdir -p "$dir"
    ver=$("$BIN/$c" --version 2>&1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)
    [ "$kind" = serve ] && write_script "$dir/script.txt" "$TOOL" "$KEY"
    echo "agents: $kind / $c $ver ($ENDPOINT) ..."
    t0=$(date +%s)
    server_start "$kind" "$dir" || { row "$kind" "$c" "$ver" "$ENDPOINT" "-" "-" "server did not start"; total_fail=$((total_fail + 1)); continue; }
    # --- tool run (first: the scripted replies go to the first requests)
    h="$dir/home-tool"; mkdir -p "$h"; client_setup "$c" "$h"
    if [ "$kind" = apiserve ]; then prompt="Run the shell command $CMD and tell me what it printed. [[call $TOOL $KEY=$CMD]]"
    else prompt="Run the shell command $CMD and tell me what it printed."; fi
    client_run "$c" "$h" "$prompt" "$dir/tool"; trc=$?
    ncall=$(grep -c ' gen .* calls=[1-9]' "$dir/server.log")
    nreq_tool=$(grep -c "POST $ENDPOINT" "$dir/server.log")
    tnote=""
    tool_ok=yes
    [ "$trc" = 0 ] || { tool_ok=no; tnote+="tool run exit $trc; "; }
    [ "$ncall" -ge 1 ] || { tool_ok=no; tnote+="no tool call in the log; "; }
    [ "$nreq_tool" -ge 2 ] || { tool_ok=no; tnote+="no follow-up request; "; }
    if [ "$kind" = apiserve ]; then
      tr -d '\n' <"$dir/tool.stdout" | grep -q "The tool said:.*$MARK" ||
        { tool_ok=no; tnote+="tool result not echoed back; "; }
    else
      marker_in_followup "$dir" || { tool_ok=no; tnote+="marker not in a follow-up prompt; "; }
      grep -q "printed the marker" "$dir/tool.stdout" || { tool_ok=no; tnote+="scripted answer not shown; "; }
    fi
    # --- text run
    h="$dir/home-text"; mkdir -p "$h"; client_setup "$c" "$h"
    client_run "$c" "$h" "say hi" "$dir/text"; xrc=$?
    nreq=$(grep -c "POST $ENDPOINT" "$dir/server.log")
    text_ok=yes
    [ "$xrc" = 0 ] || { text_ok=no; tnote+="text run exit $xrc; "; }
    [ "$nreq" -gt "$nreq_tool" ] || { text_ok=no; tnote+="text run sent no request; "; }
    if [ "$kind" = apiserve ]; then
      grep -q "Hello from the scripted backend" "$dir/text.stdout" || { text_ok=no; tnote+="no answer printed; "; }
    fi
    bad=$(grep -E '^[a-z]+: (GET|POST|HEAD|PUT|DELETE) ' "$dir/server.log" | grep -vE ' 200 |HEAD / ' | head -3 | tr '\n' ';')
    [ -z "$bad" ] || { text_ok=no; tool_ok=no; tnote+="non-200: $bad "; }
    kill -0 "$SPID" 2>/dev/null || { text_ok=no; tnote+="server died; "; }
    server_stop
    t1=$(date +%s)
    [ -z "$tnote" ] && tnote="$nreq requests, $((t1 - t0)) s"
    [ "$c" = claude ] && [ "$LEAN" = 1 ] && tnote+=" (--tools Bash, short --system-prompt)"
    [ "$tool_ok" = yes ] && [ "$text_ok" = yes ] || {
      total_fail=$((total_fail + 1))
      echo "  FAIL $kind/$c: $tnote"
      for f in tool text; do
        echo "  -- $f stdout/stderr (tail)"; tail -c 1200 "$dir/$f.stdout" | sed 's/^/     /'
        tail -c 1200 "$dir/$f.stderr" | sed 's/^/     /'
      done
      echo "  -- server log (tail)"; tail -n 15 "$dir/server.log" | sed 's/^/     /'
    }
    row "$kind" "$c" "$ver" "$ENDPOINT" "$text_ok" "$tool_ok" "$tnote"
  done
done

# Claude Code's stream watchdog (300 s; pings do not count): a ~330 s prefill
# (3k-token prompt, 7 s per 64 tokens) must still answer on the first try.
if [ -n "$WATCHDOG" ] && [ -x "$APISERVE" ]; then
  dir="$OUT/watchdog"; mkdir -p "$dir/home"
  echo "agents: watchdog / claude (about 6 min) ..."
  APISERVE_ARGS="--prefill-delay-ms 7000" server_start apiserve "$dir" && {
    TIMEOUT=700 LEAN=1
    CLAUDE_CODE_MAX_RETRIES=0 client_run claude "$dir/home" "say hi" "$dir/text"; wrc=$?
    n=$(grep -c "POST /v1/messages" "$dir/server.log")
    server_stop
    wok=yes wnote="1 request, exit 0"
    if [ "$wrc" != 0 ] || [ "$n" != 1 ] || ! grep -q "Hello from the scripted backend" "$dir/text.stdout"; then
      wok=no wnote="exit $wrc, $n requests"; total_fail=$((total_fail + 1))
      tail -n 5 "$dir/server.log" | sed 's/^/     /'
    fi
    row watchdog claude "" /v1/messages "$wok" "-" "$wnote (330 s prefill)"
  }
fi

echo
printf '%-9s %-9s %-10s %-22s %-6s %-6s %s\n' server client version endpoint text tool notes
for r in "${results[@]}"; do echo "$r"; done
[ "$total_fail" = 0 ] && echo "agents: all passed" || echo "agents: $total_fail failed"
[ "$total_fail" = 0 ]
