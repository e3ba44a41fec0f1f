#!/bin/bash
# Real pre-commit run: this checkout as the hook repository, a temporary repository as the user.
set -u
HOOKREPO=${1:-$(cd "$(dirname "$0")/.." && pwd)}
REV=$(git -C $HOOKREPO rev-parse HEAD)
rm -rf /tmp/pc && mkdir /tmp/pc && cd /tmp/pc && git init -q
git config user.email t@t; git config user.name t
cat > .pre-commit-config.yaml <<YAML
repos:
  - repo: $HOOKREPO
    rev: $REV
    hooks:
      - id: codeseed-audit
YAML
echo "torch==2.13.0" > /tmp/torch-constraint.txt
export PIP_CONSTRAINT=/tmp/torch-constraint.txt PRE_COMMIT_HOME=/tmp/pc-home
cp $HOOKREPO/fixtures/sample-py/inventory/store.py store.py
git add . && git commit -qm base --no-verify
pre-commit install
time pre-commit install-hooks
# 1. a bad commit: a planted random token
python3 - <<'PY'
import random, string
r = random.Random(7); tok = "".join(r.choice(string.ascii_letters + string.digits) for _ in range(40))
s = open("store.py").read().replace("REORDER_POINT = 5", f'REORDER_POINT = 5\nAPI_KEY = "{tok}"')
open("store.py", "w").write(s)
PY
git add store.py
if git commit -qm "bad: token"; then echo "BAD COMMIT WENT THROUGH"; else echo "bad commit blocked (exit $?)"; fi
# 2. a clean commit
git checkout -q store.py 2>/dev/null; git reset -q --hard
sed -i 's/REORDER_POINT = 5/REORDER_POINT = 6/' store.py
git add store.py
if git commit -qm "clean change"; then echo "clean commit accepted"; else echo "CLEAN COMMIT BLOCKED"; fi
git log --oneline
