//! Tests of update parsing and application against MongoDB's documented behaviour.

use super::*;
use crate::query::parse_filter;
use serde_json::json;

const NOW: i64 = 1_700_000_000_123;

fn try_update(
    doc: Value,
    update: Value,
    filter: Value,
    array_filters: Option<Vec<Value>>,
    is_insert: bool,
) -> Result<(Value, bool)> {
    let u = Update::parse(&update, array_filters.as_deref())?;
    let filter = parse_filter(&filter)?;
    let mut doc = doc;
    let ctx = ApplyContext {
        filter: &filter,
        is_insert,
        now_millis: NOW,
    };
    let changed = u.apply(&mut doc, &ctx)?;
    Ok((doc, changed))
}

/// Applies `update` to `doc` with an empty filter; panics on error.
fn apply(doc: Value, update: Value) -> (Value, bool) {
    try_update(doc, update, json!({}), None, false).unwrap()
}

/// Applies and checks the result, field order included.
fn check(doc: Value, update: Value, expected: Value) {
    let (out, _) = apply(doc, update);
    assert_eq!(
        serde_json::to_string(&out).unwrap(),
        serde_json::to_string(&expected).unwrap()
    );
}

fn check_filtered(doc: Value, update: Value, filter: Value, expected: Value) {
    let (out, _) = try_update(doc, update, filter, None, false).unwrap();
    assert_eq!(
        serde_json::to_string(&out).unwrap(),
        serde_json::to_string(&expected).unwrap()
    );
}

fn check_af(doc: Value, update: Value, array_filters: Vec<Value>, expected: Value) {
    let (out, _) = try_update(doc, update, json!({}), Some(array_filters), false).unwrap();
    assert_eq!(
        serde_json::to_string(&out).unwrap(),
        serde_json::to_string(&expected).unwrap()
    );
}

/// The error of parsing `update`, which must fail.
fn parse_err(update: Value) -> (String, String, String) {
    parse_err_af(update, None)
}

fn parse_err_af(update: Value, array_filters: Option<Vec<Value>>) -> (String, String, String) {
    match Update::parse(&update, array_filters.as_deref()) {
        Err(Error::InvalidUpdate {
            operator,
            path,
            message,
        }) => (operator, path, message),
        other => panic!("expected InvalidUpdate, got {other:?}"),
    }
}

/// The error of applying `update` to `doc` (parsing must succeed).
fn apply_err(doc: Value, update: Value) -> (String, String, String) {
    apply_err_filtered(doc, update, json!({}))
}

fn apply_err_filtered(doc: Value, update: Value, filter: Value) -> (String, String, String) {
    let u = Update::parse(&update, None).expect("update parses");
    match try_update(doc, update, filter, None, false) {
        Err(Error::InvalidUpdate {
            operator,
            path,
            message,
        }) => (operator, path, message),
        other => panic!("expected InvalidUpdate from {u:?}, got {other:?}"),
    }
}

fn seed(filter: Value) -> Value {
    upsert_seed(&parse_filter(&filter).unwrap()).unwrap()
}

fn text(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

// ---------------------------------------------------------------------------------
// $set / $unset / paths

#[test]
fn set_top_level_and_new_field_appended() {
    check(
        json!({"_id": 1, "a": 1, "b": 2}),
        json!({"$set": {"a": 10, "c": 3}}),
        json!({"_id": 1, "a": 10, "b": 2, "c": 3}),
    );
}

#[test]
fn set_keeps_position_of_existing_field() {
    check(
        json!({"_id": 1, "a": 1, "b": 2, "c": 3}),
        json!({"$set": {"b": "x"}}),
        json!({"_id": 1, "a": 1, "b": "x", "c": 3}),
    );
}

#[test]
fn new_fields_are_added_in_path_order() {
    check(
        json!({"_id": 1}),
        json!({"$set": {"z": 1, "b": 2}, "$inc": {"a": 1}}),
        json!({"_id": 1, "a": 1, "b": 2, "z": 1}),
    );
}

#[test]
fn set_nested_creates_intermediate_objects() {
    check(
        json!({"_id": 1}),
        json!({"$set": {"a.b.c": 1}}),
        json!({"_id": 1, "a": {"b": {"c": 1}}}),
    );
}

#[test]
fn set_nested_in_existing_object() {
    check(
        json!({"a": {"x": 1}}),
        json!({"$set": {"a.y": 2, "a.x": 0}}),
        json!({"a": {"x": 0, "y": 2}}),
    );
}

#[test]
fn set_numeric_segment_on_missing_creates_object_key() {
    check(
        json!({}),
        json!({"$set": {"a.0": 1}}),
        json!({"a": {"0": 1}}),
    );
}

#[test]
fn set_array_index() {
    check(
        json!({"a": [1, 2, 3]}),
        json!({"$set": {"a.1": 20}}),
        json!({"a": [1, 20, 3]}),
    );
}

#[test]
fn set_past_end_pads_with_null() {
    check(
        json!({"a": [1]}),
        json!({"$set": {"a.3": 4}}),
        json!({"a": [1, null, null, 4]}),
    );
}

#[test]
fn set_field_inside_array_element() {
    check(
        json!({"a": [{"b": 1}, {"b": 2}]}),
        json!({"$set": {"a.1.b": 5}}),
        json!({"a": [{"b": 1}, {"b": 5}]}),
    );
}

#[test]
fn set_past_end_with_subfield_creates_document() {
    check(
        json!({"a": []}),
        json!({"$set": {"a.1.b": 5}}),
        json!({"a": [null, {"b": 5}]}),
    );
}

#[test]
fn set_inside_scalar_is_error() {
    let (op, path, msg) = apply_err(json!({"a": 5}), json!({"$set": {"a.x": 1}}));
    assert_eq!(op, "$set");
    assert_eq!(path, "a.x");
    assert_eq!(msg, "Cannot create field 'x' in element {a: 5}");
}

#[test]
fn set_inside_null_is_error() {
    let (_, _, msg) = apply_err(json!({"a": null}), json!({"$set": {"a.x": 1}}));
    assert_eq!(msg, "Cannot create field 'x' in element {a: null}");
}

#[test]
fn set_named_field_in_array_is_error() {
    let (_, _, msg) = apply_err(json!({"a": [1]}), json!({"$set": {"a.x": 1}}));
    assert_eq!(msg, "Cannot create field 'x' in element {a: [1]}");
}

#[test]
fn set_huge_padding_is_error() {
    let (_, _, msg) = apply_err(json!({"a": []}), json!({"$set": {"a.99999999": 1}}));
    assert!(msg.contains("backfill"), "{msg}");
}

#[test]
fn set_whole_object_and_array_values() {
    check(
        json!({"a": 1}),
        json!({"$set": {"a": {"x": [1, 2]}, "b": [{"c": 1}]}}),
        json!({"a": {"x": [1, 2]}, "b": [{"c": 1}]}),
    );
}

#[test]
fn set_same_value_is_not_a_modification() {
    let (_, changed) = apply(
        json!({"a": 1, "b": {"c": 2}}),
        json!({"$set": {"a": 1, "b.c": 2}}),
    );
    assert!(!changed);
    let (_, changed) = apply(json!({"a": 1}), json!({"$set": {"a": 2}}));
    assert!(changed);
}

#[test]
fn set_int_to_float_of_equal_value_is_a_modification() {
    let (out, changed) = apply(json!({"a": 1}), json!({"$set": {"a": 1.0}}));
    assert!(changed);
    assert_eq!(text(&out), r#"{"a":1.0}"#);
}

#[test]
fn set_object_with_other_field_order_is_a_modification() {
    let doc: Value = serde_json::from_str(r#"{"a":{"x":1,"y":2}}"#).unwrap();
    let upd: Value = serde_json::from_str(r#"{"$set":{"a":{"y":2,"x":1}}}"#).unwrap();
    let (out, changed) = apply(doc, upd);
    assert!(changed);
    assert_eq!(text(&out), r#"{"a":{"y":2,"x":1}}"#);
}

#[test]
fn unset_removes_field_keeping_order() {
    let (out, changed) = apply(
        json!({"a": 1, "b": 2, "c": 3}),
        json!({"$unset": {"b": ""}}),
    );
    assert!(changed);
    assert_eq!(text(&out), r#"{"a":1,"c":3}"#);
}

#[test]
fn unset_missing_is_noop() {
    let (out, changed) = apply(json!({"a": 1}), json!({"$unset": {"b": 1, "a.x.y": 1}}));
    assert!(!changed);
    assert_eq!(out, json!({"a": 1}));
}

#[test]
fn unset_nested() {
    check(
        json!({"a": {"b": 1, "c": 2}}),
        json!({"$unset": {"a.b": true}}),
        json!({"a": {"c": 2}}),
    );
}

#[test]
fn unset_array_element_sets_null() {
    check(
        json!({"a": [1, 2, 3]}),
        json!({"$unset": {"a.1": ""}}),
        json!({"a": [1, null, 3]}),
    );
}

#[test]
fn unset_through_scalar_or_array_name_is_noop() {
    let (_, changed) = apply(
        json!({"a": 5, "b": [1]}),
        json!({"$unset": {"a.x": "", "b.x": ""}}),
    );
    assert!(!changed);
}

// ---------------------------------------------------------------------------------
// $inc / $mul

#[test]
fn inc_integer_stays_integer() {
    let (out, _) = apply(json!({"a": 1}), json!({"$inc": {"a": 2}}));
    assert_eq!(text(&out), r#"{"a":3}"#);
}

#[test]
fn inc_with_float_gives_float() {
    let (out, _) = apply(json!({"a": 1}), json!({"$inc": {"a": 0.5}}));
    assert_eq!(text(&out), r#"{"a":1.5}"#);
    let (out, _) = apply(json!({"a": 1.5}), json!({"$inc": {"a": 1}}));
    assert_eq!(text(&out), r#"{"a":2.5}"#);
}

#[test]
fn inc_negative() {
    check(
        json!({"a": 1}),
        json!({"$inc": {"a": -5}}),
        json!({"a": -4}),
    );
}

#[test]
fn inc_missing_sets_operand() {
    check(
        json!({"x": 0}),
        json!({"$inc": {"a.b": 5}}),
        json!({"x": 0, "a": {"b": 5}}),
    );
}

#[test]
fn inc_array_element() {
    check(
        json!({"a": [1, 2]}),
        json!({"$inc": {"a.0": 10}}),
        json!({"a": [11, 2]}),
    );
}

#[test]
fn inc_by_zero_is_not_a_modification() {
    let (_, changed) = apply(json!({"a": 1}), json!({"$inc": {"a": 0}}));
    assert!(!changed);
}

#[test]
fn inc_overflow_is_error() {
    let (op, path, msg) = apply_err(json!({"a": i64::MAX}), json!({"$inc": {"a": 1}}));
    assert_eq!((op.as_str(), path.as_str()), ("$inc", "a"));
    assert!(msg.contains("integer overflow"), "{msg}");
}

#[test]
fn inc_non_numeric_field_is_error() {
    let (op, path, msg) = apply_err(json!({"a": "x"}), json!({"$inc": {"a": 1}}));
    assert_eq!((op.as_str(), path.as_str()), ("$inc", "a"));
    assert!(msg.contains("non-numeric type"), "{msg}");
    assert!(msg.contains("string"), "{msg}");
}

#[test]
fn inc_non_numeric_operand_is_parse_error() {
    let (op, path, msg) = parse_err(json!({"$inc": {"a": "1"}}));
    assert_eq!((op.as_str(), path.as_str()), ("$inc", "a"));
    assert!(
        msg.contains("Cannot increment with non-numeric argument"),
        "{msg}"
    );
}

#[test]
fn mul_integers_and_floats() {
    let (out, _) = apply(json!({"a": 3, "b": 2}), json!({"$mul": {"a": 4, "b": 1.5}}));
    assert_eq!(text(&out), r#"{"a":12,"b":3.0}"#);
}

#[test]
fn mul_missing_sets_zero_of_operand_type() {
    let (out, _) = apply(json!({}), json!({"$mul": {"a": 5, "b": 2.5}}));
    assert_eq!(text(&out), r#"{"a":0,"b":0.0}"#);
}

#[test]
fn mul_overflow_is_error() {
    let (_, _, msg) = apply_err(json!({"a": i64::MAX}), json!({"$mul": {"a": 2}}));
    assert!(msg.contains("integer overflow"), "{msg}");
}

#[test]
fn mul_non_numeric_is_error() {
    let (op, _, _) = apply_err(json!({"a": [1]}), json!({"$mul": {"a": 2}}));
    assert_eq!(op, "$mul");
    let (op, _, msg) = parse_err(json!({"$mul": {"a": null}}));
    assert_eq!(op, "$mul");
    assert!(
        msg.contains("Cannot multiply with non-numeric argument"),
        "{msg}"
    );
}

#[test]
fn mul_by_one_is_not_a_modification() {
    let (_, changed) = apply(json!({"a": 7}), json!({"$mul": {"a": 1}}));
    assert!(!changed);
}

// ---------------------------------------------------------------------------------
// $min / $max

#[test]
fn min_and_max_numbers() {
    check(
        json!({"lo": 5, "hi": 5}),
        json!({"$min": {"lo": 3}, "$max": {"hi": 9}}),
        json!({"lo": 3, "hi": 9}),
    );
    let (_, changed) = apply(
        json!({"lo": 5, "hi": 5}),
        json!({"$min": {"lo": 7}, "$max": {"hi": 1}}),
    );
    assert!(!changed);
}

#[test]
fn min_max_missing_sets_value() {
    check(
        json!({}),
        json!({"$min": {"a": 1}, "$max": {"b": 2}}),
        json!({"a": 1, "b": 2}),
    );
}

#[test]
fn min_max_use_cross_type_order() {
    // null < numbers < strings
    check(
        json!({"a": "x"}),
        json!({"$min": {"a": 1}}),
        json!({"a": 1}),
    );
    check(
        json!({"a": 1}),
        json!({"$max": {"a": "x"}}),
        json!({"a": "x"}),
    );
    check(
        json!({"a": 1}),
        json!({"$min": {"a": null}}),
        json!({"a": null}),
    );
}

#[test]
fn min_equal_value_other_type_is_noop() {
    let (out, changed) = apply(json!({"a": 1}), json!({"$min": {"a": 1.0}}));
    assert!(!changed);
    assert_eq!(text(&out), r#"{"a":1}"#);
}

#[test]
fn max_on_dates_compares_chronologically() {
    check(
        json!({"d": {"$date": "2020-01-01T00:00:00.000Z"}}),
        json!({"$max": {"d": {"$date": "2021-01-01T00:00:00.000Z"}}}),
        json!({"d": {"$date": "2021-01-01T00:00:00.000Z"}}),
    );
}

// ---------------------------------------------------------------------------------
// $currentDate / $setOnInsert

#[test]
fn current_date_true_and_type_forms() {
    let date = json!({"$date": "2023-11-14T22:13:20.123Z"});
    check(
        json!({"a": 1}),
        json!({"$currentDate": {"d": true, "t": {"$type": "timestamp"}, "x.y": {"$type": "date"}}}),
        json!({"a": 1, "d": date.clone(), "t": date.clone(), "x": {"y": date}}),
    );
}

#[test]
fn current_date_invalid_operand() {
    let (op, path, _) = parse_err(json!({"$currentDate": {"d": 1}}));
    assert_eq!((op.as_str(), path.as_str()), ("$currentDate", "d"));
    parse_err(json!({"$currentDate": {"d": {"$type": "string"}}}));
}

#[test]
fn date_value_is_extended_json() {
    assert_eq!(date_value(0), json!({"$date": "1970-01-01T00:00:00.000Z"}));
}

#[test]
fn set_on_insert_ignored_on_update() {
    let (out, changed) = apply(json!({"a": 1}), json!({"$setOnInsert": {"b": 2}}));
    assert!(!changed);
    assert_eq!(out, json!({"a": 1}));
}

#[test]
fn set_on_insert_positional_ignored_on_update() {
    let (_, changed) = apply(json!({"a": [1]}), json!({"$setOnInsert": {"a.$": 2}}));
    assert!(!changed);
}

#[test]
fn set_on_insert_applied_on_insert() {
    let (out, _) = try_update(
        json!({"_id": 1}),
        json!({"$setOnInsert": {"b": 2}, "$set": {"a": 1}}),
        json!({}),
        None,
        true,
    )
    .unwrap();
    assert_eq!(text(&out), r#"{"_id":1,"a":1,"b":2}"#);
}

// ---------------------------------------------------------------------------------
// $rename

#[test]
fn rename_moves_field_to_end() {
    check(
        json!({"_id": 1, "a": 1, "b": 2}),
        json!({"$rename": {"a": "z"}}),
        json!({"_id": 1, "b": 2, "z": 1}),
    );
}

#[test]
fn rename_over_existing_target() {
    check(
        json!({"a": 1, "b": 2, "c": 3}),
        json!({"$rename": {"c": "a"}}),
        json!({"b": 2, "a": 3}),
    );
}

#[test]
fn rename_missing_source_is_noop() {
    let (out, changed) = apply(json!({"b": 2}), json!({"$rename": {"a": "b"}}));
    assert!(!changed);
    assert_eq!(out, json!({"b": 2}));
}

#[test]
fn rename_nested_both_ways() {
    check(
        json!({"a": {"b": 1, "c": 2}}),
        json!({"$rename": {"a.b": "x.y"}}),
        json!({"a": {"c": 2}, "x": {"y": 1}}),
    );
    check(
        json!({"n": {"first": "a"}, "m": 1}),
        json!({"$rename": {"m": "n.last"}}),
        json!({"n": {"first": "a", "last": 1}}),
    );
}

#[test]
fn rename_to_itself_is_error() {
    let (op, _, msg) = parse_err(json!({"$rename": {"a": "a"}}));
    assert_eq!(op, "$rename");
    assert!(msg.contains("must differ"), "{msg}");
}

#[test]
fn rename_into_own_subpath_is_error() {
    let (_, _, msg) = parse_err(json!({"$rename": {"a": "a.b"}}));
    assert!(msg.contains("same path"), "{msg}");
    let (_, _, msg) = parse_err(json!({"$rename": {"a.b": "a"}}));
    assert!(msg.contains("same path"), "{msg}");
}

#[test]
fn rename_target_must_be_string_and_static() {
    parse_err(json!({"$rename": {"a": 1}}));
    parse_err(json!({"$rename": {"a": "b.$"}}));
    parse_err(json!({"$rename": {"a.$[]": "b"}}));
}

#[test]
fn rename_through_array_is_error() {
    let (_, _, msg) = apply_err(json!({"a": [{"b": 1}]}), json!({"$rename": {"a.0.b": "c"}}));
    assert!(
        msg.contains("source field cannot be an array element"),
        "{msg}"
    );
    let (_, _, msg) = apply_err(
        json!({"a": 1, "c": [{}]}),
        json!({"$rename": {"a": "c.0.x"}}),
    );
    assert!(
        msg.contains("destination field cannot be an array element"),
        "{msg}"
    );
}

#[test]
fn rename_array_field_itself_is_fine() {
    check(
        json!({"a": [1, 2]}),
        json!({"$rename": {"a": "b"}}),
        json!({"b": [1, 2]}),
    );
}

// ---------------------------------------------------------------------------------
// $push

#[test]
fn push_appends() {
    check(
        json!({"a": [1]}),
        json!({"$push": {"a": 2}}),
        json!({"a": [1, 2]}),
    );
}

#[test]
fn push_array_value_appends_one_element() {
    check(
        json!({"a": [1]}),
        json!({"$push": {"a": [2, 3]}}),
        json!({"a": [1, [2, 3]]}),
    );
}

#[test]
fn push_missing_creates_array() {
    check(
        json!({}),
        json!({"$push": {"a.b": 1}}),
        json!({"a": {"b": [1]}}),
    );
}

#[test]
fn push_each() {
    check(
        json!({"a": [1]}),
        json!({"$push": {"a": {"$each": [2, 3]}}}),
        json!({"a": [1, 2, 3]}),
    );
}

#[test]
fn push_each_empty_is_not_a_modification() {
    let (_, changed) = apply(json!({"a": [1]}), json!({"$push": {"a": {"$each": []}}}));
    assert!(!changed);
}

#[test]
fn push_position() {
    check(
        json!({"a": [1, 2, 3]}),
        json!({"$push": {"a": {"$each": [9], "$position": 1}}}),
        json!({"a": [1, 9, 2, 3]}),
    );
    check(
        json!({"a": [1, 2, 3]}),
        json!({"$push": {"a": {"$each": [8, 9], "$position": 0}}}),
        json!({"a": [8, 9, 1, 2, 3]}),
    );
    check(
        json!({"a": [1, 2]}),
        json!({"$push": {"a": {"$each": [9], "$position": 10}}}),
        json!({"a": [1, 2, 9]}),
    );
}

#[test]
fn push_negative_position_counts_from_end() {
    check(
        json!({"a": [1, 2, 3]}),
        json!({"$push": {"a": {"$each": [9], "$position": -1}}}),
        json!({"a": [1, 2, 9, 3]}),
    );
    check(
        json!({"a": [1]}),
        json!({"$push": {"a": {"$each": [9], "$position": -5}}}),
        json!({"a": [9, 1]}),
    );
}

#[test]
fn push_slice() {
    check(
        json!({"a": [1, 2, 3]}),
        json!({"$push": {"a": {"$each": [4, 5], "$slice": 3}}}),
        json!({"a": [1, 2, 3]}),
    );
    check(
        json!({"a": [1, 2, 3]}),
        json!({"$push": {"a": {"$each": [4, 5], "$slice": -2}}}),
        json!({"a": [4, 5]}),
    );
    check(
        json!({"a": [1, 2, 3]}),
        json!({"$push": {"a": {"$each": [4], "$slice": 0}}}),
        json!({"a": []}),
    );
    check(
        json!({"a": [1]}),
        json!({"$push": {"a": {"$each": [2], "$slice": -10}}}),
        json!({"a": [1, 2]}),
    );
}

#[test]
fn push_sort_whole_elements() {
    check(
        json!({"a": [3, 1]}),
        json!({"$push": {"a": {"$each": [2, "x", null], "$sort": 1}}}),
        json!({"a": [null, 1, 2, 3, "x"]}),
    );
    check(
        json!({"a": [3, 1]}),
        json!({"$push": {"a": {"$each": [2], "$sort": -1}}}),
        json!({"a": [3, 2, 1]}),
    );
}

#[test]
fn push_sort_by_fields_then_slice() {
    check(
        json!({"quizzes": [{"wk": 1, "score": 10}, {"wk": 2, "score": 8}]}),
        json!({"$push": {"quizzes": {
            "$each": [{"wk": 5, "score": 8}, {"wk": 6, "score": 7}, {"wk": 7, "score": 6}],
            "$sort": {"score": -1},
            "$slice": 3
        }}}),
        json!({"quizzes": [{"wk": 1, "score": 10}, {"wk": 2, "score": 8}, {"wk": 5, "score": 8}]}),
    );
}

#[test]
fn push_sort_by_two_fields_and_nested_path() {
    check(
        json!({"a": [{"x": {"y": 2}, "z": 1}, {"x": {"y": 1}, "z": 2}, {"x": {"y": 1}, "z": 1}]}),
        json!({"$push": {"a": {"$each": [], "$sort": {"x.y": 1, "z": -1}}}}),
        json!({"a": [{"x": {"y": 1}, "z": 2}, {"x": {"y": 1}, "z": 1}, {"x": {"y": 2}, "z": 1}]}),
    );
}

#[test]
fn push_sort_missing_field_sorts_as_null() {
    check(
        json!({"a": [{"s": 2}, {}, {"s": 1}]}),
        json!({"$push": {"a": {"$each": [], "$sort": {"s": 1}}}}),
        json!({"a": [{}, {"s": 1}, {"s": 2}]}),
    );
}

#[test]
fn push_on_non_array_is_error() {
    let (op, path, msg) = apply_err(json!({"a": 1}), json!({"$push": {"a": 2}}));
    assert_eq!((op.as_str(), path.as_str()), ("$push", "a"));
    assert!(msg.contains("must be an array but is of type int"), "{msg}");
}

#[test]
fn push_malformed_modifiers() {
    let (_, _, msg) = parse_err(json!({"$push": {"a": {"$each": 1}}}));
    assert!(msg.contains("$each"), "{msg}");
    let (_, _, msg) = parse_err(json!({"$push": {"a": {"$each": [1], "$bogus": 1}}}));
    assert!(
        msg.contains("Unrecognized clause in $push: $bogus"),
        "{msg}"
    );
    parse_err(json!({"$push": {"a": {"$each": [1], "$slice": "x"}}}));
    parse_err(json!({"$push": {"a": {"$each": [1], "$slice": 1.5}}}));
    parse_err(json!({"$push": {"a": {"$each": [1], "$position": "x"}}}));
    parse_err(json!({"$push": {"a": {"$each": [1], "$sort": 2}}}));
    parse_err(json!({"$push": {"a": {"$each": [1], "$sort": {}}}}));
    parse_err(json!({"$push": {"a": {"$each": [1], "$sort": {"x": 0}}}}));
    parse_err(json!({"$push": {"a": {"$each": [1], "$sort": {"x..y": 1}}}}));
    parse_err(json!({"$push": {"a": {"$each": [1], "$sort": "x"}}}));
    parse_err(json!({"$push": {"a": {"$slice": 1}}}));
}

#[test]
fn push_document_value_without_modifiers() {
    check(
        json!({"a": []}),
        json!({"$push": {"a": {"x": 1, "y": 2}}}),
        json!({"a": [{"x": 1, "y": 2}]}),
    );
}

// ---------------------------------------------------------------------------------
// $addToSet

#[test]
fn add_to_set_adds_missing_only() {
    let (out, changed) = apply(json!({"a": [1, 2]}), json!({"$addToSet": {"a": 2}}));
    assert!(!changed);
    assert_eq!(out, json!({"a": [1, 2]}));
    check(
        json!({"a": [1, 2]}),
        json!({"$addToSet": {"a": 3}}),
        json!({"a": [1, 2, 3]}),
    );
}

#[test]
fn add_to_set_uses_mongodb_equality() {
    let (_, changed) = apply(json!({"a": [1]}), json!({"$addToSet": {"a": 1.0}}));
    assert!(!changed);
    // documents compare field-order sensitively
    let doc: Value = serde_json::from_str(r#"{"a":[{"x":1,"y":2}]}"#).unwrap();
    let upd: Value = serde_json::from_str(r#"{"$addToSet":{"a":{"y":2,"x":1}}}"#).unwrap();
    let (out, changed) = apply(doc, upd);
    assert!(changed);
    assert_eq!(out["a"].as_array().map(Vec::len), Some(2));
}

#[test]
fn add_to_set_each_dedupes() {
    check(
        json!({"a": ["x"]}),
        json!({"$addToSet": {"a": {"$each": ["x", "y", "y", "z"]}}}),
        json!({"a": ["x", "y", "z"]}),
    );
}

#[test]
fn add_to_set_array_value_is_one_element() {
    check(
        json!({"a": [[1]]}),
        json!({"$addToSet": {"a": [2]}}),
        json!({"a": [[1], [2]]}),
    );
    let (_, changed) = apply(json!({"a": [[1]]}), json!({"$addToSet": {"a": [1]}}));
    assert!(!changed);
}

#[test]
fn add_to_set_missing_creates_array() {
    check(
        json!({}),
        json!({"$addToSet": {"a": {"$each": [1, 1, 2]}}}),
        json!({"a": [1, 2]}),
    );
}

/// Values where equality is subtle: numbers across representations (`u64` beyond `i64`
/// against an integral float), `-0.0`, documents with the same fields in another order,
/// nested arrays, strings that look like numbers.
fn tricky_values(n: usize) -> Vec<Value> {
    let big: Value = serde_json::from_str("10000000000000000000").unwrap();
    (0..n)
        .map(|i| match i % 9 {
            0 => json!(i % 40),
            1 => json!((i % 40) as f64),
            2 => json!(format!("{}", i % 40)),
            3 => json!([i % 5, [i % 3]]),
            4 => json!({"x": i % 4, "y": 1}),
            5 => json!({"y": 1, "x": i % 4}),
            6 => {
                if i % 2 == 0 {
                    big.clone()
                } else {
                    json!(1e19)
                }
            }
            7 => json!(if i % 2 == 0 { -0.0 } else { 0.5 }),
            _ => json!(i % 2 == 0),
        })
        .collect()
}

#[test]
fn add_to_set_and_pull_all_on_large_arrays_agree_with_pairwise_equality() {
    // Above PAIRWISE_MAX comparisons the update hashes equality keys; the result must be
    // what comparing every pair gives.
    let existing = tricky_values(300);
    let added: Vec<Value> = tricky_values(500).into_iter().rev().collect();
    let mut expected = existing.clone();
    for v in &added {
        if !expected.iter().any(|e| crate::value::values_equal(e, v)) {
            expected.push(v.clone());
        }
    }
    let (out, changed) = apply(
        json!({"a": existing.clone()}),
        json!({"$addToSet": {"a": {"$each": added}}}),
    );
    assert!(changed);
    assert_eq!(out["a"], Value::Array(expected));

    let pulled: Vec<Value> = tricky_values(60).into_iter().skip(20).collect();
    let expected: Vec<Value> = existing
        .iter()
        .filter(|e| !pulled.iter().any(|v| crate::value::values_equal(e, v)))
        .cloned()
        .collect();
    assert!(expected.len() < existing.len() && !expected.is_empty());
    let (out, _) = apply(json!({"a": existing}), json!({"$pullAll": {"a": pulled}}));
    assert_eq!(out["a"], Value::Array(expected));
}

#[test]
fn add_to_set_on_non_array_is_error() {
    let (op, _, msg) = apply_err(json!({"a": "s"}), json!({"$addToSet": {"a": 1}}));
    assert_eq!(op, "$addToSet");
    assert!(msg.contains("non-array"), "{msg}");
}

#[test]
fn add_to_set_malformed() {
    parse_err(json!({"$addToSet": {"a": {"$each": 1}}}));
    let (_, _, msg) = parse_err(json!({"$addToSet": {"a": {"$each": [1], "$slice": 1}}}));
    assert!(msg.contains("unexpected fields after $each"), "{msg}");
    parse_err(json!({"$addToSet": {"a": {"$sort": 1}}}));
}

// ---------------------------------------------------------------------------------
// $pop

#[test]
fn pop_last_and_first() {
    check(
        json!({"a": [1, 2, 3]}),
        json!({"$pop": {"a": 1}}),
        json!({"a": [1, 2]}),
    );
    check(
        json!({"a": [1, 2, 3]}),
        json!({"$pop": {"a": -1}}),
        json!({"a": [2, 3]}),
    );
}

#[test]
fn pop_empty_and_missing_are_noops() {
    let (_, changed) = apply(json!({"a": []}), json!({"$pop": {"a": 1}}));
    assert!(!changed);
    let (out, changed) = apply(json!({}), json!({"$pop": {"a": 1}}));
    assert!(!changed);
    assert_eq!(out, json!({}));
}

#[test]
fn pop_operand_must_be_plus_minus_one() {
    let (op, _, msg) = parse_err(json!({"$pop": {"a": 2}}));
    assert_eq!(op, "$pop");
    assert!(msg.contains("1 or -1"), "{msg}");
    parse_err(json!({"$pop": {"a": "1"}}));
    parse_err(json!({"$pop": {"a": 0}}));
}

#[test]
fn pop_on_non_array_is_error() {
    let (op, path, msg) = apply_err(json!({"a": {"b": 1}}), json!({"$pop": {"a": 1}}));
    assert_eq!((op.as_str(), path.as_str()), ("$pop", "a"));
    assert!(msg.contains("non-array type 'object'"), "{msg}");
}

// ---------------------------------------------------------------------------------
// $pull / $pullAll

#[test]
fn pull_value() {
    check(
        json!({"a": [1, 2, 1, 3]}),
        json!({"$pull": {"a": 1}}),
        json!({"a": [2, 3]}),
    );
}

#[test]
fn pull_numbers_across_representations() {
    check(
        json!({"a": [1, 1.0, 2]}),
        json!({"$pull": {"a": 1}}),
        json!({"a": [2]}),
    );
}

#[test]
fn pull_array_value_exact() {
    check(
        json!({"a": [[1, 2], [2, 1], 1]}),
        json!({"$pull": {"a": [1, 2]}}),
        json!({"a": [[2, 1], 1]}),
    );
}

#[test]
fn pull_operator_condition_on_elements() {
    check(
        json!({"scores": [0, 2, 5, 5, 1, 0, 6, 8]}),
        json!({"$pull": {"scores": {"$gte": 6}}}),
        json!({"scores": [0, 2, 5, 5, 1, 0]}),
    );
    check(
        json!({"a": ["apple", "pear", 3]}),
        json!({"$pull": {"a": {"$in": ["pear", 3]}}}),
        json!({"a": ["apple"]}),
    );
}

#[test]
fn pull_document_condition() {
    check(
        json!({"items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 10}, {"sku": "c", "qty": 4}, 3]}),
        json!({"$pull": {"items": {"qty": {"$lt": 5}}}}),
        json!({"items": [{"sku": "b", "qty": 10}, 3]}),
    );
}

#[test]
fn pull_document_matches_subset_of_fields() {
    check(
        json!({"results": [{"item": "A", "score": 5}, {"item": "B", "score": 8, "x": 1}]}),
        json!({"$pull": {"results": {"score": 8, "item": "B"}}}),
        json!({"results": [{"item": "A", "score": 5}]}),
    );
}

#[test]
fn pull_document_with_elem_match() {
    check(
        json!({"results": [
            {"item": "A", "answers": [{"q": 1, "a": 4}, {"q": 2, "a": 6}]},
            {"item": "B", "answers": [{"q": 1, "a": 8}, {"q": 2, "a": 9}]}
        ]}),
        json!({"$pull": {"results": {"answers": {"$elemMatch": {"q": 2, "a": {"$gte": 8}}}}}}),
        json!({"results": [{"item": "A", "answers": [{"q": 1, "a": 4}, {"q": 2, "a": 6}]}]}),
    );
}

#[test]
fn pull_with_logical_top_level_is_document_condition() {
    check(
        json!({"a": [{"x": 1}, {"x": 2}, {"x": 3}]}),
        json!({"$pull": {"a": {"$or": [{"x": 1}, {"x": 3}]}}}),
        json!({"a": [{"x": 2}]}),
    );
}

#[test]
fn pull_nothing_matching_is_not_a_modification() {
    let (_, changed) = apply(json!({"a": [1, 2]}), json!({"$pull": {"a": 5}}));
    assert!(!changed);
}

#[test]
fn pull_missing_is_noop() {
    let (_, changed) = apply(json!({"b": 1}), json!({"$pull": {"a": 5}}));
    assert!(!changed);
}

#[test]
fn pull_on_non_array_is_error() {
    let (op, path, msg) = apply_err(json!({"a": 1}), json!({"$pull": {"a": 1}}));
    assert_eq!((op.as_str(), path.as_str()), ("$pull", "a"));
    assert_eq!(msg, "Cannot apply $pull to a non-array value");
}

#[test]
fn pull_invalid_condition_is_parse_error() {
    let (op, _, _) = parse_err(json!({"$pull": {"a": {"$bogus": 1}}}));
    assert_eq!(op, "$pull");
}

#[test]
fn pull_all() {
    check(
        json!({"a": [0, 2, 5, 5, 1, 0]}),
        json!({"$pullAll": {"a": [0, 5]}}),
        json!({"a": [2, 1]}),
    );
}

#[test]
fn pull_all_requires_array_and_array_target() {
    let (op, _, msg) = parse_err(json!({"$pullAll": {"a": 1}}));
    assert_eq!(op, "$pullAll");
    assert!(msg.contains("requires an array argument"), "{msg}");
    let (op, _, _) = apply_err(json!({"a": "x"}), json!({"$pullAll": {"a": [1]}}));
    assert_eq!(op, "$pullAll");
}

// ---------------------------------------------------------------------------------
// positional $

#[test]
fn positional_sets_matched_element() {
    check_filtered(
        json!({"_id": 1, "grades": [85, 80, 80]}),
        json!({"$set": {"grades.$": 82}}),
        json!({"_id": 1, "grades": 80}),
        json!({"_id": 1, "grades": [85, 82, 80]}),
    );
}

#[test]
fn positional_with_subfield() {
    check_filtered(
        json!({"grades": [{"grade": 80, "std": 8}, {"grade": 85, "std": 6}]}),
        json!({"$set": {"grades.$.std": 6}}),
        json!({"grades.grade": 85}),
        json!({"grades": [{"grade": 80, "std": 8}, {"grade": 85, "std": 6}]}),
    );
    check_filtered(
        json!({"grades": [{"grade": 80, "std": 8}, {"grade": 85, "std": 6}]}),
        json!({"$inc": {"grades.$.std": 1}}),
        json!({"grades": {"$elemMatch": {"grade": {"$lte": 80}}}}),
        json!({"grades": [{"grade": 80, "std": 9}, {"grade": 85, "std": 6}]}),
    );
}

#[test]
fn positional_uses_document_before_update() {
    // the $inc changes the matched element, the $set still targets the same index
    check_filtered(
        json!({"a": [1, 5, 9], "b": [0, 0, 0]}),
        json!({"$set": {"a.$": 100}, "$inc": {"b.1": 1}}),
        json!({"a": 5}),
        json!({"a": [1, 100, 9], "b": [0, 1, 0]}),
    );
}

#[test]
fn positional_without_match_is_error() {
    let (op, path, msg) =
        apply_err_filtered(json!({"a": [1, 2]}), json!({"$set": {"a.$": 0}}), json!({}));
    assert_eq!((op.as_str(), path.as_str()), ("$set", "a.$"));
    assert!(
        msg.contains("positional operator did not find the match"),
        "{msg}"
    );
}

#[test]
fn positional_path_validation() {
    parse_err(json!({"$set": {"$": 1}}));
    let (_, _, msg) = parse_err(json!({"$set": {"a.$.b.$": 1}}));
    assert!(msg.contains("Too many positional"), "{msg}");
    parse_err(json!({"$set": {"a.$[].$": 1}}));
    parse_err(json!({"$set": {"a.$bad": 1}}));
}

#[test]
fn positional_push_into_nested_array() {
    check_filtered(
        json!({"a": [{"k": 1, "v": []}, {"k": 2, "v": [1]}]}),
        json!({"$push": {"a.$.v": 2}}),
        json!({"a.k": 2}),
        json!({"a": [{"k": 1, "v": []}, {"k": 2, "v": [1, 2]}]}),
    );
}

// ---------------------------------------------------------------------------------
// $[] and $[<id>]

#[test]
fn all_positional_sets_every_element() {
    check(
        json!({"a": [1, 2, 3]}),
        json!({"$set": {"a.$[]": 0}}),
        json!({"a": [0, 0, 0]}),
    );
}

#[test]
fn all_positional_inc_subfield() {
    check(
        json!({"a": [{"n": 1}, {"n": 2}]}),
        json!({"$inc": {"a.$[].n": 10}}),
        json!({"a": [{"n": 11}, {"n": 12}]}),
    );
}

#[test]
fn all_positional_creates_missing_subfield() {
    check(
        json!({"a": [{"n": 1}, {}]}),
        json!({"$set": {"a.$[].m": true}}),
        json!({"a": [{"n": 1, "m": true}, {"m": true}]}),
    );
}

#[test]
fn all_positional_nested() {
    check(
        json!({"a": [[1, 2], [3]]}),
        json!({"$inc": {"a.$[].$[]": 1}}),
        json!({"a": [[2, 3], [4]]}),
    );
}

#[test]
fn all_positional_unset_sets_null() {
    check(
        json!({"a": [1, 2]}),
        json!({"$unset": {"a.$[]": ""}}),
        json!({"a": [null, null]}),
    );
}

#[test]
fn all_positional_on_missing_is_error() {
    let (_, _, msg) = apply_err(json!({}), json!({"$set": {"a.$[]": 1}}));
    assert!(msg.contains("must exist in the document"), "{msg}");
}

#[test]
fn all_positional_on_non_array_is_error() {
    let (_, _, msg) = apply_err(json!({"a": 5}), json!({"$set": {"a.$[]": 1}}));
    assert!(
        msg.contains("Cannot apply array updates to non-array element"),
        "{msg}"
    );
}

#[test]
fn all_positional_on_empty_array_is_noop() {
    let (_, changed) = apply(json!({"a": []}), json!({"$set": {"a.$[]": 1}}));
    assert!(!changed);
}

#[test]
fn all_positional_into_scalar_element_is_error() {
    let (_, _, msg) = apply_err(json!({"a": [{}, 1]}), json!({"$set": {"a.$[].b": 1}}));
    assert_eq!(msg, "Cannot create field 'b' in element {1: 1}");
}

#[test]
fn filtered_positional_scalar_identifier() {
    check_af(
        json!({"grades": [95, 92, 90, 80]}),
        json!({"$set": {"grades.$[element]": 100}}),
        vec![json!({"element": {"$gte": 92}})],
        json!({"grades": [100, 100, 90, 80]}),
    );
}

#[test]
fn filtered_positional_document_identifier() {
    check_af(
        json!({"grades": [{"grade": 80, "mean": 75}, {"grade": 85, "mean": 90}, {"grade": 90, "mean": 85}]}),
        json!({"$set": {"grades.$[elem].mean": 100}}),
        vec![json!({"elem.grade": {"$gte": 85}})],
        json!({"grades": [{"grade": 80, "mean": 75}, {"grade": 85, "mean": 100}, {"grade": 90, "mean": 100}]}),
    );
}

#[test]
fn filtered_positional_with_multiple_conditions() {
    check_af(
        json!({"g": [{"grade": 80, "std": 6}, {"grade": 85, "std": 4}, {"grade": 90, "std": 6}]}),
        json!({"$inc": {"g.$[e].std": -1}}),
        vec![json!({"e.grade": {"$gte": 80}, "e.std": {"$gt": 5}})],
        json!({"g": [{"grade": 80, "std": 5}, {"grade": 85, "std": 4}, {"grade": 90, "std": 5}]}),
    );
}

#[test]
fn filtered_positional_nested_with_two_identifiers() {
    check_af(
        json!({"a": [{"k": 1, "v": [1, 5]}, {"k": 2, "v": [1, 5]}]}),
        json!({"$set": {"a.$[x].v.$[y]": 0}}),
        vec![json!({"x.k": 2}), json!({"y": {"$gt": 2}})],
        json!({"a": [{"k": 1, "v": [1, 5]}, {"k": 2, "v": [1, 0]}]}),
    );
}

#[test]
fn filtered_positional_with_or() {
    check_af(
        json!({"a": [1, 2, 3, 4]}),
        json!({"$set": {"a.$[i]": 0}}),
        vec![json!({"$or": [{"i": 1}, {"i": 4}]})],
        json!({"a": [0, 2, 3, 0]}),
    );
}

#[test]
fn filtered_positional_no_match_is_not_a_modification() {
    let (_, changed) = try_update(
        json!({"a": [1, 2]}),
        json!({"$set": {"a.$[i]": 0}}),
        json!({}),
        Some(vec![json!({"i": 9})]),
        false,
    )
    .unwrap();
    assert!(!changed);
}

#[test]
fn array_filters_unused_identifier_is_error() {
    let (op, _, msg) = parse_err_af(
        json!({"$set": {"a.$[i]": 0}}),
        Some(vec![json!({"i": 1}), json!({"j": 2})]),
    );
    assert_eq!(op, "arrayFilters");
    assert!(msg.contains("identifier 'j' was not used"), "{msg}");
}

#[test]
fn array_filters_undeclared_identifier_is_error() {
    let (op, path, msg) = parse_err_af(json!({"$set": {"a.$[i]": 0}}), None);
    assert_eq!((op.as_str(), path.as_str()), ("$set", "a.$[i]"));
    assert!(
        msg.contains("No array filter found for identifier 'i'"),
        "{msg}"
    );
}

#[test]
fn array_filters_invalid_identifier() {
    let (_, _, msg) = parse_err_af(json!({"$set": {"a.$[I]": 0}}), Some(vec![json!({"I": 1})]));
    assert!(msg.contains("lowercase"), "{msg}");
    parse_err_af(json!({"$set": {"a.$[1x]": 0}}), None);
    parse_err_af(json!({"$set": {"a.$[i]": 0}}), Some(vec![json!({"I": 1})]));
}

#[test]
fn array_filters_two_top_level_names_is_error() {
    let (_, _, msg) = parse_err_af(
        json!({"$set": {"a.$[i]": 0}}),
        Some(vec![json!({"i": 1, "j": 2})]),
    );
    assert!(msg.contains("exactly one top-level field"), "{msg}");
}

#[test]
fn array_filters_duplicate_identifier_is_error() {
    let (_, _, msg) = parse_err_af(
        json!({"$set": {"a.$[i]": 0}}),
        Some(vec![json!({"i": 1}), json!({"i": 2})]),
    );
    assert!(msg.contains("multiple array filters"), "{msg}");
}

#[test]
fn array_filters_must_be_documents_and_valid_filters() {
    parse_err_af(json!({"$set": {"a.$[i]": 0}}), Some(vec![json!(1)]));
    parse_err_af(json!({"$set": {"a.$[i]": 0}}), Some(vec![json!({})]));
    parse_err_af(
        json!({"$set": {"a.$[i]": 0}}),
        Some(vec![json!({"i": {"$bogus": 1}})]),
    );
}

#[test]
fn array_filters_with_replacement_is_error() {
    parse_err_af(json!({"a": 1}), Some(vec![json!({"i": 1})]));
    assert!(Update::parse(&json!({"a": 1}), Some(&[])).is_ok());
}

// ---------------------------------------------------------------------------------
// parse-time validation

#[test]
fn unknown_operator_is_error() {
    let (op, _, msg) = parse_err(json!({"$foo": {"a": 1}}));
    assert_eq!(op, "$foo");
    assert!(msg.contains("Unknown modifier: $foo"), "{msg}");
    parse_err(json!({"$bit": {"a": {"and": 1}}}));
}

/// MongoDB 5.0+ accepts an empty operand (`{$set: {}}`) as a no-op.
#[test]
fn empty_operator_object_is_noop() {
    let doc = json!({"_id": 1, "a": 1});
    for update in [
        json!({"$set": {}}),
        json!({"$unset": {}, "$inc": {}}),
        json!({"$push": {}, "$setOnInsert": {}}),
    ] {
        let u = Update::parse(&update, None).unwrap_or_else(|e| panic!("{update}: {e}"));
        assert_eq!(u.touched_paths(), Some(vec![]), "{update}");
        let (out, changed) = apply(doc.clone(), update.clone());
        assert!(!changed, "{update}");
        assert_eq!(text(&out), text(&doc), "{update}");
    }
    // Beside a non-empty operator, the empty one changes nothing.
    check(
        json!({"a": 1}),
        json!({"$set": {}, "$inc": {"a": 1}}),
        json!({"a": 2}),
    );
    // The operand must still be a document, and the operator known.
    parse_err(json!({"$set": []}));
    parse_err(json!({"$foo": {}}));
}

#[test]
fn operator_operand_must_be_object() {
    let (op, _, _) = parse_err(json!({"$set": 1}));
    assert_eq!(op, "$set");
    parse_err(json!({"$inc": [1]}));
}

#[test]
fn mixing_operators_and_fields_is_error() {
    let (_, path, msg) = parse_err(json!({"$set": {"a": 1}, "b": 2}));
    assert_eq!(path, "b");
    assert!(msg.contains("Unknown modifier: b"), "{msg}");
    let (op, path, _) = parse_err(json!({"b": 2, "$set": {"a": 1}}));
    assert_eq!((op.as_str(), path.as_str()), ("replacement", "$set"));
}

#[test]
fn conflicting_paths_are_errors() {
    let (op, path, msg) = parse_err(json!({"$set": {"a": 1}, "$inc": {"a.b": 1}}));
    assert_eq!((op.as_str(), path.as_str()), ("$inc", "a.b"));
    assert_eq!(
        msg,
        "Updating the path 'a.b' would create a conflict at 'a'"
    );
    let (_, _, msg) = parse_err(json!({"$set": {"a": 1}, "$inc": {"a": 1}}));
    assert_eq!(msg, "Updating the path 'a' would create a conflict at 'a'");
    parse_err(json!({"$set": {"a.b.c": 1, "a.b": 2}}));
    parse_err(json!({"$rename": {"x": "a"}, "$set": {"a.b": 1}}));
    parse_err(json!({"$rename": {"a.b": "z"}, "$unset": {"a": 1}}));
    parse_err(json!({"$set": {"a": 1}, "$setOnInsert": {"a": 2}}));
}

#[test]
fn non_conflicting_similar_paths_are_fine() {
    let (out, _) = apply(json!({}), json!({"$set": {"a.b": 1, "a.c": 2, "ab": 3}}));
    assert_eq!(out, json!({"a": {"b": 1, "c": 2}, "ab": 3}));
}

#[test]
fn invalid_paths_are_errors() {
    let (op, path, _) = parse_err(json!({"$set": {"a..b": 1}}));
    assert_eq!((op.as_str(), path.as_str()), ("$set", "a..b"));
    parse_err(json!({"$set": {"": 1}}));
    parse_err(json!({"$unset": {"$x": 1}}));
}

#[test]
fn update_must_be_a_document() {
    parse_err(json!(1));
    parse_err(json!([{"$set": {"a": 1}}]));
}

#[test]
fn operators_rejecting_id() {
    for upd in [
        json!({"$unset": {"_id": 1}}),
        json!({"$inc": {"_id": 1}}),
        json!({"$mul": {"_id": 1}}),
        json!({"$rename": {"_id": "x"}}),
        json!({"$rename": {"x": "_id"}}),
        json!({"$push": {"_id": 1}}),
        json!({"$addToSet": {"_id": 1}}),
        json!({"$pop": {"_id": 1}}),
        json!({"$pull": {"_id": 1}}),
        json!({"$pullAll": {"_id": [1]}}),
        json!({"$currentDate": {"_id": true}}),
        json!({"$unset": {"_id.x": 1}}),
    ] {
        let (_, _, msg) = parse_err(upd.clone());
        assert!(msg.contains("immutable field '_id'"), "{upd}: {msg}");
    }
}

#[test]
fn set_id_to_same_value_is_allowed() {
    let (_, changed) = apply(json!({"_id": 1, "a": 1}), json!({"$set": {"_id": 1}}));
    assert!(!changed);
}

#[test]
fn set_id_to_other_value_is_error() {
    let (_, path, msg) = apply_err(json!({"_id": 1, "a": 1}), json!({"$set": {"_id": 2}}));
    assert_eq!(path, "_id");
    assert!(msg.contains("immutable field '_id'"), "{msg}");
    apply_err(json!({"_id": 1}), json!({"$set": {"_id": 1.0}}));
    apply_err(json!({"_id": {"a": 1}}), json!({"$set": {"_id.a": 2}}));
    apply_err(json!({"_id": 5}), json!({"$max": {"_id": 6}}));
}

// ---------------------------------------------------------------------------------
// replacement

#[test]
fn replacement_basic() {
    let u = Update::parse(&json!({"x": 1}), None).unwrap();
    assert!(u.is_replacement());
    assert_eq!(u.replacement(), Some(&json!({"x": 1})));
    assert!(u.touched_paths().is_none());
    check(
        json!({"_id": 7, "a": 1, "b": 2}),
        json!({"x": 1}),
        json!({"_id": 7, "x": 1}),
    );
}

#[test]
fn replacement_keeps_id_first() {
    check(
        json!({"_id": 7, "a": 1}),
        json!({"x": 1, "_id": 7}),
        json!({"_id": 7, "x": 1}),
    );
}

#[test]
fn replacement_with_other_id_is_error() {
    let (op, path, msg) = apply_err(json!({"_id": 7, "a": 1}), json!({"_id": 8, "x": 1}));
    assert_eq!((op.as_str(), path.as_str()), ("replacement", "_id"));
    assert!(msg.contains("immutable"), "{msg}");
}

/// MongoDB compares a replacement's `_id` with `compareWithBSONElement`: `1.0` is the
/// same `_id` as `1` (and is stored as given), while `{$set: {_id: 1.0}}` stays an error
/// (see `set_id_to_other_value_is_error`).
#[test]
fn replacement_with_numerically_equal_id_is_allowed() {
    let (out, changed) = apply(json!({"_id": 1, "a": 1}), json!({"_id": 1.0, "y": 3}));
    assert!(changed);
    assert_eq!(text(&out), r#"{"_id":1.0,"y":3}"#);
    let (_, changed) = apply(json!({"_id": 1, "a": 1}), json!({"_id": 1, "a": 1}));
    assert!(!changed);
    apply_err(json!({"_id": 1}), json!({"_id": "1"}));
    apply_err(
        json!({"_id": {"a": 1, "b": 2}}),
        json!({"_id": {"b": 2, "a": 1}}),
    );
}

#[test]
fn replacement_identical_is_not_a_modification() {
    let (_, changed) = apply(json!({"_id": 7, "a": 1}), json!({"a": 1}));
    assert!(!changed);
    let (_, changed) = apply(json!({"_id": 7, "a": 1}), json!({"a": 1, "b": null}));
    assert!(changed);
}

#[test]
fn empty_replacement_keeps_only_id() {
    let u = Update::parse(&json!({}), None).unwrap();
    assert!(u.is_replacement());
    check(json!({"_id": 1, "a": 1}), json!({}), json!({"_id": 1}));
}

#[test]
fn replacement_with_dollar_keys_is_error() {
    parse_err(json!({"a": {"$inc": 1}}));
    parse_err(json!({"a": [{"b": {"$x": 1}}]}));
    // extended JSON values are fine
    assert!(Update::parse(&json!({"d": {"$date": "2020-01-01T00:00:00.000Z"}}), None).is_ok());
}

// ---------------------------------------------------------------------------------
// misc

#[test]
fn touched_paths_cut_at_positional() {
    let u = Update::parse(
        &json!({"$set": {"b.$[].c": 1, "a": 1}, "$rename": {"x": "y"}}),
        None,
    )
    .unwrap();
    let paths: Vec<String> = u
        .touched_paths()
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(paths, vec!["a", "b", "x", "y"]);
}

#[test]
fn apply_to_non_object_is_error() {
    let u = Update::parse(&json!({"$set": {"a": 1}}), None).unwrap();
    let f = Filter::all();
    let ctx = ApplyContext {
        filter: &f,
        is_insert: false,
        now_millis: 0,
    };
    assert!(u.apply(&mut json!([1]), &ctx).is_err());
}

#[test]
fn multiple_operators_together() {
    check(
        json!({"_id": 1, "n": 1, "tags": ["a"], "old": true, "list": [1, 2, 3]}),
        json!({
            "$inc": {"n": 1},
            "$addToSet": {"tags": "b"},
            "$unset": {"old": ""},
            "$pop": {"list": -1},
            "$set": {"meta.v": 2}
        }),
        json!({"_id": 1, "n": 2, "tags": ["a", "b"], "list": [2, 3], "meta": {"v": 2}}),
    );
}

#[test]
fn numeric_segments_order_numerically() {
    check(
        json!({"a": {}}),
        json!({"$set": {"a.10": 1, "a.9": 2, "a.x": 3}}),
        json!({"a": {"9": 2, "10": 1, "x": 3}}),
    );
}

// ---------------------------------------------------------------------------------
// upsert

#[test]
fn seed_from_equalities() {
    assert_eq!(text(&seed(json!({"a": 1, "b": "x"}))), r#"{"a":1,"b":"x"}"#);
}

#[test]
fn seed_dotted_paths_create_objects() {
    assert_eq!(
        text(&seed(json!({"b.c": 2, "b.d": 3, "a": 1}))),
        r#"{"a":1,"b":{"c":2,"d":3}}"#
    );
}

#[test]
fn seed_ignores_other_operators() {
    assert_eq!(
        seed(
            json!({"a": {"$gt": 1}, "b": {"$eq": 2}, "c": {"$in": [1, 2]}, "$or": [{"d": 1}, {"e": 1}]})
        ),
        json!({"b": 2})
    );
}

/// jstests/core/upsert_fields.js: what MongoDB extracts once it has simplified the
/// filter (one-value `$in`, `$all`, one-clause `$or` / `$and`).
#[test]
fn seed_extracts_simplified_equalities() {
    #[rustfmt::skip]
    let cases = [
        (json!({"x": {"$in": [1]}}), json!({"x": 1})),
        (json!({"x": {"$in": [1, 1.0]}}), json!({"x": 1})),
        (json!({"x": {"$all": [1]}}), json!({"x": 1})),
        (json!({"x": {"$all": [1, {"$regex": "a"}]}}), json!({"x": 1})),
        (json!({"$or": [{"x": 1}]}), json!({"x": 1})),
        (json!({"$or": [{"x": {"$eq": 1}}]}), json!({"x": 1})),
        (json!({"$and": [{"x": {"$eq": 1}}]}), json!({"x": 1})),
        (json!({"$or": [{"$and": [{"x": 1}, {"$or": [{"y": 2}]}]}]}), json!({"x": 1, "y": 2})),
        (json!({"x.x": {"$all": [1]}}), json!({"x": {"x": 1}})),
        (json!({"$or": [{"x.x": 1}]}), json!({"x": {"x": 1}})),
        (json!({"_id": {"$in": [1]}}), json!({"_id": 1})),
        (json!({"_id.x": 1, "_id.y": 2}), json!({"_id": {"x": 1, "y": 2}})),
        // not extracted
        (json!({"x": {"$in": [1, 2]}}), json!({})),
        (json!({"x": {"$in": [{"$regex": "a"}]}}), json!({})),
        (json!({"x": {"$in": []}}), json!({})),
        (json!({"x": {"$all": [{"$elemMatch": {"$eq": 1}}]}}), json!({})),
        (json!({"$or": [{"x": 1}, {"x": 1}]}), json!({})),
        (json!({"$nor": [{"x": 1}]}), json!({})),
    ];
    for (filter, expected) in cases {
        assert_eq!(seed(filter.clone()), expected, "{filter}");
    }
}

/// jstests/core/upsert_fields.js: an equality per `$all` value, so two values conflict.
#[test]
fn seed_all_with_two_values_is_error() {
    for filter in [
        json!({"x": {"$all": [1, 2]}}),
        json!({"_id": {"$all": [1, 2]}}),
        json!({"$or": [{"$and": [{"x": 1}, {"x": 2}]}]}),
    ] {
        let f = parse_filter(&filter).unwrap();
        assert!(
            matches!(upsert_seed(&f), Err(Error::InvalidUpdate { .. })),
            "{filter}"
        );
    }
}

/// jstests/core/upsert_fields.js: a replacement upsert takes only `_id` from the filter,
/// ignoring other fields and their conflicts, and cannot use `_id.x` paths.
#[test]
fn replacement_seed_takes_only_id() {
    let rseed = |filter: Value| replacement_seed(&parse_filter(&filter).unwrap());
    #[rustfmt::skip]
    let cases = [
        (json!({"_id": 1, "x": 1}), json!({"_id": 1})),
        (json!({"_id": {"$in": [1]}}), json!({"_id": 1})),
        (json!({"_id": {"$all": [1]}}), json!({"_id": 1})),
        (json!({"$or": [{"_id": 1}]}), json!({"_id": 1})),
        (json!({"x": {"$all": [1, 2]}}), json!({})),
        (json!({"x": 1, "x.x": 1}), json!({})),
        (json!({"_id": 1, "x": [1, {"x": 1}], "x.x": 1}), json!({"_id": 1})),
    ];
    for (filter, expected) in cases {
        assert_eq!(rseed(filter.clone()).unwrap(), expected, "{filter}");
    }
    for filter in [
        json!({"_id": {"$all": [1, 2]}}),
        json!({"$and": [{"_id": 1}, {"_id": 1}]}),
        json!({"_id": 1, "_id.x": 1}),
        json!({"_id.x": 1, "_id.y": 2}),
        json!({"_id.x": 1}),
    ] {
        assert!(
            matches!(rseed(filter.clone()), Err(Error::InvalidUpdate { .. })),
            "{filter}"
        );
    }
}

#[test]
fn seed_includes_top_level_and() {
    assert_eq!(
        seed(json!({"$and": [{"a": 1}, {"b": {"$eq": {"x": 1}}}, {"c": {"$lt": 3}}]})),
        json!({"a": 1, "b": {"x": 1}})
    );
}

#[test]
fn seed_keeps_id_first() {
    assert_eq!(text(&seed(json!({"a": 1, "_id": 5}))), r#"{"_id":5,"a":1}"#);
}

#[test]
fn seed_conflicting_paths_are_errors() {
    let f = parse_filter(&json!({"a": 1, "a.b": 2})).unwrap();
    assert!(matches!(upsert_seed(&f), Err(Error::InvalidUpdate { .. })));
    let f = parse_filter(&json!({"$and": [{"a": 1}, {"a": 2}]})).unwrap();
    assert!(matches!(upsert_seed(&f), Err(Error::InvalidUpdate { .. })));
}

#[test]
fn seed_empty_filter() {
    assert_eq!(seed(json!({})), json!({}));
}

#[test]
fn upsert_applies_update_to_seed() {
    let filter = json!({"name": "x", "n": {"$gt": 1}});
    let start = seed(filter.clone());
    let (out, _) = try_update(
        start,
        json!({"$set": {"v": 1}, "$setOnInsert": {"created": true}, "$inc": {"count": 1}}),
        filter,
        None,
        true,
    )
    .unwrap();
    assert_eq!(text(&out), r#"{"name":"x","count":1,"created":true,"v":1}"#);
}

#[test]
fn upsert_set_id_moves_first() {
    let (out, _) = try_update(
        json!({"a": 1}),
        json!({"$set": {"_id": 9}}),
        json!({}),
        None,
        true,
    )
    .unwrap();
    assert_eq!(text(&out), r#"{"_id":9,"a":1}"#);
}

#[test]
fn upsert_cannot_change_seed_id() {
    let r = try_update(
        json!({"_id": 1}),
        json!({"$set": {"_id": 2}}),
        json!({"_id": 1}),
        None,
        true,
    );
    assert!(matches!(r, Err(Error::InvalidUpdate { .. })));
}

#[test]
fn upsert_replacement_keeps_seed_id() {
    let (out, _) = try_update(
        json!({"_id": 3, "a": 1}),
        json!({"b": 2}),
        json!({"_id": 3}),
        None,
        true,
    )
    .unwrap();
    assert_eq!(text(&out), r#"{"_id":3,"b":2}"#);
}

#[test]
fn error_display_names_operator_and_path() {
    let e = Update::parse(&json!({"$inc": {"a": "x"}}), None).unwrap_err();
    let s = e.to_string();
    assert!(s.starts_with("invalid update: $inc at 'a':"), "{s}");
    // MongoDB's TypeMismatch, for a non-numeric `$inc` operand.
    assert_eq!(e.code(), 14);
}

#[test]
fn all_positional_with_array_operators() {
    check(
        json!({"a": [{"b": [1, 2]}, {"b": [2, 3]}]}),
        json!({"$pull": {"a.$[].b": 2}}),
        json!({"a": [{"b": [1]}, {"b": [3]}]}),
    );
    check(
        json!({"a": [[1], []]}),
        json!({"$push": {"a.$[]": 9}}),
        json!({"a": [[1, 9], [9]]}),
    );
}

#[test]
fn filtered_positional_add_to_set() {
    check_af(
        json!({"a": [{"k": 1, "s": [1]}, {"k": 2, "s": [1]}]}),
        json!({"$addToSet": {"a.$[e].s": 2}}),
        vec![json!({"e.k": 1})],
        json!({"a": [{"k": 1, "s": [1, 2]}, {"k": 2, "s": [1]}]}),
    );
}

#[test]
fn filtered_positional_on_non_array_is_error() {
    let r = try_update(
        json!({"a": {"b": 1}}),
        json!({"$set": {"a.$[i]": 0}}),
        json!({}),
        Some(vec![json!({"i": 1})]),
        false,
    );
    assert!(matches!(r, Err(Error::InvalidUpdate { .. })));
}

#[test]
fn rename_is_a_modification_even_with_same_value() {
    let (out, changed) = apply(json!({"a": 1, "b": 1}), json!({"$rename": {"a": "b"}}));
    assert!(changed);
    assert_eq!(out, json!({"b": 1}));
}
