#!/usr/bin/env bash
# The CLI example of the README, run by crates/pocketdb-cli/tests/cli.rs.
# POCKETDB may name the binary (the test sets it); otherwise `pocketdb` from PATH.
set -euo pipefail
pocketdb() { if [ -n "${POCKETDB:-}" ]; then "$POCKETDB" "$@"; else command pocketdb "$@"; fi; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; cd "$work"

# Import NDJSON into the collection "people" of ./pocketdb-data/test.sqlite.
cat > people.ndjson <<'JSON'
{"_id": 1, "name": "Ada", "age": 36, "langs": ["en", "fr"]}
{"_id": 2, "name": "Linus", "age": 28, "langs": ["fi", "en"]}
{"_id": 3, "name": "Grace", "age": 45, "langs": ["en"]}
JSON
pocketdb import --collection people people.ndjson

# Query with MongoDB filters (relaxed JSON: unquoted keys, single quotes).
pocketdb find --collection people --filter '{age: {$gt: 30}}' --sort '{age: -1}' \
  --projection '{name: 1, _id: 0}'
pocketdb update --collection people --filter '{name: "Linus"}' --update '{$inc: {age: 1}}'
pocketdb count --collection people --filter '{langs: "fr"}'

# Any MongoDB command, reply as JSON.
pocketdb run '{distinct: "people", key: "langs"}'

# The shell reads statements from a pipe, too.
echo 'db.people.find({}, {name: 1, age: 1, _id: 0}).sort({age: 1}).limit(2)' | pocketdb shell
