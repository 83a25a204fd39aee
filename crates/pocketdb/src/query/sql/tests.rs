//! Tests of the SQL back end against a hand-checked corpus: every case states the ids
//! MongoDB returns and whether the compiled SQL must be exact.

use super::*;
use crate::query::ast::{AllItem, Cond, ElemMatch, Filter, InItem, InList, Regex};
use rusqlite::Connection;
use serde_json::json;
use std::collections::BTreeSet;

fn corpus() -> Vec<Value> {
    vec![
        // numbers and mixed values under `n`
        json!({"_id": 1, "n": 1}),
        json!({"_id": 2, "n": 1.0}),
        json!({"_id": 3, "n": 2.5}),
        json!({"_id": 4, "n": -3}),
        json!({"_id": 5, "n": 10}),
        json!({"_id": 6, "n": "10"}),
        json!({"_id": 7, "n": true}),
        json!({"_id": 8, "n": false}),
        json!({"_id": 9, "n": null}),
        json!({"_id": 10, "n": [1, 20]}),
        json!({"_id": 11, "n": [5, "x"]}),
        json!({"_id": 12, "n": []}),
        json!({"_id": 13, "n": {"v": 1}}),
        json!({"_id": 14, "n": [[1, 2], 3]}),
        json!({"_id": 15, "n": 3000000000i64}),
        json!({"_id": 16, "n": [null, 7]}),
        json!({"_id": 17, "n": 0}),
        // strings under `s`
        json!({"_id": 20, "s": "apple"}),
        json!({"_id": 21, "s": "Apple"}),
        json!({"_id": 22, "s": "banana"}),
        json!({"_id": 23, "s": ""}),
        json!({"_id": 24, "s": ["apple", "cherry"]}),
        json!({"_id": 25, "s": "é"}),
        json!({"_id": 26, "s": "10"}),
        json!({"_id": 27, "s": 1}),
        // embedded documents under `o`
        json!({"_id": 30, "o": {"a": 1, "b": 2}}),
        json!({"_id": 31, "o": {"b": 2, "a": 1}}),
        json!({"_id": 32, "o": {"a": 1.0, "b": 2}}),
        json!({"_id": 33, "o": [{"a": 1, "b": 2}, {"c": 3}]}),
        json!({"_id": 34, "o": {"a": {"x": [1, 2]}}}),
        json!({"_id": 35, "o": {"a": null}}),
        json!({"_id": 36, "o": {}}),
        // arrays of documents under `items`
        json!({"_id": 40, "items": [{"sku": "A", "qty": 5}, {"sku": "B", "qty": 1}]}),
        json!({"_id": 41, "items": [{"sku": "C", "qty": 10}]}),
        json!({"_id": 42, "items": {"sku": "A", "qty": 2}}),
        json!({"_id": 43, "items": [{"sku": "A"}, {"qty": 7}]}),
        json!({"_id": 44, "items": [1, 2]}),
        json!({"_id": 45, "items": []}),
        json!({"_id": 46, "items": [[{"sku": "A", "qty": 5}]]}),
        json!({"_id": 47, "items": [{"sku": ["A", "D"], "qty": [3, 8]}]}),
        json!({"_id": 48, "items": "A"}),
        json!({"_id": 49, "items": [{"sku": null}]}),
        // three-level paths under `deep`
        json!({"_id": 50, "deep": {"a": {"b": 1}}}),
        json!({"_id": 51, "deep": [{"a": [{"b": 2}, {"b": 1}]}]}),
        json!({"_id": 52, "deep": {"a": [{"b": [3, 4]}]}}),
        json!({"_id": 53, "deep": {"a": 5}}),
        json!({"_id": 54, "deep": [{"a": {"c": 1}}]}),
        // booleans and tag arrays
        json!({"_id": 55, "flag": true, "tags": ["x", "y"]}),
        json!({"_id": 56, "flag": false, "tags": ["y"]}),
        json!({"_id": 57, "flag": 1, "tags": "x"}),
        json!({"_id": 58, "flag": 0, "tags": [["x"], "z"]}),
        json!({"_id": 59, "tags": [true, false]}),
        json!({"_id": 60}),
        json!({"_id": 61, "email": "a@x.io", "we'ird": 1, "a\"b": 2, "sp ace": 3,
               "a); DROP TABLE t; --": 4}),
        json!({"_id": 62, "email": ["b@x.io"]}),
        json!({"_id": 63, "num": {"0": "zero"}}),
        json!({"_id": 64, "num": ["zero"]}),
        json!({"_id": 65, "big": 18446744073709551615u64}),
        json!({"_id": 66, "big": 9223372036854775807i64}),
        json!({"_id": 67, "big": -2147483649i64, "n2": [1.5, -2]}),
        json!({"_id": 68, "n2": 2147483647}),
    ]
}

const TABLE: &str = "CREATE TABLE t (rid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, \
                     doc BLOB NOT NULL, rev INTEGER NOT NULL)";

fn db() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    register_functions(&conn).unwrap();
    conn.execute(TABLE, []).unwrap();
    for doc in corpus() {
        conn.execute(
            "INSERT INTO t (id, doc, rev) VALUES (?, jsonb(?), 1)",
            (doc["_id"].to_string(), doc.to_string()),
        )
        .unwrap();
    }
    conn
}

/// A table holding the documents written as these JSON texts (through `jsonb()`, so
/// escapes and number spellings stay as written), and the documents parsed.
fn db_of(texts: &[(i64, &str)]) -> (Connection, Vec<(i64, Value)>) {
    let conn = Connection::open_in_memory().unwrap();
    register_functions(&conn).unwrap();
    conn.execute(TABLE, []).unwrap();
    let mut docs = Vec::new();
    for (id, text) in texts {
        conn.execute(
            "INSERT INTO t (id, doc, rev) VALUES (?, jsonb(?), 1)",
            (id.to_string(), text),
        )
        .unwrap();
        docs.push((*id, serde_json::from_str::<Value>(text).unwrap()));
    }
    (conn, docs)
}

fn run(conn: &Connection, sql: &SqlFilter) -> BTreeSet<i64> {
    let text = format!("SELECT id FROM t WHERE {}", sql.sql);
    let mut stmt = conn
        .prepare(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}"));
    let rows = stmt
        .query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
            r.get::<_, String>(0)
        })
        .unwrap_or_else(|e| panic!("{e}: {text}"));
    rows.map(|r| r.unwrap().parse().unwrap()).collect()
}

fn all_ids() -> BTreeSet<i64> {
    corpus()
        .iter()
        .map(|d| d["_id"].as_i64().unwrap())
        .collect()
}

fn p(path: &str) -> FieldPath {
    FieldPath::from_segments(path.split('.').map(str::to_string).collect())
}

fn fld(path: &str, cond: Cond) -> Filter {
    Filter::Field {
        path: p(path),
        cond,
    }
}

fn eq(path: &str, v: Value) -> Filter {
    fld(path, Cond::Eq(v))
}

fn re(pattern: &str, options: &str) -> Regex {
    Regex::new(pattern, options).unwrap()
}

fn vals(vs: &[Value]) -> InList {
    vs.iter()
        .cloned()
        .map(InItem::Value)
        .collect::<Vec<_>>()
        .into()
}

fn types(names: &[&str]) -> Cond {
    Cond::Type(
        names
            .iter()
            .map(|n| BsonType::from_alias(n).unwrap())
            .collect(),
    )
}

fn number() -> Cond {
    types(&["double", "int", "long"])
}

/// Expected result: exactly these ids, or every id but these.
enum Exp {
    Ids(&'static [i64]),
    AllBut(&'static [i64]),
}

use Exp::{AllBut, Ids};

struct Case {
    name: String,
    filter: Filter,
    expected: Exp,
    exact: bool,
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    let mut c = |name: &str, filter: Filter, expected: Exp, exact: bool| {
        v.push(Case {
            name: name.to_string(),
            filter,
            expected,
            exact,
        })
    };
    // Docs holding `n`: 1..=17.
    const N_DOCS: [i64; 17] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17];
    let _ = N_DOCS;

    // --- numbers, type brackets, arrays of scalars
    c("n == 1", eq("n", json!(1)), Ids(&[1, 2, 10]), true);
    c("n == 1.0", eq("n", json!(1.0)), Ids(&[1, 2, 10]), true);
    c("n == 10", eq("n", json!(10)), Ids(&[5]), true);
    c("n == 7", eq("n", json!(7)), Ids(&[16]), true);
    c("n == 3", eq("n", json!(3)), Ids(&[14]), true);
    c(
        "n == 2 (nested array not expanded)",
        eq("n", json!(2)),
        Ids(&[]),
        true,
    );
    c("n == '10'", eq("n", json!("10")), Ids(&[6]), true);
    c("n == true", eq("n", json!(true)), Ids(&[7]), true);
    c("n == false", eq("n", json!(false)), Ids(&[8]), true);
    c(
        "n == null",
        eq("n", json!(null)),
        AllBut(&[1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 17]),
        true,
    );
    c(
        "n != null",
        fld("n", Cond::Ne(json!(null))),
        Ids(&[1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 17]),
        true,
    );
    c(
        "n != 1",
        fld("n", Cond::Ne(json!(1))),
        AllBut(&[1, 2, 10]),
        true,
    );
    c(
        "n > 2",
        fld("n", Cond::Gt(json!(2))),
        Ids(&[3, 5, 10, 11, 14, 15, 16]),
        true,
    );
    c(
        "n >= 1",
        fld("n", Cond::Gte(json!(1))),
        Ids(&[1, 2, 3, 5, 10, 11, 14, 15, 16]),
        true,
    );
    c("n < 1", fld("n", Cond::Lt(json!(1))), Ids(&[4, 17]), true);
    c(
        "n <= 1",
        fld("n", Cond::Lte(json!(1))),
        Ids(&[1, 2, 4, 10, 17]),
        true,
    );
    c(
        "n > 2.4",
        fld("n", Cond::Gt(json!(2.4))),
        Ids(&[3, 5, 10, 11, 14, 15, 16]),
        true,
    );
    c("n < -2.5", fld("n", Cond::Lt(json!(-2.5))), Ids(&[4]), true);
    c(
        "n > '1'",
        fld("n", Cond::Gt(json!("1"))),
        Ids(&[6, 11]),
        true,
    );
    c(
        "n > false",
        fld("n", Cond::Gt(json!(false))),
        Ids(&[7]),
        true,
    );
    c(
        "n >= false",
        fld("n", Cond::Gte(json!(false))),
        Ids(&[7, 8]),
        true,
    );
    c("n < true", fld("n", Cond::Lt(json!(true))), Ids(&[8]), true);
    c("n > true", fld("n", Cond::Gt(json!(true))), Ids(&[]), true);
    c(
        "n <= true",
        fld("n", Cond::Lte(json!(true))),
        Ids(&[7, 8]),
        true,
    );
    c(
        "n >= null",
        fld("n", Cond::Gte(json!(null))),
        AllBut(&[1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 17]),
        true,
    );
    c("n > null", fld("n", Cond::Gt(json!(null))), Ids(&[]), true);
    c("n < null", fld("n", Cond::Lt(json!(null))), Ids(&[]), true);
    c(
        "n in [1, '10', null]",
        fld("n", Cond::In(vals(&[json!(1), json!("10"), json!(null)]))),
        AllBut(&[3, 4, 5, 7, 8, 11, 12, 13, 14, 15, 17]),
        true,
    );
    c(
        "n in [2.5, -3, true]",
        fld("n", Cond::In(vals(&[json!(2.5), json!(-3), json!(true)]))),
        Ids(&[3, 4, 7]),
        true,
    );
    c(
        "n nin [1, 2.5]",
        fld("n", Cond::Nin(vals(&[json!(1), json!(2.5)]))),
        AllBut(&[1, 2, 3, 10]),
        true,
    );
    c(
        "n in []",
        fld("n", Cond::In(InList::default())),
        Ids(&[]),
        true,
    );
    c(
        "n nin []",
        fld("n", Cond::Nin(InList::default())),
        AllBut(&[]),
        true,
    );
    c(
        "n exists",
        fld("n", Cond::Exists(true)),
        Ids(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]),
        true,
    );
    c(
        "n not exists",
        fld("n", Cond::Exists(false)),
        AllBut(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]),
        true,
    );
    c(
        "n type double",
        fld("n", types(&["double"])),
        Ids(&[2, 3]),
        true,
    );
    c(
        "n type int",
        fld("n", types(&["int"])),
        Ids(&[1, 4, 5, 10, 11, 14, 16, 17]),
        true,
    );
    c("n type long", fld("n", types(&["long"])), Ids(&[15]), true);
    c(
        "n type bool",
        fld("n", types(&["bool"])),
        Ids(&[7, 8]),
        true,
    );
    c(
        "n type null",
        fld("n", types(&["null"])),
        Ids(&[9, 16]),
        true,
    );
    c(
        "n type array",
        fld("n", types(&["array"])),
        Ids(&[10, 11, 12, 14, 16]),
        true,
    );
    c(
        "n type object",
        fld("n", types(&["object"])),
        Ids(&[13]),
        true,
    );
    c(
        "n type string",
        fld("n", types(&["string"])),
        Ids(&[6, 11]),
        true,
    );
    c(
        "n type number",
        fld("n", number()),
        Ids(&[1, 2, 3, 4, 5, 10, 11, 14, 15, 16, 17]),
        true,
    );
    c(
        "n type string|bool",
        fld("n", types(&["string", "bool"])),
        Ids(&[6, 7, 8, 11]),
        true,
    );
    c(
        "n type long|string",
        fld("n", types(&["long", "string"])),
        Ids(&[6, 11, 15]),
        true,
    );
    c(
        "n type int|long|null",
        fld("n", types(&["int", "long", "null"])),
        Ids(&[1, 4, 5, 9, 10, 11, 14, 15, 16, 17]),
        true,
    );
    c(
        "n type array|double",
        fld("n", types(&["array", "double"])),
        Ids(&[2, 3, 10, 11, 12, 14, 16]),
        true,
    );
    c("n type []", fld("n", Cond::Type(vec![])), Ids(&[]), true);
    c(
        "n size 2",
        fld("n", Cond::Size(2)),
        Ids(&[10, 11, 14, 16]),
        true,
    );
    c("n size 0", fld("n", Cond::Size(0)), Ids(&[12]), true);
    c(
        "n mod 2 0",
        fld(
            "n",
            Cond::Mod {
                divisor: 2,
                remainder: 0,
            },
        ),
        Ids(&[3, 5, 10, 15, 17]),
        true,
    );
    c(
        "n mod 3 1",
        fld(
            "n",
            Cond::Mod {
                divisor: 3,
                remainder: 1,
            },
        ),
        Ids(&[1, 2, 5, 10, 16]),
        true,
    );
    c(
        "n mod 2 -1",
        fld(
            "n",
            Cond::Mod {
                divisor: 2,
                remainder: -1,
            },
        ),
        Ids(&[4]),
        true,
    );
    c(
        "n elemMatch gt 4 lt 10",
        fld(
            "n",
            Cond::ElemMatch(ElemMatch::Value(vec![
                Cond::Gt(json!(4)),
                Cond::Lt(json!(10)),
            ])),
        ),
        Ids(&[11, 16]),
        true,
    );
    c(
        "n gt 4 and lt 10 (separate elements)",
        Filter::And(vec![
            fld("n", Cond::Gt(json!(4))),
            fld("n", Cond::Lt(json!(10))),
        ]),
        Ids(&[10, 11, 16]),
        true,
    );
    c(
        "n elemMatch eq 2 (no nested expansion)",
        fld(
            "n",
            Cond::ElemMatch(ElemMatch::Value(vec![Cond::Eq(json!(2))])),
        ),
        Ids(&[]),
        true,
    );
    c(
        "n elemMatch type null",
        fld(
            "n",
            Cond::ElemMatch(ElemMatch::Value(vec![types(&["null"])])),
        ),
        Ids(&[16]),
        true,
    );
    c(
        "n elemMatch size 2",
        fld("n", Cond::ElemMatch(ElemMatch::Value(vec![Cond::Size(2)]))),
        Ids(&[14]),
        true,
    );
    c(
        "n elemMatch in [5, 20]",
        fld(
            "n",
            Cond::ElemMatch(ElemMatch::Value(vec![Cond::In(vals(&[
                json!(5),
                json!(20),
            ]))])),
        ),
        Ids(&[10, 11]),
        true,
    );
    c(
        "n elemMatch not gt 1",
        fld(
            "n",
            Cond::ElemMatch(ElemMatch::Value(vec![Cond::Not(vec![Cond::Gt(json!(1))])])),
        ),
        Ids(&[10, 11, 14, 16]),
        true,
    );
    c(
        "n not gt 2",
        fld("n", Cond::Not(vec![Cond::Gt(json!(2))])),
        AllBut(&[3, 5, 10, 11, 14, 15, 16]),
        true,
    );
    c(
        "n not (gt 0 and lt 5)",
        fld("n", Cond::Not(vec![Cond::Gt(json!(0)), Cond::Lt(json!(5))])),
        AllBut(&[1, 2, 3, 10, 14]),
        true,
    );
    c(
        "n not type number",
        fld("n", Cond::Not(vec![number()])),
        AllBut(&[1, 2, 3, 4, 5, 10, 11, 14, 15, 16, 17]),
        true,
    );
    c(
        "n not size 2",
        fld("n", Cond::Not(vec![Cond::Size(2)])),
        AllBut(&[10, 11, 14, 16]),
        true,
    );
    c(
        "nor n == 1, n == null",
        Filter::Nor(vec![eq("n", json!(1)), eq("n", json!(null))]),
        Ids(&[3, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15, 17]),
        true,
    );
    c(
        "n all [1, 20]",
        fld(
            "n",
            Cond::All(vec![AllItem::Value(json!(1)), AllItem::Value(json!(20))]),
        ),
        Ids(&[10]),
        true,
    );
    c(
        "n all [1]",
        fld("n", Cond::All(vec![AllItem::Value(json!(1))])),
        Ids(&[1, 2, 10]),
        true,
    );
    c("n all []", fld("n", Cond::All(vec![])), Ids(&[]), true);
    c(
        "n all [elemMatch gt 6, 5]",
        fld(
            "n",
            Cond::All(vec![
                AllItem::ElemMatch(ElemMatch::Value(vec![Cond::Gt(json!(6))])),
                AllItem::Value(json!(1)),
            ]),
        ),
        Ids(&[10]),
        true,
    );
    c("n == [1, 20]", eq("n", json!([1, 20])), Ids(&[10]), true);
    c(
        "n == [1.0, 20]",
        eq("n", json!([1.0, 20])),
        Ids(&[10]),
        true,
    );
    c("n == [20, 1]", eq("n", json!([20, 1])), Ids(&[]), true);
    c(
        "n == [1, 2] (element)",
        eq("n", json!([1, 2])),
        Ids(&[14]),
        true,
    );
    c("n == []", eq("n", json!([])), Ids(&[12]), true);
    c("n == {v: 1}", eq("n", json!({"v": 1})), Ids(&[13]), true);
    c(
        "n == {v: 1.0}",
        eq("n", json!({"v": 1.0})),
        Ids(&[13]),
        true,
    );
    c(
        "n != {v: 1}",
        fld("n", Cond::Ne(json!({"v": 1}))),
        AllBut(&[13]),
        true,
    );
    c(
        "n in [[1, 2], true]",
        fld("n", Cond::In(vals(&[json!([1, 2]), json!(true)]))),
        Ids(&[7, 14]),
        true,
    );
    c(
        "n > [1]",
        fld("n", Cond::Gt(json!([1]))),
        Ids(&[10, 11, 14]),
        true,
    );
    c("n <= []", fld("n", Cond::Lte(json!([]))), Ids(&[12]), true);
    c("n > {}", fld("n", Cond::Gt(json!({}))), Ids(&[13]), true);
    c(
        "or n == 1, n type string",
        Filter::Or(vec![eq("n", json!(1)), fld("n", types(&["string"]))]),
        Ids(&[1, 2, 6, 10, 11]),
        true,
    );
    c(
        "n regex ^1",
        fld("n", Cond::Regex(re("^1", ""))),
        Ids(&[6]),
        true,
    );
    c(
        "n regex x",
        fld("n", Cond::Regex(re("x", ""))),
        Ids(&[11]),
        true,
    );

    // --- strings
    c("s == apple", eq("s", json!("apple")), Ids(&[20, 24]), true);
    c("s == cherry", eq("s", json!("cherry")), Ids(&[24]), true);
    c("s == ''", eq("s", json!("")), Ids(&[23]), true);
    c("s == é", eq("s", json!("é")), Ids(&[25]), true);
    c("s == 1", eq("s", json!(1)), Ids(&[27]), true);
    c("s == '1'", eq("s", json!("1")), Ids(&[]), true);
    c(
        "s > b",
        fld("s", Cond::Gt(json!("b"))),
        Ids(&[22, 24, 25]),
        true,
    );
    c(
        "s < a",
        fld("s", Cond::Lt(json!("a"))),
        Ids(&[21, 23, 26]),
        true,
    );
    c(
        "s >= ''",
        fld("s", Cond::Gte(json!(""))),
        Ids(&[20, 21, 22, 23, 24, 25, 26]),
        true,
    );
    c(
        "s regex ^a",
        fld("s", Cond::Regex(re("^a", ""))),
        Ids(&[20, 24]),
        true,
    );
    c(
        "s regex ^a/i",
        fld("s", Cond::Regex(re("^a", "i"))),
        Ids(&[20, 21, 24]),
        true,
    );
    c(
        "s regex an",
        fld("s", Cond::Regex(re("an", ""))),
        Ids(&[22]),
        true,
    );
    c(
        "s regex ^$",
        fld("s", Cond::Regex(re("^$", ""))),
        Ids(&[23]),
        true,
    );
    c(
        "s regex é",
        fld("s", Cond::Regex(re("é", ""))),
        Ids(&[25]),
        true,
    );
    c(
        "s regex ^1$ (numbers never)",
        fld("s", Cond::Regex(re("^1$", ""))),
        Ids(&[]),
        true,
    );
    c(
        "s not regex ^a",
        fld("s", Cond::Not(vec![Cond::Regex(re("^a", ""))])),
        AllBut(&[20, 24]),
        true,
    );
    c(
        "s in [/^b/, Apple]",
        fld(
            "s",
            Cond::In(vec![InItem::Regex(re("^b", "")), InItem::Value(json!("Apple"))].into()),
        ),
        Ids(&[21, 22]),
        true,
    );
    c(
        "s nin [/^a/i, '']",
        fld(
            "s",
            Cond::Nin(vec![InItem::Regex(re("^a", "i")), InItem::Value(json!(""))].into()),
        ),
        AllBut(&[20, 21, 23, 24]),
        true,
    );
    c(
        "s type string",
        fld("s", types(&["string"])),
        Ids(&[20, 21, 22, 23, 24, 25, 26]),
        true,
    );
    c(
        "s all [apple, cherry]",
        fld(
            "s",
            Cond::All(vec![
                AllItem::Value(json!("apple")),
                AllItem::Value(json!("cherry")),
            ]),
        ),
        Ids(&[24]),
        true,
    );
    c(
        "s all [/^c/]",
        fld("s", Cond::All(vec![AllItem::Regex(re("^c", ""))])),
        Ids(&[24]),
        true,
    );
    c(
        "s elemMatch regex ^ch",
        fld(
            "s",
            Cond::ElemMatch(ElemMatch::Value(vec![Cond::Regex(re("^ch", ""))])),
        ),
        Ids(&[24]),
        true,
    );

    // --- embedded documents
    c(
        "o == {a:1,b:2}",
        eq("o", json!({"a": 1, "b": 2})),
        Ids(&[30, 32, 33]),
        true,
    );
    c(
        "o == {b:2,a:1}",
        eq("o", json!({"b": 2, "a": 1})),
        Ids(&[31]),
        true,
    );
    c("o == {}", eq("o", json!({})), Ids(&[36]), true);
    c(
        "o == {a: null}",
        eq("o", json!({"a": null})),
        Ids(&[35]),
        true,
    );
    c(
        "o.a == 1",
        eq("o.a", json!(1)),
        Ids(&[30, 31, 32, 33]),
        true,
    );
    c(
        "o.a == null",
        eq("o.a", json!(null)),
        AllBut(&[30, 31, 32, 34]),
        true,
    );
    c(
        "o.a exists",
        fld("o.a", Cond::Exists(true)),
        Ids(&[30, 31, 32, 33, 34, 35]),
        true,
    );
    c(
        "o.a not exists",
        fld("o.a", Cond::Exists(false)),
        AllBut(&[30, 31, 32, 33, 34, 35]),
        true,
    );
    c("o.a.x == 2", eq("o.a.x", json!(2)), Ids(&[34]), true);
    c(
        "o.a.x size 2",
        fld("o.a.x", Cond::Size(2)),
        Ids(&[34]),
        true,
    );
    c("o.c == 3", eq("o.c", json!(3)), Ids(&[33]), true);
    c(
        "o.b > 1",
        fld("o.b", Cond::Gt(json!(1))),
        Ids(&[30, 31, 32, 33]),
        true,
    );
    c(
        "o elemMatch {a: 1}",
        fld(
            "o",
            Cond::ElemMatch(ElemMatch::Document(Box::new(eq("a", json!(1))))),
        ),
        Ids(&[33]),
        true,
    );
    c(
        "o elemMatch {c exists}",
        fld(
            "o",
            Cond::ElemMatch(ElemMatch::Document(Box::new(fld("c", Cond::Exists(true))))),
        ),
        Ids(&[33]),
        true,
    );
    c(
        "o elemMatch {a gte 1}",
        fld(
            "o",
            Cond::ElemMatch(ElemMatch::Document(Box::new(fld("a", Cond::Gte(json!(1)))))),
        ),
        Ids(&[33]),
        true,
    );
    c(
        "o type object",
        fld("o", types(&["object"])),
        Ids(&[30, 31, 32, 33, 34, 35, 36]),
        true,
    );
    c(
        "o > {a: 1}",
        fld("o", Cond::Gt(json!({"a": 1}))),
        Ids(&[30, 31, 32, 33, 34]),
        true,
    );
    c(
        "o < {a: 1}",
        fld("o", Cond::Lt(json!({"a": 1}))),
        Ids(&[35, 36]),
        true,
    );

    // --- arrays of documents
    c(
        "items.sku == A",
        eq("items.sku", json!("A")),
        Ids(&[40, 42, 43, 47]),
        true,
    );
    c(
        "items.sku == D",
        eq("items.sku", json!("D")),
        Ids(&[47]),
        true,
    );
    c(
        "items.qty > 4",
        fld("items.qty", Cond::Gt(json!(4))),
        Ids(&[40, 41, 43, 47]),
        true,
    );
    c(
        "items.sku == null",
        eq("items.sku", json!(null)),
        AllBut(&[40, 41, 42, 44, 45, 46, 47]),
        true,
    );
    c(
        "items.sku exists",
        fld("items.sku", Cond::Exists(true)),
        Ids(&[40, 41, 42, 43, 47, 49]),
        true,
    );
    c(
        "items.sku not exists",
        fld("items.sku", Cond::Exists(false)),
        AllBut(&[40, 41, 42, 43, 47, 49]),
        true,
    );
    c(
        "items.sku != A",
        fld("items.sku", Cond::Ne(json!("A"))),
        AllBut(&[40, 42, 43, 47]),
        true,
    );
    c(
        "items elemMatch {sku: A, qty > 4}",
        fld(
            "items",
            Cond::ElemMatch(ElemMatch::Document(Box::new(Filter::And(vec![
                eq("sku", json!("A")),
                fld("qty", Cond::Gt(json!(4))),
            ])))),
        ),
        Ids(&[40, 47]),
        true,
    );
    c(
        "items.sku == A and items.qty > 4",
        Filter::And(vec![
            eq("items.sku", json!("A")),
            fld("items.qty", Cond::Gt(json!(4))),
        ]),
        Ids(&[40, 43, 47]),
        true,
    );
    c(
        "items elemMatch {or sku C, qty 7}",
        fld(
            "items",
            Cond::ElemMatch(ElemMatch::Document(Box::new(Filter::Or(vec![
                eq("sku", json!("C")),
                eq("qty", json!(7)),
            ])))),
        ),
        Ids(&[41, 43]),
        true,
    );
    c(
        "items elemMatch {sku not exists}",
        fld(
            "items",
            Cond::ElemMatch(ElemMatch::Document(Box::new(fld(
                "sku",
                Cond::Exists(false),
            )))),
        ),
        Ids(&[43, 46]),
        true,
    );
    c(
        "items size 2",
        fld("items", Cond::Size(2)),
        Ids(&[40, 43, 44]),
        true,
    );
    c(
        "items size 0",
        fld("items", Cond::Size(0)),
        Ids(&[45]),
        true,
    );
    c(
        "items.sku in [B, C]",
        fld("items.sku", Cond::In(vals(&[json!("B"), json!("C")]))),
        Ids(&[40, 41]),
        true,
    );
    c(
        "items elemMatch gt 1 (value form)",
        fld(
            "items",
            Cond::ElemMatch(ElemMatch::Value(vec![Cond::Gt(json!(1))])),
        ),
        Ids(&[44]),
        true,
    );
    c(
        "items.qty all [3, 8]",
        fld(
            "items.qty",
            Cond::All(vec![AllItem::Value(json!(3)), AllItem::Value(json!(8))]),
        ),
        Ids(&[47]),
        true,
    );
    c(
        "items type array",
        fld("items", types(&["array"])),
        Ids(&[40, 41, 43, 44, 45, 46, 47, 49]),
        true,
    );
    c(
        "items.sku type string",
        fld("items.sku", types(&["string"])),
        Ids(&[40, 41, 42, 43, 47]),
        true,
    );
    c(
        "items.qty mod 5 0",
        fld(
            "items.qty",
            Cond::Mod {
                divisor: 5,
                remainder: 0,
            },
        ),
        Ids(&[40, 41]),
        true,
    );
    c("items == A", eq("items", json!("A")), Ids(&[48]), true);
    c(
        "items == {sku: A, qty: 5} (element)",
        eq("items", json!({"sku": "A", "qty": 5})),
        Ids(&[40]),
        true,
    );
    c(
        "nor items.sku == A",
        Filter::Nor(vec![eq("items.sku", json!("A"))]),
        AllBut(&[40, 42, 43, 47]),
        true,
    );

    // --- three-level paths
    c(
        "deep.a.b == 1",
        eq("deep.a.b", json!(1)),
        Ids(&[50, 51]),
        true,
    );
    c("deep.a.b == 3", eq("deep.a.b", json!(3)), Ids(&[52]), true);
    c(
        "deep.a.b == null",
        eq("deep.a.b", json!(null)),
        AllBut(&[50, 51, 52]),
        true,
    );
    c(
        "deep.a.b exists",
        fld("deep.a.b", Cond::Exists(true)),
        Ids(&[50, 51, 52]),
        true,
    );
    c(
        "deep.a.b > 1",
        fld("deep.a.b", Cond::Gt(json!(1))),
        Ids(&[51, 52]),
        true,
    );
    c("deep.a.c == 1", eq("deep.a.c", json!(1)), Ids(&[54]), true);
    c("deep.a == 5", eq("deep.a", json!(5)), Ids(&[53]), true);
    c(
        "deep.a type array",
        fld("deep.a", types(&["array"])),
        Ids(&[51, 52]),
        true,
    );

    // --- booleans never equal numbers
    c("flag == true", eq("flag", json!(true)), Ids(&[55]), true);
    c("flag == false", eq("flag", json!(false)), Ids(&[56]), true);
    c("flag == 1", eq("flag", json!(1)), Ids(&[57]), true);
    c("flag == 0", eq("flag", json!(0)), Ids(&[58]), true);
    c(
        "flag in [true, 0]",
        fld("flag", Cond::In(vals(&[json!(true), json!(0)]))),
        Ids(&[55, 58]),
        true,
    );
    c(
        "flag != true",
        fld("flag", Cond::Ne(json!(true))),
        AllBut(&[55]),
        true,
    );
    c(
        "flag > 0",
        fld("flag", Cond::Gt(json!(0))),
        Ids(&[57]),
        true,
    );
    c("tags == x", eq("tags", json!("x")), Ids(&[55, 57]), true);
    c("tags == [x]", eq("tags", json!(["x"])), Ids(&[58]), true);
    c(
        "tags == [x, y]",
        eq("tags", json!(["x", "y"])),
        Ids(&[55]),
        true,
    );
    c(
        "tags all [x, y]",
        fld(
            "tags",
            Cond::All(vec![AllItem::Value(json!("x")), AllItem::Value(json!("y"))]),
        ),
        Ids(&[55]),
        true,
    );
    c("tags == true", eq("tags", json!(true)), Ids(&[59]), true);
    c(
        "tags type bool",
        fld("tags", types(&["bool"])),
        Ids(&[59]),
        true,
    );
    c(
        "tags nin [x]",
        fld("tags", Cond::Nin(vals(&[json!("x")]))),
        AllBut(&[55, 57]),
        true,
    );
    c(
        "tags size 2",
        fld("tags", Cond::Size(2)),
        Ids(&[55, 58, 59]),
        true,
    );
    c(
        "tags elemMatch eq y",
        fld(
            "tags",
            Cond::ElemMatch(ElemMatch::Value(vec![Cond::Eq(json!("y"))])),
        ),
        Ids(&[55, 56]),
        true,
    );
    c(
        "tags elemMatch ne x",
        fld(
            "tags",
            Cond::ElemMatch(ElemMatch::Value(vec![Cond::Ne(json!("x"))])),
        ),
        Ids(&[55, 56, 58, 59]),
        true,
    );
    c(
        "tags elemMatch type array",
        fld(
            "tags",
            Cond::ElemMatch(ElemMatch::Value(vec![types(&["array"])])),
        ),
        Ids(&[58]),
        true,
    );
    c(
        "tags elemMatch nin [x, y]",
        fld(
            "tags",
            Cond::ElemMatch(ElemMatch::Value(vec![Cond::Nin(vals(&[
                json!("x"),
                json!("y"),
            ]))])),
        ),
        Ids(&[58, 59]),
        true,
    );

    // --- odd field names, numeric segments, big numbers
    c(
        "email == a@x.io",
        eq("email", json!("a@x.io")),
        Ids(&[61]),
        true,
    );
    c(
        "email == b@x.io",
        eq("email", json!("b@x.io")),
        Ids(&[62]),
        true,
    );
    c("we'ird == 1", eq("we'ird", json!(1)), Ids(&[61]), true);
    c("sp ace == 3", eq("sp ace", json!(3)), Ids(&[61]), true);
    c(
        "injection-looking key == 4",
        eq("a); DROP TABLE t; --", json!(4)),
        Ids(&[61]),
        true,
    );
    c(
        "a\"b == 2 (unsafe segment)",
        eq("a\"b", json!(2)),
        Ids(&[61]),
        false,
    );
    c(
        "a\\b == 2 (unsafe segment)",
        eq("a\\b", json!(2)),
        Ids(&[]),
        false,
    );
    c(
        "num.0 == zero",
        eq("num.0", json!("zero")),
        Ids(&[63, 64]),
        false,
    );
    c("n.0 == 1", eq("n.0", json!(1)), Ids(&[10]), false);
    c(
        "not num.0 == zero (negated superset is 1)",
        fld("num.0", Cond::Ne(json!("zero"))),
        AllBut(&[63, 64]),
        false,
    );
    c(
        "nor [num.0 == zero]",
        Filter::Nor(vec![eq("num.0", json!("zero"))]),
        AllBut(&[63, 64]),
        false,
    );
    c(
        "and [num.0 == zero, num type array]",
        Filter::And(vec![
            eq("num.0", json!("zero")),
            fld("num", types(&["array"])),
        ]),
        Ids(&[64]),
        false,
    );
    c(
        "or [num.0 == zero, n == 1]",
        Filter::Or(vec![eq("num.0", json!("zero")), eq("n", json!(1))]),
        Ids(&[1, 2, 10, 63, 64]),
        false,
    );
    c(
        "elemMatch with inexact child",
        fld(
            "n",
            Cond::ElemMatch(ElemMatch::Document(Box::new(eq("0", json!(1))))),
        ),
        Ids(&[14]),
        false,
    );
    c(
        "too deep path",
        eq("a.b.c.d.e.f.g", json!(1)),
        Ids(&[]),
        false,
    );
    c(
        "big type long",
        fld("big", types(&["long"])),
        Ids(&[65, 66, 67]),
        true,
    );
    c(
        "n2 type int",
        fld("n2", types(&["int"])),
        Ids(&[67, 68]),
        true,
    );
    c(
        "n2 type double",
        fld("n2", types(&["double"])),
        Ids(&[67]),
        true,
    );
    c(
        "big == i64::MAX",
        eq("big", json!(i64::MAX)),
        Ids(&[66]),
        true,
    );
    c(
        "big > i64::MAX",
        fld("big", Cond::Gt(json!(i64::MAX))),
        Ids(&[65]),
        true,
    );
    c("big < 0", fld("big", Cond::Lt(json!(0))), Ids(&[67]), true);
    // Equality compares in Rust (`pocketdb_eq`), exactly beyond f64's precision.
    c(
        "big == u64::MAX",
        eq("big", json!(u64::MAX)),
        Ids(&[65]),
        true,
    );
    c(
        "big >= u64::MAX",
        fld("big", Cond::Gte(json!(u64::MAX))),
        Ids(&[65]),
        false,
    );

    // --- logic
    c("and []", Filter::And(vec![]), AllBut(&[]), true);
    c("or []", Filter::Or(vec![]), Ids(&[]), true);
    c(
        "or [n == 1, s == apple]",
        Filter::Or(vec![eq("n", json!(1)), eq("s", json!("apple"))]),
        Ids(&[1, 2, 10, 20, 24]),
        true,
    );
    c(
        "nor [n exists, s exists, o exists]",
        Filter::Nor(vec![
            fld("n", Cond::Exists(true)),
            fld("s", Cond::Exists(true)),
            fld("o", Cond::Exists(true)),
        ]),
        AllBut(&[
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 20, 21, 22, 23, 24, 25, 26,
            27, 30, 31, 32, 33, 34, 35, 36,
        ]),
        true,
    );
    c(
        "and [or [n == 1, n == 10], n type int]",
        Filter::And(vec![
            Filter::Or(vec![eq("n", json!(1)), eq("n", json!(10))]),
            fld("n", types(&["int"])),
        ]),
        Ids(&[1, 5, 10]),
        true,
    );
    c(
        "nor [nor [flag == true]]",
        Filter::Nor(vec![Filter::Nor(vec![eq("flag", json!(true))])]),
        Ids(&[55]),
        true,
    );
    v
}

#[test]
fn corpus_cases() {
    let conn = db();
    let all = all_ids();
    let mut failures = Vec::new();
    let cases = cases();
    assert!(cases.len() >= 150, "only {} cases", cases.len());
    for case in &cases {
        let expected: BTreeSet<i64> = match case.expected {
            Ids(ids) => ids.iter().copied().collect(),
            AllBut(ids) => all.iter().copied().filter(|i| !ids.contains(i)).collect(),
        };
        let sql = compile_filter(&case.filter);
        let got = run(&conn, &sql);
        if sql.exact != case.exact {
            failures.push(format!(
                "{}: exact={} expected {}\n  sql: {}",
                case.name, sql.exact, case.exact, sql.sql
            ));
        }
        let ok = if sql.exact {
            got == expected
        } else {
            got.is_superset(&expected)
        };
        if !ok {
            failures.push(format!(
                "{}: got {:?}\n  expected {:?}\n  missing {:?} extra {:?}\n  sql: {}\n  params: {:?}",
                case.name,
                got,
                expected,
                expected.difference(&got).collect::<Vec<_>>(),
                got.difference(&expected).collect::<Vec<_>>(),
                sql.sql,
                sql.params
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every string operand of the corpus cases is bound, never spliced.
#[test]
fn operands_are_bound() {
    let secret = "\u{FFFF}zz'); DROP TABLE t; --\"";
    let filters = vec![
        eq("s", json!(secret)),
        fld("s", Cond::Gt(json!(secret))),
        fld("s", Cond::In(vals(&[json!(secret), json!(12345)]))),
        fld("s", Cond::Nin(vals(&[json!(secret)]))),
        fld("s", Cond::Regex(re(&regex::escape(secret), "i"))),
        eq("o", json!({"k": secret})),
        fld("items", Cond::All(vec![AllItem::Value(json!(secret))])),
        fld(
            "items",
            Cond::ElemMatch(ElemMatch::Document(Box::new(eq("sku", json!(secret))))),
        ),
        eq("items.sku", json!(secret)),
    ];
    let conn = db();
    for (i, f) in filters.into_iter().enumerate() {
        let sql = compile_filter(&f);
        assert!(!sql.sql.contains("zz"), "operand spliced: {}", sql.sql);
        assert!(!sql.sql.contains("DROP"), "operand spliced: {}", sql.sql);
        assert!(sql.exact);
        assert_eq!(
            sql.sql.matches('?').count(),
            sql.params.len(),
            "{}",
            sql.sql
        );
        let got = run(&conn, &sql);
        // The `$nin` filter (index 3) matches everything, the others nothing.
        assert_eq!(
            got.len(),
            if i == 3 { corpus().len() } else { 0 },
            "{i}: {}",
            sql.sql
        );
    }
    let count: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, corpus().len() as i64);
}

#[test]
fn malicious_field_names_are_quoted_or_refused() {
    let conn = db();
    for name in [
        "a'b",
        "a\"b",
        "a); DROP TABLE t; --",
        "x'); DROP TABLE t; --",
        "a\\\"b",
        "q\"]'",
        "tab\there",
        "ünï",
        "[0]",
        "$.x",
        "*",
    ] {
        let path = FieldPath::from_segments(vec![name.to_string()]);
        let nested = FieldPath::from_segments(vec!["o".into(), name.to_string()]);
        for p in [&path, &nested] {
            let unsafe_segment = name.contains('"') || name.contains('\\') || name.contains('\t');
            assert_eq!(path_expr(p).is_none(), unsafe_segment, "{name}");
            if let Some(expr) = path_expr(p) {
                // The only quote characters are the literal's own, doubled inside.
                let inner = &expr["json_extract(doc,'".len()..expr.len() - 2];
                assert!(!inner.replace("''", "").contains('\''), "{expr}");
                conn.query_row(
                    &format!("SELECT count(*) FROM t WHERE {expr} = 1"),
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap_or_else(|e| panic!("{e}: {expr}"));
            }
            let sql = compile_filter(&Filter::Field {
                path: p.clone(),
                cond: Cond::Eq(json!(1)),
            });
            run(&conn, &sql);
        }
    }
    let count: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, corpus().len() as i64);
}

#[test]
fn odd_keys_are_found() {
    let conn = db();
    conn.execute(
        "INSERT INTO t (id, doc, rev) VALUES ('100', jsonb(?), 1)",
        [json!({"[0]": 1, "$x": 2, "*": 3, "ünï": 4, "a]b": 5}).to_string()],
    )
    .unwrap();
    for (key, value) in [("[0]", 1), ("$x", 2), ("*", 3), ("ünï", 4), ("a]b", 5)] {
        let sql = compile_filter(&eq(key, json!(value)));
        assert!(sql.exact);
        assert_eq!(
            run(&conn, &sql),
            BTreeSet::from([100]),
            "{key}: {}",
            sql.sql
        );
    }
}

#[test]
fn inexact_paths_still_narrow() {
    let conn = db();
    let sql = compile_filter(&eq("num.0", json!("zero")));
    assert!(!sql.exact);
    assert_eq!(run(&conn, &sql), BTreeSet::from([63, 64]));
    let sql = compile_filter(&fld("n.1", Cond::Gt(json!(3))));
    assert_eq!(run(&conn, &sql).len(), 17);
    // Null matches missing: no narrowing possible.
    let sql = compile_filter(&eq("num.0", json!(null)));
    assert_eq!(sql.sql, "1");
    let sql = compile_filter(&fld("num.0", Cond::In(vals(&[json!(1), json!(null)]))));
    assert_eq!(sql.sql, "1");
    let sql = compile_filter(&eq("a\"b.c", json!(1)));
    assert_eq!(sql.sql, "1");
}

#[test]
fn path_and_type_expressions() {
    assert_eq!(
        path_expr(&p("a.b")).unwrap(),
        "json_extract(doc,'$.\"a\".\"b\"')"
    );
    assert_eq!(type_expr(&p("a")).unwrap(), "json_type(doc,'$.\"a\"')");
    assert_eq!(
        path_expr(&p("it's")).unwrap(),
        "json_extract(doc,'$.\"it''s\"')"
    );
    assert!(path_expr(&p("a.0")).is_none());
    assert!(path_expr(&p("a\"b")).is_none());
}

fn plan(conn: &Connection, sql: &SqlFilter) -> String {
    let text = format!("EXPLAIN QUERY PLAN SELECT id FROM t WHERE {}", sql.sql);
    let mut stmt = conn.prepare(&text).unwrap();
    let rows = stmt
        .query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
            r.get::<_, String>(3)
        })
        .unwrap();
    rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("\n")
}

#[test]
fn expression_index_is_used_for_scalar_paths() {
    let conn = db();
    let email = p("email");
    let expr = path_expr(&email).unwrap();
    conn.execute(&format!("CREATE INDEX i ON t({expr})"), [])
        .unwrap();
    let options = CompileOptions {
        scalar_paths: HashSet::from([email.clone(), p("o.a")]),
    };
    for filter in [
        eq("email", json!("a@x.io")),
        fld("email", Cond::Gt(json!("a"))),
        fld("email", Cond::In(vals(&[json!("a@x.io"), json!("c")]))),
        Filter::And(vec![eq("email", json!("a@x.io")), eq("n", json!(1))]),
    ] {
        let sql = compile_filter_with(&filter, &options);
        assert!(sql.exact);
        assert!(
            !sql.sql.contains("json_each(doc,'$.\"email\"')"),
            "{}",
            sql.sql
        );
        let plan = plan(&conn, &sql);
        assert!(plan.contains("USING INDEX i"), "{plan}\n{}", sql.sql);
    }
    // Without the knowledge the array branch stays, and the SQL is still right.
    let sql = compile_filter(&eq("email", json!("b@x.io")));
    assert_eq!(run(&conn, &sql), BTreeSet::from([62]));
    // Nested scalar path: index on o.a.
    let oa = path_expr(&p("o.a")).unwrap();
    conn.execute(&format!("CREATE INDEX j ON t({oa})"), [])
        .unwrap();
    let sql = compile_filter_with(&fld("o.a", Cond::Gte(json!(1))), &options);
    assert!(plan(&conn, &sql).contains("USING INDEX j"), "{}", sql.sql);
}

#[test]
fn regex_function_errors_cleanly_without_registration() {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute(TABLE, []).unwrap();
    let sql = compile_filter(&fld("s", Cond::Regex(re("a", ""))));
    let text = format!("SELECT id FROM t WHERE {}", sql.sql);
    assert!(conn.prepare(&text).is_err());
}

#[test]
fn regex_function_checks_its_inputs() {
    let conn = Connection::open_in_memory().unwrap();
    register_functions(&conn).unwrap();
    let m = |sql: &str| -> rusqlite::Result<i64> { conn.query_row(sql, [], |r| r.get(0)) };
    assert_eq!(m("SELECT pocketdb_regex('^a', 'i', 'Abc')").unwrap(), 1);
    assert_eq!(m("SELECT pocketdb_regex('^a', '', 'Abc')").unwrap(), 0);
    assert_eq!(m("SELECT pocketdb_regex('^a', '', 5)").unwrap(), 0);
    assert_eq!(m("SELECT pocketdb_regex('^a', '', NULL)").unwrap(), 0);
    assert!(m("SELECT pocketdb_regex('(', '', 'x')").is_err());
    assert!(m("SELECT pocketdb_regex('a', 'q', 'x')").is_err());
    assert_eq!(m("SELECT pocketdb_json_cmp('[1]', '[1.0]')").unwrap(), 0);
    assert_eq!(
        m("SELECT pocketdb_json_cmp('{\"a\":1}', '{\"a\":2}')").unwrap(),
        -1
    );
    assert!(m("SELECT pocketdb_json_cmp('nope', '1')").is_err());
}

/// A comparison on a path that may hold arrays reads the path's type once per row (`$gt`
/// guarded by the value, `$lte` in one `pocketdb_cmp` lookup), and a conjunction tests
/// its equalities first (SQLite evaluates a scan's terms in order).
/// Results are checked against the matcher on the corpus above.
#[test]
fn comparisons_read_the_type_once_and_equalities_come_first() {
    let conn = db();
    let matching = |f: &Filter| -> BTreeSet<i64> {
        corpus()
            .iter()
            .filter(|d| f.matches(d))
            .map(|d| d["_id"].as_i64().unwrap())
            .collect()
    };
    let range = Filter::And(vec![
        fld("n", Cond::Gt(json!(1))),
        fld("n", Cond::Lte(json!(40))),
    ]);
    let sql = compile_filter(&range);
    assert!(sql.exact);
    assert_eq!(sql.sql.matches("json_type(").count(), 1, "{}", sql.sql);
    assert_eq!(sql.sql.matches(CMP_FUNCTION).count(), 1, "{}", sql.sql);
    let expected = matching(&range);
    assert!(expected.contains(&10), "the array [1, 20] matches");
    assert_eq!(run(&conn, &sql), expected);

    let mixed = Filter::And(vec![fld("n", Cond::Gt(json!(1))), eq("s", json!("apple"))]);
    let sql = compile_filter(&mixed);
    let s_at = sql.sql.find("'$.\"s\"'").unwrap();
    let n_at = sql.sql.find("'$.\"n\"'").unwrap();
    assert!(s_at < n_at, "{}", sql.sql);
    assert_eq!(run(&conn, &sql), matching(&mixed));
}

/// `pocketdb_eq` compares values, not texts: strings stored with escapes serde_json
/// would not write (by `jsonb()` of other JSON text, or by `json_set` from SQL), numbers
/// of another spelling, and array elements.
#[test]
fn equality_does_not_depend_on_how_the_value_was_written() {
    let texts = [
        (1, r#"{"s": "\u0061pple"}"#),
        (2, r#"{"s": "a\"b"}"#),
        (3, r#"{"s": "a\u0022b"}"#),
        (4, r#"{"s": "tab\there"}"#),
        (5, r#"{"s": "caf\u00e9"}"#),
        (6, r#"{"s": ["x", "\u0061pple"]}"#),
        (7, r#"{"s": 1e0}"#),
        (8, r#"{"s": [2, 1.00]}"#),
        (9, r#"{"s": [["apple"]]}"#),
        (10, r#"{"s": [{"s": "apple"}]}"#),
        (11, r#"{"s": "\"apple\""}"#),
        (12, r#"{"s": -0.0}"#),
        (14, r#"{"s": -0}"#),
        (15, r#"{"s": 10}"#),
        (16, r#"{"s": -10}"#),
        (17, r#"{"s": true}"#),
        (18, r#"{"s": [false, 1]}"#),
        (19, r#"{"s": "true"}"#),
    ];
    let (conn, _) = db_of(&texts);
    conn.execute(
        "INSERT INTO t (id, doc, rev) VALUES ('13', json_set(jsonb('{}'), '$.s', ?), 1)",
        ["line\nbreak \"q\""],
    )
    .unwrap();
    let ids = |v: Value| {
        let sql = compile_filter(&eq("s", v));
        assert!(sql.sql.contains(EQ_FUNCTION), "{}", sql.sql);
        assert!(sql.exact);
        run(&conn, &sql)
    };
    assert_eq!(ids(json!("apple")), BTreeSet::from([1, 6]));
    assert_eq!(ids(json!("a\"b")), BTreeSet::from([2, 3]));
    assert_eq!(ids(json!("tab\there")), BTreeSet::from([4]));
    assert_eq!(ids(json!("café")), BTreeSet::from([5]));
    assert_eq!(ids(json!("\"apple\"")), BTreeSet::from([11]));
    assert_eq!(ids(json!("line\nbreak \"q\"")), BTreeSet::from([13]));
    assert_eq!(ids(json!(1)), BTreeSet::from([7, 8, 18]));
    assert_eq!(ids(json!(1.0)), BTreeSet::from([7, 8, 18]));
    assert_eq!(ids(json!(2)), BTreeSet::from([8]));
    assert_eq!(ids(json!(0)), BTreeSet::from([12, 14]));
    assert_eq!(ids(json!(10)), BTreeSet::from([15]));
    assert_eq!(ids(json!(-10)), BTreeSet::from([16]));
    assert_eq!(ids(json!(-10.0)), BTreeSet::from([16]));
    assert_eq!(ids(json!("1")), BTreeSet::new());
    assert_eq!(ids(json!(true)), BTreeSet::from([17]));
    assert_eq!(ids(json!(false)), BTreeSet::from([18]));
    assert_eq!(ids(json!("true")), BTreeSet::from([19]));
    // `$in` of strings and numbers is one call with a needle per value.
    let ins = |items: Vec<Value>| {
        let sql = compile_filter(&fld("s", Cond::In(vals(&items))));
        (sql.sql.contains(EQ_FUNCTION), sql.exact, run(&conn, &sql))
    };
    assert_eq!(
        ins(vec![json!("a\"b"), json!(2), json!("café")]),
        (true, true, BTreeSet::from([2, 3, 5, 8]))
    );
    assert_eq!(
        ins(vec![json!(-10.0), json!("apple")]),
        (true, true, BTreeSet::from([1, 6, 16]))
    );
    assert_eq!(
        ins(vec![json!(false), json!(1)]),
        (true, true, BTreeSet::from([7, 8, 18]))
    );
    // With null, a regex or more than 32 values the SQL form is kept.
    let (function, _, got) = ins(vec![json!("apple"), json!(null)]);
    assert!(!function);
    assert!(got.is_superset(&BTreeSet::from([1, 6])));
    let many: Vec<Value> = (0..40)
        .map(|i| json!(format!("v{i}")))
        .chain([json!("apple")])
        .collect();
    let (function, exact, got) = ins(many);
    assert!(!function && exact);
    assert_eq!(got, BTreeSet::from([1, 6]));
}

/// `pocketdb_cmp` keeps MongoDB's type brackets and array semantics whatever the
/// spelling of the stored value, and agrees with the matcher.
#[test]
fn comparisons_in_one_lookup_agree_with_the_matcher() {
    let texts = [
        (1, r#"{"s": "apple"}"#),
        (2, r#"{"s": "\u0061pple"}"#),
        (3, r#"{"s": "b\"q"}"#),
        (4, r#"{"s": "é"}"#),
        (5, r#"{"s": ""}"#),
        (6, r#"{"s": ["zz", 3]}"#),
        (7, r#"{"s": 1e1}"#),
        (8, r#"{"s": -2.5}"#),
        (9, r#"{"s": 18446744073709551615}"#),
        (10, r#"{"s": 18446744073709551614}"#),
        (11, r#"{"s": [[1], {"a": 1}]}"#),
        (12, r#"{"s": null}"#),
        (13, r#"{"s": true}"#),
        (14, r#"{"t": 1}"#),
        (15, r#"{"s": "10"}"#),
    ];
    let (conn, docs) = db_of(&texts);
    let operands = [
        json!("apple"),
        json!("b"),
        json!("é"),
        json!(""),
        json!(3),
        json!(10),
        json!(10.0),
        json!(-2.5),
        json!(18446744073709551615u64),
        json!(1e30),
    ];
    for v in operands {
        for cond in [
            Cond::Lt(v.clone()),
            Cond::Lte(v.clone()),
            Cond::Gt(v.clone()),
            Cond::Gte(v.clone()),
        ] {
            let f = fld("s", cond);
            let sql = compile_filter(&f);
            let expected: BTreeSet<i64> = docs
                .iter()
                .filter(|(_, d)| f.matches(d))
                .map(|(id, _)| *id)
                .collect();
            let got = run(&conn, &sql);
            if sql.exact {
                assert_eq!(got, expected, "{f:?}: {}", sql.sql);
            } else {
                assert!(got.is_superset(&expected), "{f:?}: {}", sql.sql);
            }
        }
    }
    let lt = compile_filter(&fld("s", Cond::Lt(json!("b"))));
    assert!(lt.sql.contains(CMP_FUNCTION) && lt.exact, "{}", lt.sql);
    assert_eq!(run(&conn, &lt), BTreeSet::from([1, 2, 5, 15]));
    assert_eq!(
        run(&conn, &compile_filter(&fld("s", Cond::Lte(json!(3))))),
        BTreeSet::from([6, 8])
    );
}

/// `$regex` reads the value once (`pocketdb_regex_json`) and matches strings in any
/// spelling and string elements of arrays, never other types.
#[test]
fn regex_in_one_lookup_matches_strings_and_array_elements() {
    let texts = [
        (1, r#"{"s": "Paris"}"#),
        (2, r#"{"s": "\u0050aris"}"#),
        (3, r#"{"s": ["Rome", "Pa\"ris"]}"#),
        (4, r#"{"s": [["Paris"]]}"#),
        (5, r#"{"s": {"x": "Paris"}}"#),
        (6, r#"{"s": 12}"#),
        (7, r#"{"t": "Paris"}"#),
        (8, r#"{"s": "pa"}"#),
    ];
    let (conn, docs) = db_of(&texts);
    for (pattern, options) in [
        ("^Pa", ""),
        ("^pa", "i"),
        ("ris$", ""),
        ("1", ""),
        ("\"", ""),
    ] {
        let f = fld("s", Cond::Regex(re(pattern, options)));
        let sql = compile_filter(&f);
        assert!(
            sql.sql.contains(REGEX_JSON_FUNCTION) && sql.exact,
            "{}",
            sql.sql
        );
        let expected: BTreeSet<i64> = docs
            .iter()
            .filter(|(_, d)| f.matches(d))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(run(&conn, &sql), expected, "/{pattern}/{options}");
    }
    let sql = compile_filter(&fld("s", Cond::Regex(re("^Pa", ""))));
    assert_eq!(run(&conn, &sql), BTreeSet::from([1, 2, 3]));
}

mod eq_at {
    use super::*;
    use proptest::prelude::*;

    const LABELS: &[&str] = &["a", "b", "é", "a b", "x"];
    const STRINGS: &[&str] = &[
        "",
        "a",
        "é",
        "a\"b",
        "tab\there",
        "\\",
        "line\nbreak",
        "1",
        "true",
    ];

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..3).prop_map(|i| json!(i)),
            prop::sample::select(&[0.0, -0.0, 1.0, 2.5, -1.0, 1e20, 3.0e-5][..])
                .prop_map(|f| json!(f)),
            Just(json!(i64::MAX)),
            Just(json!(u64::MAX)),
            prop::sample::select(STRINGS).prop_map(|s| json!(s)),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(LABELS), inner), 0..4).prop_map(|kv| {
                    Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                }),
            ]
        })
    }

    /// A connection with the functions, the document of `fields` and the JSON path of
    /// `labels`.
    fn setup(fields: Vec<(&str, Value)>, labels: &[&str]) -> (Connection, Value, String) {
        let doc = Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        );
        let conn = Connection::open_in_memory().unwrap();
        register_functions(&conn).unwrap();
        let path: String = std::iter::once("$".to_string())
            .chain(labels.iter().map(|l| format!(".\"{l}\"")))
            .collect();
        (conn, doc, path)
    }

    proptest! {
        /// `pocketdb_eq_at(doc, path, needle)` answers as `pocketdb_eq(doc -> path,
        /// needle)` on generated documents, paths and needles.
        #[test]
        fn answers_as_eq_of_the_extracted_value(
            fields in prop::collection::vec((prop::sample::select(LABELS), value()), 0..4),
            labels in prop::collection::vec(prop::sample::select(LABELS), 1..3),
            needles in prop::collection::vec(scalar().prop_filter("scalar needle", |v| !v.is_null()), 1..3),
        ) {
            let (conn, doc, path) = setup(fields, &labels);
            let args: Vec<String> = needles.iter().map(|n| n.to_string()).collect();
            let marks: String = (0..args.len()).map(|i| format!(", ?{}", i + 3)).collect();
            let sql = format!(
                "SELECT {EQ_AT_FUNCTION}(jsonb(?1), ?2{marks}), {EQ_FUNCTION}(jsonb(?1) -> ?2{marks})"
            );
            let mut params: Vec<String> = vec![doc.to_string(), path];
            params.extend(args);
            let (at, extracted): (bool, bool) = conn
                .query_row(&sql, rusqlite::params_from_iter(params.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            prop_assert_eq!(at, extracted, "{} {:?}", doc, needles);
        }

        /// `pocketdb_cmp_at(doc, path, op, needle)` answers as `pocketdb_cmp(doc ->
        /// path, op, needle)`.
        #[test]
        fn comparisons_answer_as_cmp_of_the_extracted_value(
            fields in prop::collection::vec((prop::sample::select(LABELS), value()), 0..4),
            labels in prop::collection::vec(prop::sample::select(LABELS), 1..3),
            op in prop::sample::select(&["<", "<=", ">", ">=", "="][..]),
            needle in scalar(),
        ) {
            let (conn, doc, path) = setup(fields, &labels);
            let sql = format!(
                "SELECT {CMP_AT_FUNCTION}(jsonb(?1), ?2, ?3, ?4), {CMP_FUNCTION}(jsonb(?1) -> ?2, ?3, ?4)"
            );
            let (at, extracted): (bool, bool) = conn
                .query_row(
                    &sql,
                    rusqlite::params![doc.to_string(), path, op, needle.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            prop_assert_eq!(at, extracted, "{} {} {}", doc, op, needle);
        }
    }
}

/// Dates are JSON objects to SQLite: `$type` and comparisons with a date or a document
/// still tell them apart (through `pocketdb_is_date` and `pocketdb_json_cmp`'s type
/// brackets), stay exact, and agree with the matcher, at the top level, in arrays and
/// under `$elemMatch`.
#[test]
fn dates_are_their_own_type_in_sql() {
    let texts = [
        (1, r#"{"d": {"$date": "2020-01-02T00:00:00.000Z"}}"#),
        (2, r#"{"d": {"$date": "2020-01-02T00:00:00Z"}}"#),
        (3, r#"{"d": {"$date": "2020-01-02T01:00:00+01:00"}}"#),
        (4, r#"{"d": {"$date": 0}}"#),
        (5, r#"{"d": {"x": 1}}"#),
        (6, r#"{"d": {"$date": "nope"}}"#),
        (7, r#"{"d": [{"$date": "2021-01-01T00:00:00Z"}, {"y": 2}]}"#),
        (8, r#"{"d": true}"#),
        (9, r#"{"d": "2020-01-02T00:00:00Z"}"#),
        (10, r#"{"e": 1}"#),
        (11, r#"{"d": {"a": {"$date": "2020-01-02T00:00:00Z"}}}"#),
    ];
    let (conn, docs) = db_of(&texts);
    let check = |filter: Filter, want: &[i64]| {
        let sql = compile_filter(&filter);
        assert!(sql.exact, "{filter:?}: {}", sql.sql);
        let got = run(&conn, &sql);
        let matched: BTreeSet<i64> = docs
            .iter()
            .filter(|(_, d)| filter.matches(d))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(got, matched, "{filter:?}: SQL vs matcher");
        assert_eq!(got, want.iter().copied().collect(), "{filter:?}");
    };
    let day = json!({"$date": "2020-01-02T00:00:00Z"});
    check(fld("d", types(&["date"])), &[1, 2, 3, 4, 7]);
    check(fld("d", types(&["object"])), &[5, 6, 7, 11]);
    check(
        fld("d", types(&["object", "date"])),
        &[1, 2, 3, 4, 5, 6, 7, 11],
    );
    check(fld("d", types(&["date", "bool"])), &[1, 2, 3, 4, 7, 8]);
    check(
        fld("d", Cond::Not(vec![types(&["date"])])),
        &[5, 6, 8, 9, 10, 11],
    );
    check(eq("d", day.clone()), &[1, 2, 3]);
    check(fld("d", Cond::Ne(day.clone())), &[4, 5, 6, 7, 8, 9, 10, 11]);
    check(
        fld("d", Cond::In(vals(&[day.clone(), json!(true)]))),
        &[1, 2, 3, 8],
    );
    check(fld("d", Cond::Gt(day.clone())), &[7]);
    check(fld("d", Cond::Gte(day.clone())), &[1, 2, 3, 7]);
    check(fld("d", Cond::Lt(day.clone())), &[4]);
    check(fld("d", Cond::Gt(json!({"a": 0}))), &[5, 6, 7, 11]);
    check(fld("d", Cond::Lt(json!({"z": 0}))), &[5, 7]);
    check(
        eq("d", json!({"a": {"$date": "2020-01-02T01:00:00+01:00"}})),
        &[11],
    );
    check(
        fld(
            "d",
            Cond::ElemMatch(ElemMatch::Value(vec![
                Cond::Gt(day.clone()),
                types(&["date"]),
            ])),
        ),
        &[7],
    );
    let m = |sql: &str| -> rusqlite::Result<Option<i64>> { conn.query_row(sql, [], |r| r.get(0)) };
    assert_eq!(
        m(r#"SELECT pocketdb_json_cmp('{"$date":0}', '{"x":1}')"#).unwrap(),
        None
    );
    assert_eq!(
        m(r#"SELECT pocketdb_json_cmp('{"$date":0}', '{"$date":"1970-01-01T00:00:00Z"}')"#)
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        m(r#"SELECT pocketdb_is_date('{"$date":0}')"#).unwrap(),
        Some(1)
    );
    assert_eq!(
        m(r#"SELECT pocketdb_is_date('{"$date":"x"}')"#).unwrap(),
        Some(0)
    );
    assert_eq!(m("SELECT pocketdb_is_date(5)").unwrap(), Some(0));
}
