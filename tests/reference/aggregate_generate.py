"""Generates aggregate_expected.json: aggregation pipelines run by mongomock over a small
corpus, for crates/pocketdb/tests/aggregate_reference.rs.

    pip install -r tests/reference/requirements.txt
    python3 tests/reference/aggregate_generate.py

mongomock's aggregation support is partial: pipelines it rejects are skipped (and
printed), and OVERRIDES replaces its answer where MongoDB's documentation says otherwise
(each with the reason). Cases whose output order MongoDB leaves open ($group without a
following $sort) are marked "ordered": false and compared as multisets.
"""

import json
import os

import mongomock

CORPUS = [
    {"_id": 1, "item": "abc", "price": 10, "qty": 2, "tags": ["a", "b"], "size": {"h": 14, "uom": "cm"}},
    {"_id": 2, "item": "jkl", "price": 20, "qty": 1, "tags": [], "size": {"h": 8, "uom": "in"}},
    {"_id": 3, "item": "xyz", "price": 5, "qty": 10, "tags": None},
    {"_id": 4, "item": "xyz", "price": 5.5, "qty": 20, "tags": ["b"]},
    {"_id": 5, "item": "abc", "price": 10, "qty": 10, "tags": "c"},
    {"_id": 6, "item": "def", "price": 7.25, "qty": 5, "tags": ["a", "c", "d"], "size": {"h": 3, "uom": "cm"}},
    {"_id": 7, "item": None, "price": 1, "qty": 0},
    {"_id": 8, "price": 2, "qty": 3, "tags": ["d"]},
]

CASES = [
    ("match-sort", [{"$match": {"price": {"$gte": 5.5}}}, {"$sort": {"qty": -1, "_id": 1}}], True),
    ("match-in-limit", [{"$match": {"item": {"$in": ["abc", "xyz"]}}}, {"$sort": {"_id": 1}}, {"$skip": 1}, {"$limit": 2}], True),
    ("group-sum-avg", [{"$group": {"_id": "$item", "total": {"$sum": "$qty"}, "avg": {"$avg": "$price"}}}], False),
    ("group-count-1", [{"$group": {"_id": "$item", "n": {"$sum": 1}}}], False),
    ("group-null", [{"$group": {"_id": None, "n": {"$sum": 1}, "maxq": {"$max": "$qty"}, "minp": {"$min": "$price"}}}], False),
    ("group-first-last", [{"$sort": {"_id": 1}}, {"$group": {"_id": "$item", "f": {"$first": "$qty"}, "l": {"$last": "$qty"}}}], False),
    ("group-push-set", [{"$sort": {"_id": 1}}, {"$group": {"_id": "$item", "qs": {"$push": "$qty"}, "ps": {"$addToSet": "$price"}}}], False),
    ("group-expr-key", [{"$group": {"_id": {"cheap": {"$lt": ["$price", 6]}}, "n": {"$sum": 1}}}], False),
    ("group-then-sort", [{"$group": {"_id": "$item", "q": {"$sum": "$qty"}}}, {"$sort": {"q": -1, "_id": 1}}], True),
    ("group-nested-key", [{"$group": {"_id": "$size.uom", "h": {"$sum": "$size.h"}}}], False),
    ("project-incl", [{"$project": {"item": 1, "qty": 1}}, {"$sort": {"_id": 1}}], True),
    ("project-excl", [{"$project": {"tags": 0, "size": 0}}, {"$sort": {"_id": 1}}], True),
    ("project-computed", [{"$project": {"_id": 0, "id": "$_id", "total": {"$multiply": ["$price", "$qty"]}}}, {"$sort": {"id": 1}}], True),
    ("project-nested", [{"$match": {"size": {"$exists": True}}}, {"$project": {"size.h": 1}}, {"$sort": {"_id": 1}}], True),
    ("addfields", [{"$addFields": {"total": {"$add": ["$price", "$qty"]}, "size.w": 1}}, {"$sort": {"_id": 1}}], True),
    ("set-unset", [{"$set": {"p2": {"$multiply": ["$price", 2]}}}, {"$unset": ["tags", "size"]}, {"$sort": {"_id": 1}}], True),
    ("unwind-string", [{"$unwind": "$tags"}, {"$project": {"tags": 1}}, {"$sort": {"_id": 1, "tags": 1}}], True),
    ("unwind-preserve", [{"$unwind": {"path": "$tags", "preserveNullAndEmptyArrays": True}}, {"$project": {"tags": 1}}, {"$sort": {"_id": 1, "tags": 1}}], True),
    ("unwind-index", [{"$unwind": {"path": "$tags", "includeArrayIndex": "idx"}}, {"$project": {"tags": 1, "idx": 1}}, {"$sort": {"_id": 1, "idx": 1}}], True),
    ("count", [{"$match": {"qty": {"$gt": 2}}}, {"$count": "n"}], True),
    ("sortbycount", [{"$unwind": "$tags"}, {"$sortByCount": "$tags"}, {"$sort": {"count": -1, "_id": 1}}], True),
    ("replaceroot", [{"$match": {"size": {"$exists": True}}}, {"$replaceRoot": {"newRoot": "$size"}}, {"$sort": {"h": 1}}], True),
    ("bucket", [{"$bucket": {"groupBy": "$price", "boundaries": [0, 5, 10, 100], "default": "other", "output": {"n": {"$sum": 1}}}}], True),
    ("facet", [{"$facet": {"n": [{"$count": "n"}], "cheap": [{"$match": {"price": {"$lt": 5}}}, {"$project": {"_id": 1}}, {"$sort": {"_id": 1}}]}}], True),
    ("skip-limit", [{"$sort": {"price": 1, "_id": 1}}, {"$skip": 2}, {"$limit": 3}, {"$project": {"price": 1}}], True),
    ("expr-cond", [{"$project": {"label": {"$cond": [{"$gte": ["$qty", 10]}, "bulk", "unit"]}}}, {"$sort": {"_id": 1}}], True),
    ("expr-ifnull", [{"$project": {"item": {"$ifNull": ["$item", "unknown"]}}}, {"$sort": {"_id": 1}}], True),
    ("expr-string", [{"$match": {"item": {"$type": "string"}}}, {"$project": {"u": {"$toUpper": "$item"}, "c": {"$concat": ["$item", "-", "x"]}, "s": {"$substrCP": ["$item", 1, 2]}}}, {"$sort": {"_id": 1}}], True),
    ("expr-array", [{"$match": {"tags": {"$type": "array"}}}, {"$project": {"n": {"$size": "$tags"}, "first": {"$arrayElemAt": ["$tags", 0]}, "has_a": {"$in": ["a", "$tags"]}}}, {"$sort": {"_id": 1}}], True),
    ("expr-filter-map", [{"$match": {"tags": {"$type": "array"}}}, {"$project": {"f": {"$filter": {"input": "$tags", "as": "t", "cond": {"$ne": ["$$t", "a"]}}}, "m": {"$map": {"input": "$tags", "as": "t", "in": {"$concat": ["$$t", "!"]}}}}}, {"$sort": {"_id": 1}}], True),
    ("expr-arith", [{"$project": {"d": {"$divide": ["$price", 2]}, "m": {"$mod": ["$qty", 3]}, "s": {"$subtract": ["$qty", "$price"]}, "a": {"$abs": {"$subtract": ["$qty", 10]}}}}, {"$sort": {"_id": 1}}], True),
    ("expr-match", [{"$match": {"$expr": {"$gt": ["$qty", "$price"]}}}, {"$project": {"_id": 1}}, {"$sort": {"_id": 1}}], True),
    ("lookup-self", [{"$match": {"_id": {"$lte": 3}}}, {"$lookup": {"from": "c", "localField": "item", "foreignField": "item", "as": "same"}}, {"$project": {"n": {"$size": "$same"}}}, {"$sort": {"_id": 1}}], True),
]

# Where mongomock 4.3.0 disagrees with MongoDB's documentation, by case id.
OVERRIDES = {}

# mongomock appends `_id` last in $group / $bucket output; MongoDB emits it first
# ("The output documents contain an _id field which contains the distinct group by key",
# and every server version returns it as the first field). Applied to those cases.
ID_FIRST_STAGES = ("$group", "$bucket")


def id_first(doc):
    if isinstance(doc, dict) and "_id" in doc:
        return {"_id": doc["_id"], **{k: v for k, v in doc.items() if k != "_id"}}
    return doc


def normalize(v):
    if isinstance(v, dict):
        return {k: normalize(x) for k, x in v.items()}
    if isinstance(v, list):
        return [normalize(x) for x in v]
    return v


def main():
    client = mongomock.MongoClient()
    coll = client.db.c
    coll.insert_many([dict(d) for d in CORPUS])
    out = []
    skipped = []
    for case_id, pipeline, ordered in CASES:
        if case_id in OVERRIDES:
            expected, reason = OVERRIDES[case_id]
            out.append({"id": case_id, "pipeline": pipeline, "ordered": ordered, "expected": expected, "override": reason})
            continue
        try:
            expected = normalize(list(coll.aggregate(pipeline)))
            if any(k in ID_FIRST_STAGES for stage in pipeline for k in stage):
                expected = [id_first(d) for d in expected]
        except Exception as e:  # mongomock's support is partial
            skipped.append((case_id, repr(e)))
            continue
        out.append({"id": case_id, "pipeline": pipeline, "ordered": ordered, "expected": expected})
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "aggregate_expected.json")
    with open(path, "w") as f:
        json.dump({"corpus": CORPUS, "cases": out}, f, indent=1, sort_keys=False)
        f.write("\n")
    print(f"{len(out)} cases written, {len(skipped)} skipped")
    for case_id, err in skipped:
        print(f"  skipped {case_id}: {err}")


if __name__ == "__main__":
    main()
