#!/usr/bin/env python3
"""Generates tests/reference/expected.json: MongoDB-semantics reference results for
pocketdb, computed with mongomock and corrected by MongoDB's documentation where the two
disagree.

    pip install -r tests/reference/requirements.txt
    python3 tests/reference/generate.py

The output is deterministic (seeded). Every case runs on a fresh mongomock collection
holding the corpus. Cases whose mongomock answer is known to contradict MongoDB's
documentation are either overridden (OVERRIDES, each with the documented rule) or
skipped (SKIPPED); generated filters that could be decided by mongomock's bool/number
confusion are detected and left out (see `bool_number_risk`).
"""

import copy
import json
import os
import random
import re
import sys

import mongomock

SEED = 20240611
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "expected.json")

MISSING = object()

# ---------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------


def hand_corpus():
    """Documents 1..24: each shape the semantics care about, written out."""
    return [
        {"_id": 1, "a": 1, "b": "apple", "c": {"x": 1, "y": "p"}, "tags": ["red", "green"],
         "nums": [1, 2, 3], "flag": True, "n": None},
        {"_id": 2, "a": 2.5, "b": "Banana", "c": {"x": 2, "y": "q", "z": {"w": 1}},
         "tags": ["green"], "nums": [4, 5], "flag": False},
        {"_id": 3, "a": "3", "b": "cherry", "c": {"y": "p", "x": 1}, "tags": [],
         "nums": [], "flag": 1},
        {"_id": 4, "a": None, "b": "date", "c": {"x": 3}, "tags": "red", "nums": 7, "flag": 0},
        {"_id": 5, "b": "elder\nberry", "c": None, "tags": ["blue", "red", "red"],
         "nums": [[1, 2], [3]], "n": None},
        {"_id": 6, "a": [1, 5], "b": "fig", "c": [{"x": 1}, {"x": 4, "y": "r"}],
         "nums": [1, "1", None, True, {"x": 1}], "items": [{"k": "a", "v": 1}, {"k": "b", "v": 2}]},
        {"_id": 7, "a": [], "b": "grape", "c": {"x": [1, 2], "y": "s"},
         "items": [{"k": "a", "v": 3}, {"k": "c", "v": [1, 9]}], "flag": True},
        {"_id": 8, "a": -4, "b": "", "c": {}, "tags": [["red"], "green"],
         "items": [{"k": "b"}, {"v": 2}], "n": 0},
        {"_id": 9, "a": 0, "b": "Apple pie", "c": {"x": 1.0, "y": "P"}, "nums": [0, -1.5],
         "items": [], "flag": False},
        {"_id": 10, "a": 1.0, "b": ["apple", "kiwi"], "c": "c-string", "nums": [10, 20, 30],
         "items": {"k": "a", "v": 1}},
        {"_id": 11, "a": {"b": 1}, "b": "lemon", "c": {"x": {"x": 1}},
         "tags": ["green", "red"], "nums": [2, [2, 3]], "flag": None},
        {"_id": 12, "a": [{"b": 1}, {"b": 2}], "b": "mango", "c": {"x": 5, "y": ["p", "q"]},
         "nums": [5, 3, 9]},
        {"_id": 13, "a": [[1, 2], [3, 4]], "b": "nectarine", "tags": ["x"], "n": None},
        {"_id": 14, "a": [None, 3], "b": "olive", "c": {"z": {"w": 2}},
         "items": [{"k": "a", "v": 5}, {"k": "a", "v": 6}]},
        {"_id": 15, "a": 100, "b": "Peach", "m": {"0": "zero", "1": "one"},
         "nums": [100], "flag": True},
        {"_id": 16, "a": 7, "b": "quince", "m": ["first", "second"], "tags": ["red"]},
        {"_id": 17, "a": -0.5, "b": "raspberry", "c": {"x": -1}, "flag": "true"},
        {"_id": 18, "a": 42, "b": "straw berry", "nums": [3, 1, 2],
         "items": [{"k": "b", "v": 4}, {"k": "a", "v": 1}]},
        {"_id": 19, "a": "apple", "b": 19, "c": {"x": "1"}, "tags": ["RED"]},
        {"_id": 20, "a": [2, "2", None], "b": None, "c": {"x": None}},
        {"_id": 21, "a": 1e3, "b": "tangerine", "c": {"x": 2, "y": "q"}, "tags": ["green", "blue"],
         "nums": [7, 7]},
        {"_id": 22, "a": [3, [4, 5]], "b": "ugli", "items": [{"k": "c", "v": 0}],
         "flag": False},
        {"_id": 23, "b": "vanilla", "c": {"x": 1, "y": "p"}, "m": {"x": [1, 2]}},
        {"_id": 24, "a": 3, "b": "Watermelon", "c": {"y": "r", "x": 6}, "nums": [-2, 8],
         "tags": ["yellow"]},
    ]


WORDS = ["apple", "Banana", "cherry", "kiwi", "lime", "melon", "Apricot", "berry", "fig",
         "plum", "Pear", "a b", "xyz"]
TAGS = ["red", "green", "blue", "yellow"]


def random_doc(rng, _id):
    doc = {"_id": _id}

    def maybe(p):
        return rng.random() < p

    if maybe(0.85):
        doc["a"] = rng.choice([
            rng.randint(-5, 50), round(rng.uniform(-5, 50), 2), rng.choice(WORDS), None,
            [rng.randint(0, 9) for _ in range(rng.randint(0, 3))], rng.randint(2, 9)])
    if maybe(0.9):
        doc["b"] = rng.choice(WORDS + [rng.choice(WORDS) + " " + rng.choice(WORDS)])
    if maybe(0.7):
        c = {}
        if maybe(0.8):
            c["x"] = rng.choice([rng.randint(0, 6), rng.randint(0, 6) + 0.5, None])
        if maybe(0.6):
            c["y"] = rng.choice(["p", "q", "r", "s"])
        if maybe(0.2):
            c["z"] = {"w": rng.randint(0, 3)}
        doc["c"] = c
    if maybe(0.7):
        doc["tags"] = rng.sample(TAGS, rng.randint(0, 3))
    if maybe(0.6):
        doc["nums"] = [rng.randint(-3, 12) for _ in range(rng.randint(0, 4))]
    if maybe(0.5):
        doc["items"] = [{"k": rng.choice("abc"), "v": rng.randint(0, 6)}
                        for _ in range(rng.randint(0, 3))]
    if maybe(0.3):
        doc["n"] = None
    return doc


def build_corpus(rng):
    docs = hand_corpus()
    for _id in range(len(docs) + 1, 41):
        docs.append(random_doc(rng, _id))
    return docs


# ---------------------------------------------------------------------------------------
# JSON <-> mongomock conversion. Regexes are written in the case file as
# {"$regex": pattern, "$options": opts}; mongomock gets a compiled Python regex.
# ---------------------------------------------------------------------------------------

FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


def to_mongomock(v):
    if isinstance(v, dict):
        if "$regex" in v and set(v) <= {"$regex", "$options"}:
            flags = 0
            for o in v.get("$options", ""):
                flags |= FLAGS[o]
            return re.compile(v["$regex"], flags)
        return {k: to_mongomock(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_mongomock(x) for x in v]
    return v


# ---------------------------------------------------------------------------------------
# Path resolution (MongoDB's dotted-path rules), used for risk detection and for the
# documented sort order.
# ---------------------------------------------------------------------------------------


def path_values(doc, parts):
    """Every value a dotted path reaches, descending into arrays as MongoDB does: the
    array itself and (for the last step) its elements."""
    out = []

    def walk(v, i):
        if i == len(parts):
            out.append(v)
            if isinstance(v, list):
                out.extend(v)
            return
        p = parts[i]
        if isinstance(v, dict):
            if p in v:
                walk(v[p], i + 1)
        elif isinstance(v, list):
            if p.isdigit() and int(p) < len(v):
                walk(v[int(p)], i + 1)
            for e in v:
                if isinstance(e, dict):
                    walk(e, i)

    walk(doc, 0)
    return out


def scalars(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from scalars(x)
    elif isinstance(v, list):
        for x in v:
            yield from scalars(x)
    else:
        yield v


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


RANGE_OPS = {"$gt", "$gte", "$lt", "$lte"}


def literal_conflicts(lits, corpus_vals, ranged):
    """True when mongomock's `True == 1`, `False == 0` (or bool/number ordering) could
    decide a comparison between these literals and the corpus values."""
    lit_s = [x for l in lits for x in scalars(l)]
    cor_s = [x for v in corpus_vals for x in scalars(v)]
    lit_bool = any(isinstance(x, bool) for x in lit_s)
    cor_bool = any(isinstance(x, bool) for x in cor_s)
    if ranged:
        return (lit_bool and any(is_num(x) for x in cor_s)) or \
            (cor_bool and any(is_num(x) for x in lit_s))
    lit_01 = any(is_num(x) and x in (0, 1) for x in lit_s)
    cor_01 = any(is_num(x) and x in (0, 1) for x in cor_s)
    return (lit_bool and cor_01) or (lit_01 and cor_bool)


def bool_number_risk(filt, corpus, prefix=()):
    """Walks a filter; True when any comparison could be decided by mongomock treating
    booleans as the numbers 0/1 (MongoDB's docs: booleans and numbers are distinct BSON
    types that never compare equal)."""
    for key, cond in filt.items():
        if key in ("$and", "$or", "$nor"):
            if any(bool_number_risk(f, corpus, prefix) for f in cond):
                return True
            continue
        parts = prefix + tuple(key.split("."))
        vals = [v for d in corpus for v in path_values(d, list(parts))]
        if cond_risk(cond, vals, corpus, parts):
            return True
    return False


def cond_risk(cond, vals, corpus, parts):
    is_ops = isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond)
    if not is_ops:
        return literal_conflicts([cond], vals, False)
    for op, arg in cond.items():
        if op == "$regex" or op == "$options":
            continue
        if op in RANGE_OPS:
            if literal_conflicts([arg], vals, True):
                return True
        elif op in ("$eq", "$ne"):
            if literal_conflicts([arg], vals, False):
                return True
        elif op in ("$in", "$nin", "$all"):
            plain = [x for x in arg if not (isinstance(x, dict) and "$elemMatch" in x)]
            if literal_conflicts(plain, vals, False):
                return True
        elif op == "$not":
            if cond_risk(arg, vals, corpus, parts):
                return True
        elif op == "$elemMatch":
            elem_ops = isinstance(arg, dict) and arg and all(k.startswith("$") for k in arg)
            if elem_ops:
                if cond_risk(arg, vals, corpus, parts):
                    return True
            elif bool_number_risk(arg, corpus, parts):
                return True
        elif op == "$type":
            # Python's bool is an int: any numeric $type query near booleans is suspect.
            if any(isinstance(x, bool) for v in vals for x in scalars(v)):
                return True
    return False


# ---------------------------------------------------------------------------------------
# MongoDB's documented sort order, for the cases where mongomock's differs.
# https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/
#   MinKey < Null (and missing) < Numbers < Symbol, String < Object < Array < BinData
#   < ObjectId < Boolean < Date < ...; an ascending sort compares an array field by its
#   smallest element, a descending sort by its largest; an empty array sorts before null.
# ---------------------------------------------------------------------------------------

EMPTY_ARRAY = ("empty-array",)


def type_rank(v):
    if v is EMPTY_ARRAY:
        return 0
    if v is None or v is MISSING:
        return 1
    if isinstance(v, bool):
        return 7
    if is_num(v):
        return 2
    if isinstance(v, str):
        return 3
    if isinstance(v, dict):
        return 4
    if isinstance(v, list):
        return 5
    raise TypeError(v)


def cmp_values(x, y):
    rx, ry = type_rank(x), type_rank(y)
    if rx != ry:
        return -1 if rx < ry else 1
    if rx in (0, 1):
        return 0
    if rx == 4:
        for (kx, vx), (ky, vy) in zip(x.items(), y.items()):
            tx, ty = type_rank(vx), type_rank(vy)
            if tx != ty:
                return -1 if tx < ty else 1
            if kx != ky:
                return -1 if kx < ky else 1
            c = cmp_values(vx, vy)
            if c:
                return c
        return (len(x) > len(y)) - (len(x) < len(y))
    if rx == 5:
        for vx, vy in zip(x, y):
            c = cmp_values(vx, vy)
            if c:
                return c
        return (len(x) > len(y)) - (len(x) < len(y))
    return (x > y) - (x < y)


def sort_key_value(doc, path, direction):
    """The value MongoDB sorts a document by for one sort key."""
    parts = path.split(".")
    found = []

    def walk(v, i):
        if i == len(parts):
            if isinstance(v, list):
                found.extend(v if v else [EMPTY_ARRAY])
            else:
                found.append(v)
            return
        if isinstance(v, dict):
            walk(v.get(parts[i], MISSING), i + 1)
        elif isinstance(v, list):
            if not v:
                found.append(MISSING)
            if parts[i].isdigit():
                walk(v[int(parts[i])] if int(parts[i]) < len(v) else MISSING, i + 1)
            else:
                for e in v:
                    walk(e, i)
        else:
            found.append(MISSING)

    walk(doc, 0)
    best = found[0]
    for v in found[1:]:
        c = cmp_values(v, best)
        if (direction > 0 and c < 0) or (direction < 0 and c > 0):
            best = v
    return best


def documented_sort(corpus, filt, sort):
    import functools
    docs = [d for d in corpus if d["_id"] in set(run_filter(corpus, filt))]

    def cmp_docs(d1, d2):
        for path, direction in sort.items():
            c = cmp_values(sort_key_value(d1, path, direction), sort_key_value(d2, path, direction))
            if c:
                return c * direction
        return 0

    return [d["_id"] for d in sorted(docs, key=functools.cmp_to_key(cmp_docs))]


def sort_touches_arrays_or_mixed(corpus, sort):
    for path in sort:
        for d in corpus:
            cur = [d]
            for p in path.split("."):
                nxt = []
                for v in cur:
                    if isinstance(v, list):
                        return True
                    if isinstance(v, dict) and p in v:
                        nxt.append(v[p])
                cur = nxt
            if any(isinstance(v, list) for v in cur):
                return True
    return False


# ---------------------------------------------------------------------------------------
# Running cases on mongomock
# ---------------------------------------------------------------------------------------


def fresh(corpus):
    coll = mongomock.MongoClient().db.c
    coll.insert_many(copy.deepcopy(corpus))
    return coll


def run_filter(corpus, filt):
    coll = fresh(corpus)
    return sorted(d["_id"] for d in coll.find(to_mongomock(filt), {"_id": 1}))


def run_sort(corpus, filt, sort):
    coll = fresh(corpus)
    return [d["_id"] for d in coll.find(to_mongomock(filt), {"_id": 1}, sort=list(sort.items()))]


def run_projection(corpus, filt, proj):
    coll = fresh(corpus)
    docs = list(coll.find(to_mongomock(filt), copy.deepcopy(proj), sort=[("_id", 1)]))
    originals = {d["_id"]: d for d in corpus}
    ids = [d["_id"] for d in coll.find(to_mongomock(filt), {"_id": 1}, sort=[("_id", 1)])]
    # MongoDB keeps the document's field order in projections (mongomock moves _id last).
    return [in_order_of(p, originals[i]) for p, i in zip(docs, ids)]


def in_order_of(projected, original):
    if isinstance(projected, dict) and isinstance(original, dict):
        keys = [k for k in original if k in projected] + \
            [k for k in projected if k not in original]
        return {k: in_order_of(projected[k], original.get(k)) for k in keys}
    if isinstance(projected, list) and isinstance(original, list) and \
            len(projected) == len(original):
        return [in_order_of(p, o) for p, o in zip(projected, original)]
    return projected


def exclusion_projection(corpus, case):
    """MongoDB's exclusion projection: drop each path (through arrays of documents),
    leaving non-document parents untouched."""
    spec = case["projection"]
    if any(v not in (0, False) for k, v in spec.items() if k != "_id") or \
            spec.get("_id", 0) not in (0, False):
        return None
    ids = set(run_filter(corpus, case["filter"]))

    def drop(v, parts):
        if isinstance(v, dict):
            if len(parts) == 1:
                v.pop(parts[0], None)
            elif parts[0] in v:
                drop(v[parts[0]], parts[1:])
        elif isinstance(v, list):
            for e in v:
                drop(e, parts)

    out = []
    for d in copy.deepcopy(corpus):
        if d["_id"] in ids:
            for path, v in spec.items():
                if v in (0, False):
                    drop(d, path.split("."))
            out.append(d)
    return {"docs": out}


def run_update(corpus, case):
    coll = fresh(corpus)
    filt = to_mongomock(case["filter"])
    upsert = case.get("upsert", False)
    if "array_filters" in case:
        raise NotImplementedError("mongomock lacks arrayFilters")
    if case["op"] == "replace_one":
        r = coll.replace_one(filt, case["replacement"], upsert=upsert)
    elif case["op"] == "update_one":
        r = coll.update_one(filt, case["update"], upsert=upsert)
    else:
        r = coll.update_many(filt, case["update"], upsert=upsert)
    docs = sorted(coll.find({}), key=lambda d: (str(type(d["_id"])), d["_id"]))
    return {"matched": r.matched_count, "modified": r.modified_count,
            "upserted_id": r.upserted_id, "docs": docs}


def run_case(corpus, case):
    kind = case["kind"]
    try:
        if kind == "filter":
            return {"ids": run_filter(corpus, case["filter"])}
        if kind == "sort":
            return {"ids": run_sort(corpus, case["filter"], case["sort"])}
        if kind == "projection":
            return {"docs": run_projection(corpus, case["filter"], case["projection"])}
        if kind == "update":
            return run_update(corpus, case)
    except Exception:  # noqa: BLE001 - any mongomock failure is an expected error
        return {"error": True}
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------
# Hand-written cases
# ---------------------------------------------------------------------------------------

def rx(pattern, options=""):
    return {"$regex": pattern, "$options": options}


HAND_FILTERS = {
    # $eq and implicit equality
    "eq-int": {"a": 1},
    "eq-float-int": {"a": 2.5},
    "eq-op": {"a": {"$eq": 7}},
    "eq-string": {"b": "apple"},
    "eq-string-vs-number": {"a": "3"},
    "eq-number-vs-string": {"b": 19},
    "eq-in-array": {"tags": "red"},
    "eq-whole-array": {"tags": ["green", "red"]},
    "eq-whole-array-order": {"tags": ["red", "green"]},
    "eq-empty-array": {"tags": []},
    "eq-nested-array-elem": {"tags": ["red"]},
    "eq-embedded-doc": {"c": {"x": 1, "y": "p"}},
    "eq-embedded-doc-order": {"c": {"y": "p", "x": 1}},
    "eq-embedded-empty": {"c": {}},
    "eq-embedded-in-array": {"c": {"x": 1}},
    "eq-array-of-arrays": {"nums": [1, 2]},
    "eq-null": {"a": None},
    "eq-null-n": {"n": None},
    "eq-op-null": {"c.x": {"$eq": None}},
    "eq-dotted": {"c.x": 1},
    "eq-dotted-deep": {"c.z.w": 2},
    "eq-dotted-through-array": {"c.x": 4},
    "eq-dotted-array-of-objects": {"items.k": "c"},
    "eq-dotted-array-value": {"items.v": 9},
    "eq-dotted-nested-key": {"c.x.x": 1},
    "eq-dotted-array-in-doc": {"c.x": 2},
    "eq-dotted-array-in-doc-whole": {"c.x": [1, 2]},
    "eq-index-0": {"nums.0": 1},
    "eq-index-1": {"nums.1": 2},
    "eq-index-out-of-range": {"nums.5": 1},
    "eq-index-object-key": {"m.0": "zero"},
    "eq-index-array": {"m.1": "second"},
    "eq-index-in-path": {"items.0.k": "a"},
    "eq-index-nested-array": {"nums.0.1": 2},
    "eq-index-on-scalar": {"a.0": 1},
    "eq-index-elem-array": {"a.1": [4, 5]},
    "eq-dotted-a-b": {"a.b": 1},
    "eq-mixed-array-string": {"nums": "1"},
    "eq-mixed-array-object": {"nums": {"x": 1}},
    "eq-id": {"_id": 5},
    "eq-case-sensitive": {"b": "Apple"},
    "eq-multi-field": {"c.y": "p", "tags": "green"},
    # $ne
    "ne-int": {"a": {"$ne": 1}},
    "ne-null": {"a": {"$ne": None}},
    "ne-array-elem": {"tags": {"$ne": "red"}},
    "ne-dotted": {"c.x": {"$ne": 1}},
    "ne-dotted-array": {"items.k": {"$ne": "a"}},
    # ranges
    "gt-int": {"a": {"$gt": 2}},
    "gte-int": {"a": {"$gte": 3}},
    "lt-int": {"a": {"$lt": 1}},
    "lte-float": {"a": {"$lte": 2.5}},
    "gt-string": {"b": {"$gt": "m"}},
    "lt-string-upper": {"b": {"$lt": "a"}},
    "gt-string-vs-number": {"a": {"$gt": "2"}},
    "gt-array-elem": {"nums": {"$gt": 25}},
    "gt-lt-array-any": {"nums": {"$gt": 3, "$lt": 5}},
    "gt-dotted-array": {"items.v": {"$gte": 5}},
    "gt-null": {"a": {"$gt": None}},
    "gte-null": {"a": {"$gte": None}},
    "lte-null": {"n": {"$lte": None}},
    "lt-embedded": {"c": {"$lt": {"x": 2}}},
    "gt-array-literal": {"nums": {"$gt": [4]}},
    "gte-neg": {"a": {"$gte": -1, "$lt": 0.5}},
    "gt-dotted-nested": {"c.x": {"$gt": 1}},
    "lt-index": {"nums.0": {"$lt": 2}},
    # $in / $nin
    "in-ints": {"a": {"$in": [1, 7, 42]}},
    "in-mixed": {"a": {"$in": ["3", 2.5, None]}},
    "in-array-field": {"tags": {"$in": ["blue", "yellow"]}},
    "in-empty": {"a": {"$in": []}},
    "in-null-missing": {"n": {"$in": [None]}},
    "in-regex": {"b": {"$in": [rx("^a"), "fig"]}},
    "in-array-value": {"tags": {"$in": [["red"], []]}},
    "in-dotted": {"items.k": {"$in": ["c"]}},
    "nin-ints": {"a": {"$nin": [1, 7, 42]}},
    "nin-array-field": {"tags": {"$nin": ["red", "green"]}},
    "nin-empty": {"a": {"$nin": []}},
    "nin-null": {"a": {"$nin": [None]}},
    # logical
    "and": {"$and": [{"a": {"$gt": 0}}, {"a": {"$lt": 10}}]},
    "and-same-field": {"$and": [{"tags": "red"}, {"tags": "green"}]},
    "or": {"$or": [{"a": 1}, {"b": "fig"}]},
    "or-nested-and": {"$or": [{"$and": [{"c.x": 1}, {"c.y": "p"}]}, {"a": {"$type": "array"}}]},
    "nor": {"$nor": [{"a": {"$exists": False}}, {"a": None}]},
    "nor-two": {"$nor": [{"tags": "red"}, {"nums": {"$gt": 4}}]},
    "or-single": {"$or": [{"b": "date"}]},
    "and-or-combined": {"c.y": "q", "$or": [{"a": 2.5}, {"tags": "green"}]},
    "and-empty-error": {"$and": []},
    "or-not-array-error": {"$or": {"a": 1}},
    # $not
    "not-gt": {"a": {"$not": {"$gt": 2}}},
    "not-regex": {"b": {"$not": rx("^[a-f]")}},
    "not-regex-op": {"b": {"$not": {"$regex": "an"}}},
    "not-in": {"tags": {"$not": {"$in": ["red"]}}},
    "not-eq-array": {"nums": {"$not": {"$eq": 3}}},
    "not-exists": {"c.x": {"$not": {"$exists": True}}},
    "not-size": {"tags": {"$not": {"$size": 1}}},
    "not-value-error": {"a": {"$not": 1}},
    # $exists
    "exists-true": {"a": {"$exists": True}},
    "exists-false": {"a": {"$exists": False}},
    "exists-null-value": {"n": {"$exists": True}},
    "exists-dotted": {"c.x": {"$exists": True}},
    "exists-dotted-false": {"c.y": {"$exists": False}},
    "exists-through-array": {"items.v": {"$exists": True}},
    "exists-index": {"nums.2": {"$exists": True}},
    "exists-index-object": {"m.0": {"$exists": True}},
    # $type
    "type-string": {"a": {"$type": "string"}},
    "type-double": {"a": {"$type": "double"}},
    "type-number": {"a": {"$type": "number"}},
    "type-null": {"a": {"$type": "null"}},
    "type-array": {"a": {"$type": "array"}},
    "type-object": {"c": {"$type": "object"}},
    "type-list": {"b": {"$type": ["string", "null"]}},
    "type-elem": {"nums": {"$type": "string"}},
    "type-code-2": {"b": {"$type": 2}},
    "type-bad-error": {"a": {"$type": "nope"}},
    "type-number-tags": {"tags": {"$type": "number"}},
    # $regex
    "regex-plain": {"b": rx("an")},
    "regex-anchor": {"b": rx("^[A-Z]")},
    "regex-i": {"b": rx("^apple", "i")},
    "regex-m": {"b": rx("^berry", "m")},
    "regex-no-m": {"b": rx("^berry")},
    "regex-s": {"b": rx("elder.berry", "s")},
    "regex-no-s": {"b": rx("elder.berry")},
    "regex-x": {"b": rx("straw \\ berry  # a comment", "x")},
    "regex-ix": {"b": rx("p e a c h", "ix")},
    "regex-array-elem": {"tags": rx("^gr")},
    "regex-dotted": {"c.y": rx("[pq]")},
    "regex-dotted-array": {"items.k": rx("^c$")},
    "regex-non-string": {"a": rx("3")},
    "regex-dollar": {"b": rx("y$")},
    "regex-empty": {"b": rx("")},
    "regex-bad-error": {"b": rx("(")},
    # $elemMatch
    "elemmatch-doc": {"items": {"$elemMatch": {"k": "a", "v": {"$gte": 5}}}},
    "elemmatch-doc-vs-dotted": {"items.k": "a", "items.v": 3},
    "elemmatch-doc-single": {"items": {"$elemMatch": {"k": "b"}}},
    "elemmatch-value": {"nums": {"$elemMatch": {"$gt": 2, "$lt": 4}}},
    "elemmatch-value-vs-plain": {"nums": {"$gt": 2, "$lt": 4}},
    "elemmatch-on-scalar": {"a": {"$elemMatch": {"$gte": 1}}},
    "elemmatch-nested-array": {"nums": {"$elemMatch": {"$elemMatch": {"$eq": 3}}}},
    "elemmatch-or": {"items": {"$elemMatch": {"$or": [{"k": "c"}, {"v": 2}]}}},
    "elemmatch-dotted": {"c": {"$elemMatch": {"x": {"$gt": 3}}}},
    "elemmatch-in": {"tags": {"$elemMatch": {"$in": ["blue", "x"]}}},
    "elemmatch-regex": {"tags": {"$elemMatch": {"$regex": "^y"}}},
    "elemmatch-ne": {"nums": {"$elemMatch": {"$ne": 7}}},
    "elemmatch-array-of-arrays-doc": {"a": {"$elemMatch": {"b": 2}}},
    # $size
    "size-0": {"tags": {"$size": 0}},
    "size-1": {"tags": {"$size": 1}},
    "size-2": {"nums": {"$size": 2}},
    "size-3": {"nums": {"$size": 3}},
    "size-dotted": {"c.x": {"$size": 2}},
    "size-negative-error": {"tags": {"$size": -1}},
    "size-string-error": {"tags": {"$size": "1"}},
    "size-on-object": {"c": {"$size": 2}},
    "size-on-string": {"b": {"$size": 5}},
    # $all
    "all-two": {"tags": {"$all": ["red", "green"]}},
    "all-one": {"tags": {"$all": ["red"]}},
    "all-empty": {"tags": {"$all": []}},
    "all-scalar-field": {"tags": {"$all": ["red"]}, "b": "date"},
    "all-elemmatch": {"items": {"$all": [{"$elemMatch": {"k": "a"}}, {"$elemMatch": {"v": 2}}]}},
    "all-nested-array": {"tags": {"$all": [["red"]]}},
    "all-numbers": {"nums": {"$all": [1, 2]}},
    "all-regex": {"tags": {"$all": [rx("^bl"), "red"]}},
    "all-dotted": {"items.k": {"$all": ["a", "b"]}},
    # $mod
    "mod": {"a": {"$mod": [2, 1]}},
    "mod-negative": {"a": {"$mod": [4, 0]}},
    "mod-array": {"nums": {"$mod": [10, 0]}},
    "mod-float": {"a": {"$mod": [2, 0.5]}},
    "mod-bad-error": {"a": {"$mod": [0, 1]}},
    # null / missing rules
    "null-dotted-missing": {"c.y": None},
    "null-dotted-through-array": {"items.v": None},
    "null-array-elem": {"a": {"$in": [None, 100]}},
    "ne-null-dotted": {"c.x": {"$ne": None}},
    "null-index": {"nums.3": None},
    "exists-and-null": {"n": {"$exists": True, "$eq": None}},
    # bool/number distinction (mongomock treats them as equal)
    "bool-true": {"flag": True},
    "bool-false": {"flag": False},
    "bool-int-1": {"flag": 1},
    "bool-int-0": {"flag": 0},
    "bool-in": {"flag": {"$in": [True, 0]}},
    "bool-ne-true": {"flag": {"$ne": True}},
    "bool-type": {"flag": {"$type": "bool"}},
    "bool-type-int": {"flag": {"$type": "int"}},
    "bool-gt-number": {"flag": {"$gt": 0}},
    "bool-gte-false": {"flag": {"$gte": False}},
    "bool-mixed-array": {"nums": True},
    "bool-string": {"flag": "true"},
    # errors
    "unknown-operator-error": {"a": {"$foo": 1}},
    "top-level-operator-error": {"$foo": [{"a": 1}]},
    "in-not-array-error": {"a": {"$in": 1}},
    "all-not-array-error": {"a": {"$all": 1}},
    "exists-and-or": {"$or": [{"n": {"$exists": True}}, {"m": {"$exists": True}}]},
    "empty-filter": {},
}

HAND_SORTS = {
    "sort-a-asc": {"a": 1},
    "sort-a-desc": {"a": -1},
    "sort-b-asc": {"b": 1},
    "sort-b-desc": {"b": -1},
    "sort-c-asc": {"c": 1},
    "sort-c-desc": {"c": -1},
    "sort-cx-asc": {"c.x": 1},
    "sort-cx-desc": {"c.x": -1},
    "sort-tags-asc": {"tags": 1},
    "sort-tags-desc": {"tags": -1},
    "sort-nums-asc": {"nums": 1},
    "sort-nums-desc": {"nums": -1},
    "sort-items-v-asc": {"items.v": 1},
    "sort-items-v-desc": {"items.v": -1},
    "sort-flag-asc": {"flag": 1},
    "sort-flag-desc": {"flag": -1},
    "sort-n-asc": {"n": 1},
    "sort-compound-cy-a": {"c.y": 1, "a": -1},
    "sort-compound-flag-b": {"flag": -1, "b": 1},
    "sort-nums0-asc": {"nums.0": 1},
    "sort-id-desc": {"_id": -1},
}

SORT_FILTERS = {
    "": {},
    "-num": {"a": {"$type": "number"}},
    "-str": {"b": {"$type": "string"}},
}

HAND_PROJECTIONS = {
    "proj-include-b": {"b": 1},
    "proj-include-two": {"b": 1, "a": 1},
    "proj-include-nested": {"c.x": 1},
    "proj-include-nested-two": {"c.x": 1, "c.z.w": 1},
    "proj-include-through-array": {"items.k": 1},
    "proj-include-missing": {"zzz": 1},
    "proj-include-no-id": {"_id": 0, "b": 1},
    "proj-include-true": {"b": True},
    "proj-exclude-b": {"b": 0},
    "proj-exclude-two": {"b": 0, "nums": 0},
    "proj-exclude-nested": {"c.x": 0},
    "proj-exclude-through-array": {"items.v": 0},
    "proj-exclude-id": {"_id": 0},
    "proj-exclude-false": {"tags": False},
    "proj-id-only": {"_id": 1},
    "proj-mixed-error": {"b": 1, "c": 0},
    "proj-include-nested-scalar": {"c.x.x": 1},
}

PROJECTION_FILTER = {"_id": {"$lte": 24}}


def up(op, filt, update=None, upsert=False, replacement=None, array_filters=None):
    case = {"op": op, "filter": filt, "upsert": upsert}
    if array_filters is not None:
        case["array_filters"] = array_filters
    if op == "replace_one":
        case["replacement"] = replacement
    else:
        case["update"] = update
    return case


HAND_UPDATES = {
    "set-top": up("update_one", {"_id": 1}, {"$set": {"b": "avocado"}}),
    "set-new-field": up("update_one", {"_id": 1}, {"$set": {"new": [1, {"x": 2}]}}),
    "set-nested-new": up("update_one", {"_id": 1}, {"$set": {"c.z.w": 5}}),
    "set-nested-existing": up("update_one", {"_id": 2}, {"$set": {"c.z.w": 9}}),
    "set-index": up("update_one", {"_id": 1}, {"$set": {"nums.1": 99}}),
    "set-index-past-end": up("update_one", {"_id": 1}, {"$set": {"nums.5": 99}}),
    "set-many": up("update_many", {"tags": "red"}, {"$set": {"hot": True}}),
    "set-same-value": up("update_one", {"_id": 1}, {"$set": {"a": 1}}),
    "set-through-scalar-error": up("update_one", {"_id": 1}, {"$set": {"a.b": 1}}),
    "set-object": up("update_one", {"_id": 4}, {"$set": {"c": {"q": 1}}}),
    "set-multi-ops": up("update_one", {"_id": 2}, {"$set": {"b": "x"}, "$inc": {"a": 1}}),
    "set-conflict-error": up("update_one", {"_id": 1}, {"$set": {"c": 1, "c.x": 2}}),
    "set-id-error": up("update_one", {"_id": 1}, {"$set": {"_id": 77}}),
    "unset-top": up("update_one", {"_id": 1}, {"$unset": {"tags": ""}}),
    "unset-nested": up("update_one", {"_id": 2}, {"$unset": {"c.z": 1}}),
    "unset-missing": up("update_one", {"_id": 1}, {"$unset": {"zzz": 1}}),
    "unset-many": up("update_many", {}, {"$unset": {"n": ""}}),
    "inc-int": up("update_one", {"_id": 1}, {"$inc": {"a": 5}}),
    "inc-float": up("update_one", {"_id": 2}, {"$inc": {"a": 0.5}}),
    "inc-negative": up("update_one", {"_id": 16}, {"$inc": {"a": -10}}),
    "inc-missing": up("update_one", {"_id": 1}, {"$inc": {"cnt": 2}}),
    "inc-nested": up("update_one", {"_id": 1}, {"$inc": {"c.x": 1}}),
    "inc-string-error": up("update_one", {"_id": 3}, {"$inc": {"a": 1}}),
    "inc-many": up("update_many", {"a": {"$type": "number"}}, {"$inc": {"a": 1}}),
    "inc-nonnumeric-arg-error": up("update_one", {"_id": 1}, {"$inc": {"a": "1"}}),
    "min-lower": up("update_one", {"_id": 16}, {"$min": {"a": 3}}),
    "min-higher": up("update_one", {"_id": 16}, {"$min": {"a": 30}}),
    "min-missing": up("update_one", {"_id": 16}, {"$min": {"lo": 3}}),
    "max-higher": up("update_one", {"_id": 16}, {"$max": {"a": 30}}),
    "max-lower": up("update_one", {"_id": 16}, {"$max": {"a": 3}}),
    "max-string-vs-number": up("update_one", {"_id": 16}, {"$max": {"a": "abc"}}),
    "rename-top": up("update_one", {"_id": 1}, {"$rename": {"b": "bb"}}),
    "rename-nested": up("update_one", {"_id": 2}, {"$rename": {"c.y": "c.yy"}}),
    "rename-out": up("update_one", {"_id": 2}, {"$rename": {"c.x": "cx"}}),
    "rename-missing": up("update_one", {"_id": 1}, {"$rename": {"zzz": "yyy"}}),
    "rename-overwrite": up("update_one", {"_id": 1}, {"$rename": {"b": "a"}}),
    "setoninsert-no-upsert": up("update_one", {"_id": 1}, {"$setOnInsert": {"x": 1}}),
    "setoninsert-matched": up("update_one", {"_id": 1}, {"$set": {"s": 1}, "$setOnInsert": {"x": 1}},
                              upsert=True),
    "push-one": up("update_one", {"_id": 1}, {"$push": {"tags": "blue"}}),
    "push-new": up("update_one", {"_id": 4}, {"$push": {"list": 1}}),
    "push-array-value": up("update_one", {"_id": 1}, {"$push": {"tags": ["a", "b"]}}),
    "push-each": up("update_one", {"_id": 1}, {"$push": {"nums": {"$each": [7, 8]}}}),
    "push-each-slice": up("update_one", {"_id": 1}, {"$push": {"nums": {"$each": [7, 8], "$slice": 3}}}),
    "push-each-slice-neg": up("update_one", {"_id": 1},
                              {"$push": {"nums": {"$each": [7, 8], "$slice": -2}}}),
    "push-each-sort": up("update_one", {"_id": 18}, {"$push": {"nums": {"$each": [0], "$sort": 1}}}),
    "push-each-sort-desc-slice": up("update_one", {"_id": 18},
                                    {"$push": {"nums": {"$each": [5], "$sort": -1, "$slice": 2}}}),
    "push-each-sort-field": up("update_one", {"_id": 18},
                               {"$push": {"items": {"$each": [{"k": "z", "v": 0}],
                                                    "$sort": {"v": 1}}}}),
    "push-each-position": up("update_one", {"_id": 1},
                             {"$push": {"nums": {"$each": [8, 9], "$position": 1}}}),
    "push-each-empty-slice": up("update_one", {"_id": 1}, {"$push": {"nums": {"$each": [], "$slice": 1}}}),
    "push-nested": up("update_one", {"_id": 12}, {"$push": {"c.y": "r"}}),
    "push-scalar-error": up("update_one", {"_id": 4}, {"$push": {"tags": "x"}}),
    "push-many": up("update_many", {"tags": {"$type": "array"}}, {"$push": {"tags": "new"}}),
    "addtoset-new": up("update_one", {"_id": 1}, {"$addToSet": {"tags": "blue"}}),
    "addtoset-existing": up("update_one", {"_id": 1}, {"$addToSet": {"tags": "red"}}),
    "addtoset-each": up("update_one", {"_id": 1}, {"$addToSet": {"tags": {"$each": ["red", "x", "x"]}}}),
    "addtoset-missing": up("update_one", {"_id": 4}, {"$addToSet": {"set": 3}}),
    "addtoset-object": up("update_one", {"_id": 6}, {"$addToSet": {"items": {"k": "a", "v": 1}}}),
    "addtoset-object-order": up("update_one", {"_id": 6}, {"$addToSet": {"items": {"v": 1, "k": "a"}}}),
    "pop-last": up("update_one", {"_id": 1}, {"$pop": {"nums": 1}}),
    "pop-first": up("update_one", {"_id": 1}, {"$pop": {"nums": -1}}),
    "pop-empty": up("update_one", {"_id": 3}, {"$pop": {"nums": 1}}),
    "pop-missing": up("update_one", {"_id": 16}, {"$pop": {"nums": 1}}),
    "pull-value": up("update_one", {"_id": 5}, {"$pull": {"tags": "red"}}),
    "pull-cond": up("update_one", {"_id": 12}, {"$pull": {"nums": {"$gte": 5}}}),
    "pull-doc-match": up("update_one", {"_id": 14}, {"$pull": {"items": {"k": "a", "v": 5}}}),
    "pull-doc-partial": up("update_one", {"_id": 18}, {"$pull": {"items": {"k": "b"}}}),
    "pull-many": up("update_many", {}, {"$pull": {"tags": "green"}}),
    "pull-in": up("update_one", {"_id": 5}, {"$pull": {"tags": {"$in": ["blue", "red"]}}}),
    "pullall": up("update_one", {"_id": 5}, {"$pullAll": {"tags": ["red", "blue"]}}),
    "pullall-none": up("update_one", {"_id": 1}, {"$pullAll": {"tags": ["zzz"]}}),
    "positional-set": up("update_one", {"tags": "green", "_id": 1}, {"$set": {"tags.$": "GREEN"}}),
    "positional-inc-doc": up("update_one", {"items.k": "b", "_id": 18}, {"$inc": {"items.$.v": 10}}),
    "positional-elemmatch": up("update_one", {"items": {"$elemMatch": {"k": "a", "v": 6}}},
                               {"$set": {"items.$.v": 60}}),
    "positional-many": up("update_many", {"nums": {"$gt": 8}}, {"$set": {"nums.$": 0}}),
    "positional-no-array-error": up("update_one", {"_id": 1}, {"$set": {"tags.$": 1}}),
    "replace": up("replace_one", {"_id": 2}, replacement={"z": 1, "b": "new"}),
    "replace-with-id": up("replace_one", {"_id": 2}, replacement={"_id": 2, "only": True}),
    "replace-no-match": up("replace_one", {"_id": 999}, replacement={"z": 1}),
    "replace-upsert": up("replace_one", {"_id": 50}, replacement={"z": 1}, upsert=True),
    "replace-by-field": up("replace_one", {"b": "fig"}, replacement={"fig": True}),
    "replace-operator-error": up("replace_one", {"_id": 2}, replacement={"$set": {"a": 1}}),
    "update-no-operator-error": up("update_one", {"_id": 2}, {"a": 1}),
    "update-unknown-operator-error": up("update_one", {"_id": 2}, {"$foo": {"a": 1}}),
    "upsert-set": up("update_one", {"_id": 60}, {"$set": {"a": 1}}, upsert=True),
    "upsert-eq-fields": up("update_one", {"_id": 61, "b": "new", "c.x": 5}, {"$inc": {"cnt": 1}},
                           upsert=True),
    "upsert-setoninsert": up("update_one", {"_id": 62}, {"$set": {"a": 1}, "$setOnInsert": {"born": 1}},
                             upsert=True),
    "upsert-ops-ignored": up("update_one", {"_id": 63, "a": {"$gt": 5}}, {"$set": {"b": "x"}},
                             upsert=True),
    "upsert-many": up("update_many", {"_id": 64, "zz": "q"}, {"$set": {"b": "y"}}, upsert=True),
    "upsert-and": up("update_one", {"$and": [{"_id": 65}, {"k": 1}]}, {"$push": {"l": 2}}, upsert=True),
    "upsert-matched": up("update_one", {"_id": 1}, {"$set": {"u": 1}}, upsert=True),
    "no-match": up("update_many", {"_id": 999}, {"$set": {"u": 1}}),
    "update-one-first-of-many": up("update_one", {"tags": "red"}, {"$set": {"first": True}}),
    "mul": up("update_one", {"_id": 16}, {"$mul": {"a": 3}}),
    "mul-missing": up("update_one", {"_id": 16}, {"$mul": {"zz": 3}}),
    "all-positional": up("update_one", {"_id": 1}, {"$inc": {"nums.$[]": 10}}),
    "all-positional-nested": up("update_one", {"_id": 18}, {"$set": {"items.$[].v": 0}}),
    "array-filters-doc": up("update_one", {"_id": 14}, {"$set": {"items.$[e].v": 0}},
                            array_filters=[{"e.v": {"$gt": 5}}]),
    "array-filters-value": up("update_many", {"nums": {"$elemMatch": {"$gte": 5}}},
                              {"$inc": {"nums.$[n]": 100}}, array_filters=[{"n": {"$gte": 9}}]),
}


# ---------------------------------------------------------------------------------------
# OVERRIDES: mongomock contradicts MongoDB's documentation here; the expected value is the
# documented one. Values are literal results or a callable(corpus, case) -> result.
# Every entry is listed in README.md.
# ---------------------------------------------------------------------------------------

R_BOOL = ("MongoDB: booleans and numbers are different BSON types and never compare equal "
          "(mongomock treats true/false as 1/0)")
R_SIZE = "MongoDB: $size matches arrays only (mongomock applies len() to strings and objects)"
R_SORT = ("MongoDB: an ascending sort uses an array's smallest element, descending its "
          "largest, empty array before null (mongomock uses the first element)")
R_ALL_RX = ("MongoDB: $all accepts regexes, each must match an element "
            "(mongomock matches nothing)")


def sorted_documented(corpus, case):
    return {"ids": documented_sort(corpus, case["filter"], case["sort"])}


def update_docs(corpus, changes, matched, modified, upserted_id=None, added=()):
    """Expected update result: the corpus with `changes` (id -> new document) applied."""
    docs = [changes.get(d["_id"], d) for d in copy.deepcopy(corpus)]
    docs.extend(added)
    return {"matched": matched, "modified": modified, "upserted_id": upserted_id, "docs": docs}


def doc_of(corpus, _id):
    return copy.deepcopy(next(d for d in corpus if d["_id"] == _id))


def with_fields(doc, **fields):
    doc = dict(doc)
    doc.update(fields)
    return doc


def override_mul(corpus, case):
    return update_docs(corpus, {16: with_fields(doc_of(corpus, 16), a=21)}, 1, 1)


def override_mul_missing(corpus, case):
    return update_docs(corpus, {16: with_fields(doc_of(corpus, 16), zz=0)}, 1, 1)


def override_all_positional(corpus, case):
    d = doc_of(corpus, 1)
    d["nums"] = [x + 10 for x in d["nums"]]
    return update_docs(corpus, {1: d}, 1, 1)


def override_all_positional_nested(corpus, case):
    d = doc_of(corpus, 18)
    d["items"] = [with_fields(i, v=0) for i in d["items"]]
    return update_docs(corpus, {18: d}, 1, 1)


def override_array_filters_doc(corpus, case):
    d = doc_of(corpus, 14)
    d["items"] = [with_fields(i, v=0) if i["v"] > 5 else i for i in d["items"]]
    return update_docs(corpus, {14: d}, 1, 1)


def override_array_filters_value(corpus, case):
    changes, matched = {}, 0
    for d in corpus:
        nums = d.get("nums")
        if not (isinstance(nums, list) and any(is_num(v) and v >= 5 for v in nums)):
            continue
        matched += 1
        if isinstance(nums, list) and any(is_num(v) and v >= 9 for v in nums):
            changes[d["_id"]] = with_fields(
                doc_of(corpus, d["_id"]),
                nums=[v + 100 if is_num(v) and v >= 9 else v for v in nums])
    return update_docs(corpus, changes, matched, len(changes))


def null_match(v, parts):
    """MongoDB's {path: null}: true when the path reaches null or nothing, where a null or
    scalar parent counts as nothing, and an array reaches through its document elements
    (and a positional element) only."""
    if not parts:
        return v is MISSING or v is None or (isinstance(v, list) and None in v)
    if isinstance(v, dict):
        return null_match(v.get(parts[0], MISSING), parts[1:])
    if isinstance(v, list):
        p = parts[0]
        if p.isdigit() and int(p) < len(v) and null_match(v[int(p)], parts[1:]):
            return True
        return any(null_match(e, parts) for e in v if isinstance(e, dict))
    return True


def path_exists(v, parts):
    if not parts:
        return v is not MISSING
    if isinstance(v, dict):
        return parts[0] in v and path_exists(v[parts[0]], parts[1:])
    if isinstance(v, list):
        p = parts[0]
        if p.isdigit() and int(p) < len(v) and path_exists(v[int(p)], parts[1:]):
            return True
        return any(path_exists(e, parts) for e in v if isinstance(e, dict))
    return False


def rename_in(doc, old, new):
    """$rename = $unset old then $set new (new fields go last)."""
    parent, key = doc, old.split(".")
    for p in key[:-1]:
        parent = parent[p]
    value = parent.pop(key[-1])
    target, parts = doc, new.split(".")
    for p in parts[:-1]:
        target = target.setdefault(p, {})
    target[parts[-1]] = value
    return doc


def override_positional_many(corpus, case):
    changes = {}
    for d in corpus:
        nums = d.get("nums")
        if isinstance(nums, list):
            hit = next((i for i, v in enumerate(nums) if is_num(v) and v > 8), None)
            if hit is not None:
                new = doc_of(corpus, d["_id"])
                new["nums"][hit] = 0
                changes[d["_id"]] = new
        elif is_num(nums) and nums > 8:
            return {"error": True}
    return update_docs(corpus, changes, len(changes), len(changes))


def ids_where(pred):
    return lambda corpus, case: {"ids": sorted(d["_id"] for d in corpus if pred(d))}


def ids_path(path, pred):
    """Documents where some value reached by `path` (array elements included) satisfies
    `pred`."""
    return ids_where(lambda d: any(pred(v) for v in path_values(d, path.split("."))))


def ids_path_exact(path, pred):
    """Like ids_path, without expanding a leaf array into its elements (for $size)."""
    def values(v, parts):
        if not parts:
            return [v]
        if isinstance(v, dict):
            return values(v[parts[0]], parts[1:]) if parts[0] in v else []
        if isinstance(v, list):
            return [x for e in v if isinstance(e, dict) for x in values(e, parts)]
        return []
    return ids_where(lambda d: any(pred(v) for v in values(d, path.split("."))))


def is_bool(v):
    return isinstance(v, bool)


def flag_is(value):
    def pred(d):
        v = d.get("flag", MISSING)
        return v is not MISSING and type(v) is type(value) and v == value
    return pred


def mod_ids(divisor, remainder, field):
    def pred(d):
        vals = path_values(d, field.split("."))
        import math
        return any(is_num(v) and math.fmod(math.trunc(v), divisor) == remainder for v in vals)
    return ids_where(pred)


OVERRIDES = {
    "bool-true": (ids_where(flag_is(True)), R_BOOL),
    "bool-false": (ids_where(flag_is(False)), R_BOOL),
    "bool-int-1": (ids_where(flag_is(1)), R_BOOL),
    "bool-int-0": (ids_where(flag_is(0)), R_BOOL),
    "bool-in": (ids_where(lambda d: flag_is(True)(d) or flag_is(0)(d)), R_BOOL),
    "bool-ne-true": (ids_where(lambda d: not flag_is(True)(d)), R_BOOL),
    "bool-gt-number": (ids_where(lambda d: is_num(d.get("flag")) and d["flag"] > 0),
                       "MongoDB: $gt compares within one BSON type bracket; booleans are not numbers"),
    "bool-gte-false": (ids_where(lambda d: is_bool(d.get("flag"))),
                       "MongoDB: $gte false matches booleans only (type bracketing)"),
    "bool-mixed-array": (ids_path("nums", lambda v: v is True), R_BOOL),
    "size-on-object": (ids_path_exact("c", lambda v: isinstance(v, list) and len(v) == 2), R_SIZE),
    "size-on-string": ({"ids": []}, R_SIZE),
    "size-1": (ids_path_exact("tags", lambda v: isinstance(v, list) and len(v) == 1), R_SIZE),
    "size-2": (ids_path_exact("nums", lambda v: isinstance(v, list) and len(v) == 2), R_SIZE),
    "size-3": (ids_path_exact("nums", lambda v: isinstance(v, list) and len(v) == 3), R_SIZE),
    "size-dotted": (ids_path_exact("c.x", lambda v: isinstance(v, list) and len(v) == 2), R_SIZE),
    "all-regex": (ids_where(lambda d: isinstance(d.get("tags"), list) and "red" in d["tags"]
                            and any(isinstance(t, str) and t.startswith("bl") for t in d["tags"])),
                  R_ALL_RX),
    "mod": (mod_ids(2, 1, "a"), "MongoDB docs: $mod selects numbers with value % divisor == "
                                "remainder (mongomock lacks $mod)"),
    "mod-negative": (mod_ids(4, 0, "a"), "MongoDB docs: $mod truncates toward zero, sign of "
                                         "dividend (mongomock lacks $mod)"),
    "mod-array": (mod_ids(10, 0, "nums"), "MongoDB docs: $mod on an array matches any element "
                                          "(mongomock lacks $mod)"),
    "mod-float": ({"error": True}, "MongoDB 5.1+: $mod remainder must be an integer-valued number "
                                   "(0.5 is rejected)"),
    "mod-bad-error": ({"error": True}, "MongoDB docs: $mod with a zero divisor is an error"),
    "mul": (override_mul, "MongoDB docs: $mul multiplies the field (mongomock lacks $mul)"),
    "mul-missing": (override_mul_missing, "MongoDB docs: $mul on a missing field sets it to 0 "
                                          "of the operand's type (mongomock lacks $mul)"),
    "all-positional": (override_all_positional,
                       "MongoDB docs: $[] updates every array element (mongomock lacks $[])"),
    "upsert-and": (lambda corpus, case: update_docs(corpus, {}, 0, 0, 65,
                                                    [{"_id": 65, "k": 1, "l": [2]}]),
                   "MongoDB docs: an upsert takes equality fields from top-level $and too "
                   "(mongomock ignores them, inventing an _id)"),
    "array-filters-doc": (override_array_filters_doc,
                          "MongoDB docs: $[<id>] updates the elements matching arrayFilters "
                          "(mongomock lacks arrayFilters)"),
    "array-filters-value": (override_array_filters_value,
                            "MongoDB docs: $[<id>] with a condition on the element itself; "
                            "matched counts every matched document (mongomock lacks arrayFilters)"),
    "all-positional-nested": (override_all_positional_nested,
                              "MongoDB docs: $[] then a field updates that field in every "
                              "element (mongomock lacks $[])"),
}
for _name in HAND_SORTS:
    for _suffix in SORT_FILTERS:
        OVERRIDES.setdefault(_name + _suffix, (sorted_documented, R_SORT))

R_ORDER = ("MongoDB: equality on an embedded document is field-order sensitive "
           "(mongomock ignores order)")
R_NULL = ("MongoDB: {'a.b': null} also matches when 'a' is null or a non-document scalar, "
          "and $gte/$lte null act as $eq null (null_query_semantics); mongomock misses them")
R_EXISTS = ("MongoDB: 'a.b' exists when any element of an array 'a' has 'b'; a null or "
            "scalar 'a' has no 'a.b' (mongomock gets both wrong)")
R_EMPTY_DOC = "MongoDB: {f: {}} matches only an empty embedded document (mongomock matches missing f)"
R_TYPE = "MongoDB: $type accepts 'null', a type list and numeric codes (mongomock raises)"
R_ELEM = ("MongoDB: $elemMatch value conditions apply to each element as is; a nested "
          "array element is not descended into (mongomock descends)")
R_ARRAY_EQ = ("MongoDB: an array operand of $in/$all matches a field equal to that array or "
              "holding it as an element (mongomock misses whole-array equality)")

OVERRIDES.update({
    "eq-embedded-doc": ({"ids": [1, 23]}, R_ORDER),
    "eq-embedded-doc-order": ({"ids": [3]}, R_ORDER),
    "eq-embedded-empty": ({"ids": [8, 30, 33]}, R_EMPTY_DOC),
    "eq-op-null": (ids_where(lambda d: null_match(d, ["c", "x"])), R_NULL),
    "null-dotted-missing": (ids_where(lambda d: null_match(d, ["c", "y"])), R_NULL),
    "ne-null-dotted": (ids_where(lambda d: not null_match(d, ["c", "x"])), R_NULL),
    "null-index": (ids_where(lambda d: null_match(d, ["nums", "3"])), R_NULL),
    "gte-null": (ids_where(lambda d: null_match(d, ["a"])), R_NULL),
    "lte-null": (ids_where(lambda d: null_match(d, ["n"])), R_NULL),
    "not-exists": (ids_where(lambda d: not path_exists(d, ["c", "x"])), R_EXISTS),
    "exists-dotted-false": (ids_where(lambda d: not path_exists(d, ["c", "y"])), R_EXISTS),
    "in-array-value": (ids_where(lambda d: d.get("tags") in (["red"], [])
                                 or (isinstance(d.get("tags"), list) and ["red"] in d["tags"])),
                       R_ARRAY_EQ),
    "all-nested-array": (ids_where(lambda d: d.get("tags") == ["red"]
                                   or (isinstance(d.get("tags"), list) and ["red"] in d["tags"])),
                         R_ARRAY_EQ),
    "all-empty": ({"ids": []}, "MongoDB: $all with an empty array matches nothing"),
    "not-size": (ids_where(lambda d: not (isinstance(d.get("tags"), list) and len(d["tags"]) == 1)),
                 R_SIZE),
    "size-negative-error": ({"error": True}, "MongoDB: a negative $size is rejected"),
    "size-string-error": ({"error": True}, "MongoDB: a non-numeric $size is rejected"),
    "type-null": (ids_path("a", lambda v: v is None), R_TYPE),
    "type-list": (ids_path("b", lambda v: v is None or isinstance(v, str)), R_TYPE),
    "type-code-2": (ids_path("b", lambda v: isinstance(v, str)), R_TYPE),
    "elemmatch-value": (ids_where(lambda d: isinstance(d.get("nums"), list) and any(
        is_num(v) and 2 < v < 4 for v in d["nums"])), R_ELEM),
    "elemmatch-on-scalar": (ids_where(lambda d: isinstance(d.get("a"), list) and any(
        is_num(v) and v >= 1 for v in d["a"])), R_ELEM),
    "elemmatch-regex": (ids_where(lambda d: isinstance(d.get("tags"), list) and any(
        isinstance(v, str) and v.startswith("y") for v in d["tags"])),
                        "MongoDB: $elemMatch accepts $regex (mongomock raises)"),
    "mod-float": (mod_ids(2, 0, "a"), "MongoDB docs ($mod, floating point arguments): "
                                      "the remainder 0.5 is truncated toward zero"),
    # updates
    "set-through-scalar-error": ({"error": True}, "MongoDB: $set cannot create a field inside "
                                                  "a non-document (mongomock ignores it)"),
    "set-conflict-error": ({"error": True}, "MongoDB: two update paths that conflict are an "
                                            "error (mongomock applies both)"),
    "max-string-vs-number": (lambda corpus, case: update_docs(
        corpus, {16: with_fields(doc_of(corpus, 16), a="abc")}, 1, 1),
        "MongoDB: $max compares in BSON order, strings above numbers (mongomock raises)"),
    "rename-nested": (lambda corpus, case: update_docs(
        corpus, {2: rename_in(doc_of(corpus, 2), "c.y", "c.yy")}, 1, 1),
        "MongoDB docs: $rename works on embedded fields (unset then set; mongomock raises)"),
    "rename-out": (lambda corpus, case: update_docs(
        corpus, {2: rename_in(doc_of(corpus, 2), "c.x", "cx")}, 1, 1),
        "MongoDB docs: $rename can move an embedded field to the top level (mongomock raises)"),
    "addtoset-each": (lambda corpus, case: update_docs(
        corpus, {1: with_fields(doc_of(corpus, 1), tags=["red", "green", "x"])}, 1, 1),
        "MongoDB: $addToSet with $each adds each value at most once (mongomock adds duplicates)"),
    "addtoset-object-order": (lambda corpus, case: update_docs(
        corpus, {6: with_fields(doc_of(corpus, 6), items=doc_of(corpus, 6)["items"]
                                + [{"v": 1, "k": "a"}])}, 1, 1), R_ORDER),
    "pop-missing": (lambda corpus, case: update_docs(corpus, {}, 1, 0),
                    "MongoDB: $pop on a missing field is a no-op (mongomock raises)"),
    "pull-many": ({"error": True}, "MongoDB: $pull on a non-array value ('tags': 'red' in "
                                   "_id 4) is an error (mongomock skips it)"),
    "positional-set": (lambda corpus, case: update_docs(
        corpus, {1: with_fields(doc_of(corpus, 1), tags=["red", "GREEN"])}, 1, 1),
        "MongoDB docs: $ is the first element matched by the query (mongomock raises)"),
    "positional-many": (override_positional_many,
                        "MongoDB docs: $ in update_many uses each document's matched element "
                        "(mongomock raises)"),
    "positional-no-array-error": ({"error": True}, "MongoDB: $ needs the array in the query "
                                                   "(mongomock uses element 0)"),
})

# Cases left out entirely, with why.
SKIPPED = {
    "sort-nums0-asc": "numeric path component through an array holding a subdocument: "
                      "MongoDB's sort key here is not documented",
    "sort-nums0-asc-num": "as sort-nums0-asc",
    "sort-nums0-asc-str": "as sort-nums0-asc",
    "proj-include-nested-scalar": "mongomock raises; MongoDB's output for inclusion through "
                                  "scalars is not stated in its docs",
}

# Field order is not specified by MongoDB's docs for these (e.g. $rename onto an existing
# field "may not preserve the order of the fields"): compared order-insensitively.
UNORDERED = {"u-rename-overwrite"}


# ---------------------------------------------------------------------------------------
# Generated cases
# ---------------------------------------------------------------------------------------

GEN_PATHS = ["a", "b", "c", "c.x", "c.y", "c.z.w", "tags", "nums", "nums.0", "items",
             "items.k", "items.v", "items.0.v", "n", "flag", "m.0", "a.b", "zz"]


def sample_value(rng, corpus, path):
    vals = [v for d in corpus for v in path_values(d, path.split("."))]
    extra = [0, 1, 2, 3.5, -1, 100, "red", "apple", "p", None, True, False, [], {}]
    if vals and rng.random() < 0.8:
        return copy.deepcopy(rng.choice(vals))
    return rng.choice(extra)


def gen_cond(rng, corpus, path, depth=0):
    k = rng.random()
    v = sample_value(rng, corpus, path)
    if k < 0.2:
        return v
    if k < 0.55:
        op = rng.choice(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"])
        cond = {op: v}
        if op in ("$gt", "$gte") and rng.random() < 0.4:
            cond[rng.choice(["$lt", "$lte"])] = sample_value(rng, corpus, path)
        return cond
    if k < 0.68:
        op = rng.choice(["$in", "$nin"])
        return {op: [sample_value(rng, corpus, path) for _ in range(rng.randint(1, 3))]}
    if k < 0.74:
        return {"$exists": rng.random() < 0.5}
    if k < 0.8:
        return {"$type": rng.choice(["string", "number", "double", "int", "array", "object",
                                     "null", "bool"])}
    if k < 0.84:
        return {"$size": rng.randint(0, 3)}
    if k < 0.88:
        return {"$all": [sample_value(rng, corpus, path) for _ in range(rng.randint(1, 2))]}
    if k < 0.92:
        return {"$regex": rng.choice(["^a", "e", "^[A-Z]", "an", "r$", "^p"]),
                "$options": rng.choice(["", "i"])}
    if k < 0.96 and depth == 0:
        inner = gen_cond(rng, corpus, path, depth + 1)
        if isinstance(inner, dict) and inner and all(x.startswith("$") for x in inner):
            return {"$not": inner}
        return {"$not": {"$eq": inner}}
    lo = sample_value(rng, corpus, path)
    return {"$elemMatch": {"$gte": lo}} if rng.random() < 0.5 else {"$elemMatch": {"$ne": lo}}


def gen_filter(rng, corpus, depth=0):
    k = rng.random()
    if depth < 2 and k < 0.2:
        op = rng.choice(["$and", "$or", "$nor"])
        return {op: [gen_filter(rng, corpus, depth + 1) for _ in range(rng.randint(1, 3))]}
    filt = {}
    for _ in range(1 if rng.random() < 0.7 else 2):
        path = rng.choice(GEN_PATHS)
        filt[path] = gen_cond(rng, corpus, path)
    return filt


def gen_sorts(rng):
    paths = ["a", "b", "c.x", "c.y", "n", "items.k", "tags", "nums", "flag", "c"]
    out = {}
    while len(out) < 40:
        keys = rng.sample(paths, rng.randint(1, 3))
        spec = {p: rng.choice([1, -1]) for p in keys}
        spec.setdefault("_id", rng.choice([1, -1]))
        key = json.dumps(spec)
        out.setdefault(key, spec)
    return list(out.values())


def gen_projections(rng):
    paths = ["a", "b", "c", "c.x", "c.y", "c.z", "tags", "nums", "items", "items.k", "m", "n"]
    out = []
    for _ in range(20):
        keys = rng.sample(paths, rng.randint(1, 3))
        val = rng.choice([0, 1])
        spec = {}
        for p in keys:
            if any(p.startswith(q + ".") or q.startswith(p + ".") for q in spec):
                continue
            spec[p] = val
        if rng.random() < 0.3:
            spec["_id"] = 0
        out.append(spec)
    return out


def gen_updates(rng, corpus):
    out = []
    fields = ["a", "b", "cnt", "c.x", "c.q", "tags", "nums", "newarr"]
    for _ in range(30):
        field = rng.choice(fields)
        kind = rng.choice(["$set", "$unset", "$inc", "$min", "$max", "$push", "$addToSet",
                           "$pull", "$pop"])
        if kind == "$set":
            arg = rng.choice([1, "s", [1, 2], {"k": 1}, None, 2.5])
        elif kind == "$unset":
            arg = ""
        elif kind == "$inc":
            arg = rng.choice([1, -2, 0.5])
        elif kind in ("$min", "$max"):
            arg = rng.choice([0, 5, 20, "m"])
        elif kind in ("$push", "$addToSet"):
            arg = rng.choice(["red", 3, {"$each": ["red", "z"]}])
        elif kind == "$pull":
            arg = rng.choice(["red", 3, {"$gt": 3}])
        else:
            arg = rng.choice([1, -1])
        filt = rng.choice([{"_id": rng.randint(1, 40)}, {"tags": "red"}, {"a": {"$gt": 2}},
                           {"c.y": "p"}, {"nums": {"$size": 0}}])
        many = rng.random() < 0.5
        upsert = rng.random() < 0.2
        out.append(up("update_many" if many else "update_one", filt, {kind: {field: arg}},
                      upsert=upsert))
    return out


def update_risk(corpus, case):
    """Generated updates whose filter or operator could hit bool/number confusion, or
    array-sorting semantics mongomock gets wrong, or a target path mongomock handles
    against MongoDB's docs (a null/scalar parent, an array operator on a non-array, $pop
    on a missing field)."""
    if bool_number_risk(case["filter"], corpus) or mongomock_weak_spot(case["filter"]):
        return True
    matched = set(run_filter(corpus, case["filter"]))
    for op, spec in case["update"].items():
        for path in spec:
            parts = path.split(".")
            for d in corpus:
                if d["_id"] not in matched:
                    continue
                v = d
                for p in parts[:-1]:
                    v = v.get(p, MISSING) if isinstance(v, dict) else MISSING
                if v is not MISSING and not isinstance(v, dict):
                    return True
                leaf = v.get(parts[-1], MISSING) if isinstance(v, dict) else MISSING
                if op in ("$push", "$addToSet", "$pull", "$pop") and leaf is not MISSING \
                        and not isinstance(leaf, list):
                    return True
                if op == "$pop" and leaf is MISSING:
                    return True
    for op, spec in case["update"].items():
        for path, arg in spec.items():
            vals = [v for d in corpus for v in path_values(d, path.split("."))]
            if op in ("$min", "$max", "$pull", "$addToSet", "$push"):
                if any(isinstance(x, bool) for v in vals for x in scalars(v)):
                    return True
                if op in ("$min", "$max") and any(isinstance(v, list) for v in vals):
                    return True
    return False


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def main():
    rng = random.Random(SEED)
    corpus = build_corpus(rng)
    cases = []

    for name, filt in HAND_FILTERS.items():
        cases.append({"id": "f-" + name, "kind": "filter", "filter": filt})
    seen = set(json.dumps(f, sort_keys=True) for f in HAND_FILTERS.values())
    excluded_bool = 0
    excluded_weak = 0
    gen_n = 0
    while gen_n < 220:
        filt = gen_filter(rng, corpus)
        key = json.dumps(filt, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        if bool_number_risk(filt, corpus) or size_risk(filt):
            excluded_bool += 1
            continue
        if mongomock_weak_spot(filt) or "error" in run_case(corpus, {"kind": "filter",
                                                                    "filter": filt}):
            excluded_weak += 1
            continue
        gen_n += 1
        cases.append({"id": "fg-%03d" % gen_n, "kind": "filter", "filter": filt})

    for name, sort in HAND_SORTS.items():
        # Ties are left in an unspecified order by MongoDB: `_id` breaks them.
        sort = dict(sort)
        sort.setdefault("_id", 1)
        for suffix, filt in SORT_FILTERS.items():
            cases.append({"id": name + suffix, "kind": "sort", "filter": filt, "sort": sort})
    for i, sort in enumerate(gen_sorts(rng), 1):
        cid = "sg-%03d" % i
        cases.append({"id": cid, "kind": "sort", "filter": {}, "sort": sort})
        if sort_touches_arrays_or_mixed(corpus, sort) or "flag" in sort:
            OVERRIDES[cid] = (sorted_documented, R_SORT)

    for name, proj in HAND_PROJECTIONS.items():
        cases.append({"id": name, "kind": "projection", "filter": PROJECTION_FILTER,
                      "projection": proj})
    for i, proj in enumerate(gen_projections(rng), 1):
        cases.append({"id": "pg-%03d" % i, "kind": "projection", "filter": PROJECTION_FILTER,
                      "projection": proj})

    for name, case in HAND_UPDATES.items():
        cases.append(dict({"id": "u-" + name, "kind": "update"}, **case))
    excluded_updates = 0
    for i, case in enumerate(gen_updates(rng, corpus), 1):
        if update_risk(corpus, case):
            excluded_updates += 1
            continue
        cases.append(dict({"id": "ug-%03d" % i, "kind": "update"}, **case))

    out_cases = []
    used_overrides = set()
    skipped_generated_id = []
    for case in cases:
        cid = case["id"]
        if cid in SKIPPED or key in SKIPPED:
            continue
        key = cid[2:] if cid.startswith(("f-", "u-")) else cid
        result = run_case(corpus, case)
        if "ObjectId" in repr(result) and key not in OVERRIDES:
            skipped_generated_id.append(cid)
            continue
        entry = dict(case)
        if cid in UNORDERED:
            entry["unordered"] = True
        if case["kind"] == "projection" and key not in OVERRIDES and "error" not in result:
            documented = exclusion_projection(corpus, case)
            if documented is not None and documented != result:
                entry["source"] = "documented"
                entry["note"] = ("MongoDB: excluding 'a.b' leaves a null or scalar 'a' in "
                                 "place (mongomock drops it)")
                entry["mongomock"] = result
                result = documented
        if key in OVERRIDES:
            used_overrides.add(key)
            value, reason = OVERRIDES[key]
            documented = value(corpus, case) if callable(value) else value
            if documented != result:
                entry["source"] = "documented"
                entry["note"] = reason
                entry["mongomock"] = result
                result = documented
        entry["expected"] = result
        out_cases.append(entry)

    unused = set(OVERRIDES) - used_overrides - set(SKIPPED)
    if unused:
        sys.exit("overrides naming no case: %s" % sorted(unused))

    doc = {
        "generator": "tests/reference/generate.py",
        "mongomock": mongomock.__version__,
        "seed": SEED,
        "corpus": corpus,
        "cases": out_cases,
    }
    with open(OUT, "w") as f:
        f.write("{\n")
        f.write('"generator": %s,\n' % json.dumps(doc["generator"]))
        f.write('"mongomock": %s,\n' % json.dumps(doc["mongomock"]))
        f.write('"seed": %d,\n' % SEED)
        f.write('"corpus": [\n%s\n],\n' % ",\n".join(json.dumps(d) for d in corpus))
        f.write('"cases": [\n%s\n]\n' % ",\n".join(json.dumps(c, default=lambda o: "<%s>" % type(o).__name__)
                                                       for c in doc["cases"]))
        f.write("}\n")

    counts = {}
    for c in out_cases:
        counts[c["kind"]] = counts.get(c["kind"], 0) + 1
    documented = [c["id"] for c in out_cases if c.get("source") == "documented"]
    errors = sum(1 for c in out_cases if c["expected"].get("error"))
    print("cases:", counts, "total", len(out_cases))
    print("expected errors:", errors)
    print("excluded generated filters (bool/number or $size risk):", excluded_bool)
    print("excluded generated filters (mongomock weak spot or error):", excluded_weak)
    print("excluded generated updates (bool/number or array risk):", excluded_updates)
    print("documented overrides applied (%d):" % len(documented), " ".join(documented))
    print("skipped (upsert generated an ObjectId):", skipped_generated_id)
    print("size:", os.path.getsize(OUT), "bytes")


NEGATIONS = ("$ne", "$nin", "$not", "$nor", "$exists")


def mongomock_weak_spot(filt, negated=False):
    """Generated filters in areas where mongomock is known to contradict MongoDB's docs
    (see README): equality with documents or arrays (field order, whole-array $in/$all),
    null/missing and $exists on dotted paths, $gte/$lte null, several conditions on one
    dotted path through arrays, and $elemMatch over nested arrays."""
    for key, cond in filt.items():
        if key in ("$and", "$or", "$nor"):
            if any(mongomock_weak_spot(f, negated or key == "$nor") for f in cond):
                return True
            continue
        text = json.dumps(cond)
        if any(isinstance(x, (dict, list)) for x in literals(cond)):
            return True
        if "null" in text and ("." in key or "$gte" in text or "$lte" in text):
            return True
        if "." in key and (negated or any(n in text for n in NEGATIONS)):
            return True
        if "." in key and isinstance(cond, dict) and len(cond) > 1:
            return True
        if "$elemMatch" in text:
            return True
    return False


def literals(cond):
    """Operand values of a condition (operator documents unwrapped)."""
    if isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond):
        out = []
        for op, arg in cond.items():
            if op in ("$in", "$nin", "$all") and isinstance(arg, list):
                out.extend(arg)
            elif op in ("$not", "$elemMatch"):
                out.extend(literals(arg))
            elif op not in ("$regex", "$options", "$type", "$exists", "$size"):
                out.append(arg)
        return out
    return [cond]


def size_risk(filt):
    """$size anywhere: mongomock applies it to strings and objects too."""
    return "$size" in json.dumps(filt)


if __name__ == "__main__":
    main()
