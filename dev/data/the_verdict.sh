#!/usr/bin/env bash
# the-verdict -> token shards with the book's split (ch05): train = first int(0.9 * 20479) = 18431
# characters (4,612 tokens), val = the rest (534 tokens), each tokenized on its own, no <|endoftext|>
# added — token for token the book's train_data / val_data.
# Output: data/the-verdict/the_verdict_{train,val}.bin
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
TOK="$BUILD/tokenizer"
[[ -x "$TOK" ]] || { echo "error: $TOK not built (cmake --build $BUILD --target tokenizer)" >&2; exit 2; }
mkdir -p data/the-verdict
"$TOK" prepare --no-eot --val-fraction 0.1 -o data/the-verdict/the_verdict data/the-verdict.txt
