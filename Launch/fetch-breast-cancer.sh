#!/usr/bin/env bash
# Puts the Wisconsin breast-cancer table (569 tumours, 30 numeric features, malignant or benign)
# in data/breast-cancer (or $1) as train.csv (455 rows) and test.csv (114), for
# Configs/binary-tabular.yaml. It comes from the wheel of scikit-learn 1.6.1 on PyPI, which ships
# it, so a machine whose only network is a package registry can fetch it; the table's SHA-256 is
# checked, and so are the files written: a header of scikit-learn's feature names and a
# `diagnosis` column of words, rows split by a fixed shuffle.
set -euo pipefail
source "$(dirname "$0")/common.sh"

dest=${1:-$DPTRAIN_ROOT/data/breast-cancer}
SOURCE_SHA256=fed3eb72d0575ef6192293f5093c6e801b1476b577d0386bf4455504522172ed
TRAIN_SHA256=51218fcd3e46501a568e6580ee99886d5313a146a39b387cfa60389a27faf06b
TEST_SHA256=e8fc54725d209301d124e43548030d3bf75b8ea167540567aca6de7f3b533f1a

ok() { [ -f "$dest/train.csv" ] && [ -f "$dest/test.csv" ] \
    && [ "$(sha256sum < "$dest/train.csv" | cut -d' ' -f1)" = "$TRAIN_SHA256" ] \
    && [ "$(sha256sum < "$dest/test.csv" | cut -d' ' -f1)" = "$TEST_SHA256" ]; }
if ok; then say "the breast-cancer table is in $dest (checksums verified)"; exit 0; fi

command -v python3 >/dev/null || die "python3 is needed to fetch the table (it comes in scikit-learn's wheel from PyPI)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say "downloading scikit-learn 1.6.1's wheel from PyPI for its breast_cancer.csv"
python3 -m pip download -q --no-deps --only-binary=:all: -d "$work" "scikit-learn==1.6.1" >&2 \
    || die "pip could not download scikit-learn 1.6.1 (is PyPI reachable?)"
mkdir -p "$dest"
python3 - "$work" "$dest" "$SOURCE_SHA256" <<'EOF'
import csv, glob, hashlib, io, random, sys, zipfile
work, dest, expected = sys.argv[1:4]
wheel = glob.glob(work + "/scikit_learn-*.whl")[0]
raw = zipfile.ZipFile(wheel).read("sklearn/datasets/data/breast_cancer.csv")
found = hashlib.sha256(raw).hexdigest()
if found != expected:
    sys.exit(f"fetch-breast-cancer: breast_cancer.csv has SHA-256 {found}, expected {expected}")
rows = list(csv.reader(io.StringIO(raw.decode())))[1:]
parts = ["radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity", "concave points",
         "symmetry", "fractal dimension"]
names = [f"mean {p}" for p in parts] + [f"{p} error" for p in parts] + [f"worst {p}" for p in parts]
order = list(range(len(rows)))
random.Random(1).shuffle(order)
for file, chosen in (("train.csv", order[:455]), ("test.csv", order[455:])):
    with open(f"{dest}/{file}", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(names + ["diagnosis"])
        for i in chosen:
            w.writerow(rows[i][:30] + [("malignant", "benign")[int(rows[i][30])]])
EOF
ok || die "the files written in $dest do not have the expected checksums (train.csv $(sha256sum < "$dest/train.csv" | cut -d' ' -f1))"
say "the breast-cancer table is in $dest (checksums verified): 455 training rows, 114 test rows"
