//! Every expression operator, with null / missing / type edge cases. Expectations follow
//! MongoDB's operator documentation (the "Behavior" sections: null and missing
//! arguments, type errors, rounding rules).

use pocketdb::aggregate::Expr;
use pocketdb::Error;
use serde_json::{json, Value};

fn doc() -> Value {
    json!({
        "i": 7, "neg": -3, "f": 2.5, "s": "Hello World", "n": null, "t": true,
        "arr": [1, 2, 3, 4], "docs": [{"x": 1}, {"y": 2}, {"x": 3}], "o": {"a": {"b": 5}},
        "d": {"$date": "2024-03-05T07:08:09.010Z"}, "dm": {"$date": 86400000},
        "words": "  padded  "
    })
}

/// Evaluates `expr` on `doc()`; `"MISSING"` stands for a missing result, `"ERROR"` for an
/// `InvalidPipeline` error.
fn eval(expr: Value) -> Value {
    match Expr::parse(&expr).and_then(|e| e.evaluate(&doc())) {
        Ok(Some(v)) => v,
        Ok(None) => json!("MISSING"),
        Err(Error::InvalidPipeline { .. }) => json!("ERROR"),
        Err(other) => panic!("{expr}: unexpected error {other}"),
    }
}

#[test]
fn operator_table() {
    let cases = [
        // field paths and variables
        (json!("$i"), json!(7)),
        (json!("$o.a.b"), json!(5)),
        (json!("$docs.x"), json!([1, 3])),
        (json!("$arr.0"), json!([])),
        (json!("$nope"), json!("MISSING")),
        (json!("$$ROOT.i"), json!(7)),
        (json!("$$CURRENT.o.a"), json!({"b": 5})),
        (json!({"$literal": "$i"}), json!("$i")),
        (json!({"a": "$i", "b": "$nope"}), json!({"a": 7})),
        (json!(["$i", "$nope"]), json!([7, null])),
        // arithmetic
        (json!({"$add": ["$i", 1, "$f"]}), json!(10.5)),
        (json!({"$add": ["$i", "$n"]}), json!(null)),
        (json!({"$add": ["$i", "$nope"]}), json!(null)),
        (json!({"$add": ["$s", 1]}), json!("ERROR")),
        (
            json!({"$add": ["$dm", 1000]}),
            json!({"$date": "1970-01-02T00:00:01.000Z"}),
        ),
        (
            json!({"$add": [9_223_372_036_854_775_807i64, 1]}),
            json!(9.223372036854776e18),
        ),
        (json!({"$subtract": ["$i", 10]}), json!(-3)),
        (
            json!({"$subtract": ["$d", "$dm"]}),
            json!(1_709_536_089_010i64),
        ),
        (json!({"$multiply": ["$i", "$f"]}), json!(17.5)),
        (json!({"$divide": ["$i", 2]}), json!(3.5)),
        (json!({"$divide": ["$i", 0]}), json!("ERROR")),
        (json!({"$mod": ["$i", 4]}), json!(3)),
        (json!({"$mod": ["$neg", 2]}), json!(-1)),
        (json!({"$mod": [7.5, 2]}), json!(1.5)),
        (json!({"$abs": "$neg"}), json!(3)),
        (json!({"$abs": "$n"}), json!(null)),
        (json!({"$floor": "$f"}), json!(2.0)),
        (json!({"$ceil": "$f"}), json!(3.0)),
        (json!({"$round": ["$f"]}), json!(2.0)),
        (json!({"$round": [3.5]}), json!(4.0)),
        (json!({"$round": [1.2345, 2]}), json!(1.23)),
        (json!({"$round": [1234, -2]}), json!(1200)),
        (json!({"$trunc": [-2.7]}), json!(-2.0)),
        // comparison: missing < null < numbers < strings
        (json!({"$eq": ["$i", 7.0]}), json!(true)),
        (json!({"$eq": ["$nope", null]}), json!(false)),
        (json!({"$lt": ["$nope", null]}), json!(true)),
        (json!({"$gt": ["$s", 100]}), json!(true)),
        (json!({"$ne": ["$t", 1]}), json!(true)),
        (json!({"$gte": ["$i", 7]}), json!(true)),
        (json!({"$lte": ["$f", 2]}), json!(false)),
        (json!({"$cmp": ["$i", 8]}), json!(-1)),
        (json!({"$cmp": ["b", "a"]}), json!(1)),
        // boolean
        (json!({"$and": ["$i", "$t", []]}), json!(true)),
        (json!({"$and": ["$i", 0]}), json!(false)),
        (json!({"$or": ["$n", "$nope", 0]}), json!(false)),
        (json!({"$or": ["$n", ""]}), json!(true)),
        (json!({"$not": ["$n"]}), json!(true)),
        (json!({"$and": []}), json!(true)),
        // conditional
        (
            json!({"$cond": [{"$gt": ["$i", 5]}, "big", "small"]}),
            json!("big"),
        ),
        (
            json!({"$cond": {"if": "$n", "then": 1, "else": 2}}),
            json!(2),
        ),
        (json!({"$ifNull": ["$nope", "$n", "dflt"]}), json!("dflt")),
        (json!({"$ifNull": ["$i", "dflt"]}), json!(7)),
        (json!({"$ifNull": ["$nope", "$nope2"]}), json!("MISSING")),
        (
            json!({"$switch": {"branches": [{"case": {"$lt": ["$i", 0]}, "then": "neg"}, {"case": {"$gt": ["$i", 0]}, "then": "pos"}], "default": "zero"}}),
            json!("pos"),
        ),
        (
            json!({"$switch": {"branches": [{"case": false, "then": 1}]}}),
            json!("ERROR"),
        ),
        // string
        (json!({"$concat": ["$s", "!", "?"]}), json!("Hello World!?")),
        (json!({"$concat": ["$s", "$nope"]}), json!(null)),
        (json!({"$concat": ["$s", 1]}), json!("ERROR")),
        (json!({"$substrCP": ["$s", 6, 5]}), json!("World")),
        (json!({"$substrCP": ["héllo", 1, 2]}), json!("él")),
        (json!({"$substrCP": ["$nope", 0, 2]}), json!("")),
        (json!({"$toLower": "$s"}), json!("hello world")),
        (json!({"$toUpper": "$nope"}), json!("")),
        (json!({"$toUpper": 12}), json!("12")),
        (json!({"$split": ["$s", " "]}), json!(["Hello", "World"])),
        (json!({"$split": ["$n", " "]}), json!(null)),
        (json!({"$split": ["$s", ""]}), json!("ERROR")),
        (json!({"$strLenCP": "héllo"}), json!(5)),
        (json!({"$strLenCP": "$nope"}), json!("ERROR")),
        (
            json!({"$regexMatch": {"input": "$s", "regex": "^hello", "options": "i"}}),
            json!(true),
        ),
        (
            json!({"$regexMatch": {"input": "$s", "regex": {"$regex": "world$"}}}),
            json!(false),
        ),
        (
            json!({"$regexMatch": {"input": "$nope", "regex": "x"}}),
            json!(false),
        ),
        (
            json!({"$regexMatch": {"input": "$i", "regex": "x"}}),
            json!("ERROR"),
        ),
        (json!({"$trim": {"input": "$words"}}), json!("padded")),
        (
            json!({"$ltrim": {"input": "xxaxx", "chars": "x"}}),
            json!("axx"),
        ),
        (
            json!({"$rtrim": {"input": "xxaxx", "chars": "x"}}),
            json!("xxa"),
        ),
        (json!({"$trim": {"input": "$n"}}), json!(null)),
        // array
        (json!({"$size": "$arr"}), json!(4)),
        (json!({"$size": "$nope"}), json!("ERROR")),
        (json!({"$arrayElemAt": ["$arr", -1]}), json!(4)),
        (json!({"$arrayElemAt": ["$arr", 9]}), json!("MISSING")),
        (json!({"$arrayElemAt": ["$nope", 0]}), json!(null)),
        (
            json!({"$filter": {"input": "$arr", "as": "v", "cond": {"$gt": ["$$v", 2]}}}),
            json!([3, 4]),
        ),
        (
            json!({"$filter": {"input": "$arr", "cond": {"$gt": ["$$this", 1]}, "limit": 1}}),
            json!([2]),
        ),
        (
            json!({"$filter": {"input": "$nope", "cond": true}}),
            json!(null),
        ),
        (
            json!({"$filter": {"input": "$i", "cond": true}}),
            json!("ERROR"),
        ),
        (
            json!({"$map": {"input": "$arr", "as": "v", "in": {"$multiply": ["$$v", 10]}}}),
            json!([10, 20, 30, 40]),
        ),
        (
            json!({"$map": {"input": "$docs", "in": "$$this.x"}}),
            json!([1, null, 3]),
        ),
        (
            json!({"$reduce": {"input": "$arr", "initialValue": 0, "in": {"$add": ["$$value", "$$this"]}}}),
            json!(10),
        ),
        (
            json!({"$reduce": {"input": ["a", "b"], "initialValue": "", "in": {"$concat": ["$$value", "$$this"]}}}),
            json!("ab"),
        ),
        (json!({"$in": [2, "$arr"]}), json!(true)),
        (json!({"$in": [2.0, "$arr"]}), json!(true)),
        (json!({"$in": ["$nope", [null]]}), json!(false)),
        (json!({"$in": [1, "$nope"]}), json!("ERROR")),
        (
            json!({"$concatArrays": ["$arr", [5], []]}),
            json!([1, 2, 3, 4, 5]),
        ),
        (json!({"$concatArrays": ["$arr", "$nope"]}), json!(null)),
        (json!({"$slice": ["$arr", 2]}), json!([1, 2])),
        (json!({"$slice": ["$arr", -1]}), json!([4])),
        (json!({"$slice": ["$arr", 1, 2]}), json!([2, 3])),
        (json!({"$slice": ["$arr", -2, 5]}), json!([3, 4])),
        (json!({"$slice": ["$nope", 1]}), json!(null)),
        (json!({"$sum": "$arr"}), json!(10)),
        (json!({"$avg": ["$i", "$f", "$s"]}), json!(4.75)),
        (json!({"$max": "$arr"}), json!(4)),
        (json!({"$min": ["$n", 3, "$s"]}), json!(3)),
        (
            json!({"$mergeObjects": ["$o", {"c": 1}, "$nope"]}),
            json!({"a": {"b": 5}, "c": 1}),
        ),
        // type
        (json!({"$type": "$i"}), json!("int")),
        (json!({"$type": "$f"}), json!("double")),
        (json!({"$type": "$nope"}), json!("missing")),
        (json!({"$type": "$d"}), json!("date")),
        (json!({"$type": "$arr"}), json!("array")),
        (json!({"$toString": "$i"}), json!("7")),
        (json!({"$toString": "$f"}), json!("2.5")),
        (json!({"$toString": "$t"}), json!("true")),
        (json!({"$toString": "$nope"}), json!(null)),
        (
            json!({"$toString": "$d"}),
            json!("2024-03-05T07:08:09.010Z"),
        ),
        (json!({"$toString": "$arr"}), json!("ERROR")),
        (json!({"$toInt": "$f"}), json!(2)),
        (json!({"$toInt": " 42 "}), json!(42)),
        (json!({"$toInt": "4.2"}), json!("ERROR")),
        (json!({"$toInt": "$t"}), json!(1)),
        (json!({"$toInt": 3_000_000_000i64}), json!("ERROR")),
        (json!({"$toInt": "$n"}), json!(null)),
        (
            json!({"$toLong": 3_000_000_000i64}),
            json!(3_000_000_000i64),
        ),
        (json!({"$toDouble": "2.25"}), json!(2.25)),
        (json!({"$toDouble": "$i"}), json!(7.0)),
        (json!({"$toDouble": "abc"}), json!("ERROR")),
        (json!({"$toBool": 0}), json!(false)),
        (json!({"$toBool": ""}), json!(true)),
        (
            json!({"$toDate": 0}),
            json!({"$date": "1970-01-01T00:00:00.000Z"}),
        ),
        (json!({"$isArray": "$arr"}), json!(true)),
        // dates (UTC; extended-JSON convention)
        (json!({"$year": "$d"}), json!(2024)),
        (json!({"$month": "$d"}), json!(3)),
        (json!({"$dayOfMonth": "$d"}), json!(5)),
        (json!({"$hour": "$d"}), json!(7)),
        (json!({"$minute": "$d"}), json!(8)),
        (json!({"$second": "$d"}), json!(9)),
        (json!({"$millisecond": "$d"}), json!(10)),
        (json!({"$dayOfWeek": "$d"}), json!(3)),
        (
            json!({"$dayOfYear": {"date": "$d", "timezone": "UTC"}}),
            json!(65),
        ),
        (json!({"$year": "$dm"}), json!(1970)),
        (json!({"$year": "$nope"}), json!(null)),
        (json!({"$year": "$s"}), json!("ERROR")),
        (
            json!({"$hour": {"date": "$d", "timezone": "Europe/Paris"}}),
            json!("ERROR"),
        ),
        (
            json!({"$dateToString": {"date": "$d", "format": "%Y-%m-%d %H:%M"}}),
            json!("2024-03-05 07:08"),
        ),
        (
            json!({"$dateToString": {"date": "$d"}}),
            json!("2024-03-05T07:08:09.010Z"),
        ),
        (
            json!({"$dateToString": {"date": "$nope", "onNull": "none"}}),
            json!("none"),
        ),
        (
            json!({"$let": {"vars": {"x": {"$add": ["$i", 1]}}, "in": {"$multiply": ["$$x", 2]}}}),
            json!(16),
        ),
    ];
    let mut failures = Vec::new();
    for (expr, want) in cases {
        let got = eval(expr.clone());
        if got != want {
            failures.push(format!("{expr}: got {got}, want {want}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn parse_errors() {
    for bad in [
        json!({"$add": 1, "$sub": 2}),
        json!({"$nosuch": 1}),
        json!({"$subtract": [1]}),
        json!({"$cond": [1, 2]}),
        json!("$"),
        json!("$a..b"),
        json!("$$"),
        json!({"$filter": {"input": [], "cond": true, "bogus": 1}}),
        json!({"$map": {"input": []}}),
        json!({"$regexMatch": {"input": "a", "regex": "("}}),
        json!({"$dateToString": {"date": 1, "timezone": "+02:00"}}),
        json!({"a.b": 1}),
    ] {
        assert!(
            matches!(Expr::parse(&bad), Err(Error::InvalidPipeline { .. })),
            "{bad} should not parse"
        );
    }
    // Undefined variables are reported at evaluation.
    let e = Expr::parse(&json!("$$undefinedVar")).and_then(|e| e.evaluate(&json!({})));
    assert!(matches!(e, Err(Error::InvalidPipeline { .. })));
}
