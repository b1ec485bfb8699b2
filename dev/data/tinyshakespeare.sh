#!/usr/bin/env bash
# tinyshakespeare -> llm.c token shards, exactly as llm.c's dev/data/tinyshakespeare.py (no Python):
# every "\n\n"-ended section of data/tinyshakespeare.txt is a document with a leading <|endoftext|>,
# the first 32,768 tokens are the validation split, the remaining 305,260 the training split.
# Output: data/tinyshakespeare/tiny_shakespeare_{val,train}.bin
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
TOK="$BUILD/tokenizer"
[[ -x "$TOK" ]] || { echo "error: $TOK not built (cmake --build $BUILD --target tokenizer)" >&2; exit 2; }
mkdir -p data/tinyshakespeare
"$TOK" prepare --paragraph-docs --val-tokens 32768 -o data/tinyshakespeare/tiny_shakespeare data/tinyshakespeare.txt
