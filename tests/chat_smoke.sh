#!/usr/bin/env bash
# Smoke test of the fkv-chat program on the default model: a one-shot question gets a coherent answer, and
# bad input gets a clear error with exit status 2, never a crash.
set -uo pipefail
chat="$1"
model="${FKV_MODELS:-$HOME/.cache/fkv}/SmolLM2-135M-Instruct.Q4_1.gguf"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

answer=$("$chat" --model "$model" --backend cpu --prompt "What is the capital of France?" --n-predict 32 --temp 0 \
  2>"$tmp/err") || fail "fkv-chat exited $? ($(cat "$tmp/err"))"
echo "answer: $answer"
grep -q "Paris" <<<"$answer" || fail "the answer does not mention Paris"

expect_error() {  # expect_error WHAT PATTERN ARGS...
  local what="$1" pattern="$2"
  shift 2
  "$chat" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  local rc=$?
  [ $rc -eq 2 ] || fail "$what: exit status $rc, expected 2 (stderr: $(cat "$tmp/err"))"
  grep -qi -- "$pattern" "$tmp/err" || fail "$what: stderr lacks '$pattern': $(cat "$tmp/err")"
  echo "ok: $what -> $(head -c 200 "$tmp/err")"
}
expect_error "missing model" "not found" --model "$tmp/none.gguf" --prompt hi
head -c 1000 "$model" >"$tmp/truncated.gguf"
expect_error "truncated model" "$tmp/truncated.gguf\|truncated\|past the end" --model "$tmp/truncated.gguf" --prompt hi
printf 'not a gguf file at all' >"$tmp/garbage.gguf"
expect_error "not a GGUF file" "magic\|gguf" --model "$tmp/garbage.gguf" --prompt hi
expect_error "context longer than the model allows" "context" --model "$model" --ctx 100000 --prompt hi
expect_error "unknown backend" "backend" --model "$model" --backend nonsense --prompt hi
echo "chat smoke test passed"
