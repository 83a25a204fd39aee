//! MongoDB's total order over JSON values.
//!
//! Order of types (lowest first): null, numbers, strings, objects, arrays, booleans,
//! dates. Numbers compare by value whatever their representation (`1 == 1.0`), strings
//! byte-wise (MongoDB's simple collation), objects field by field (type rank of the
//! value, then name, then value), arrays element by element, dates by instant.
//!
//! A date is extended JSON's `{"$date": …}`: an object whose one field is `$date`
//! holding a value [`crate::parse_date_millis`] reads (RFC 3339 text, or milliseconds
//! since the epoch). It is MongoDB's Date type, not an embedded document: two texts of
//! one instant (`…00Z`, `…00.000Z`, `…01:00+01:00`) are equal. See [`date_millis`].

use serde_json::{Number, Value};
use std::cmp::Ordering;

/// The BSON types a JSON value can have, as `$type` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BsonType {
    /// A JSON number with a fractional part or exponent (`1.5`, `1.0`).
    Double,
    /// A string.
    String,
    /// An embedded document.
    Object,
    /// An array.
    Array,
    /// `true` or `false`.
    Bool,
    /// A date: extended JSON `{"$date": …}` (see [`date_millis`]).
    Date,
    /// `null`.
    Null,
    /// An integer that fits in 32 bits.
    Int,
    /// An integer that needs 64 bits.
    Long,
}

impl BsonType {
    /// The type of a JSON value.
    pub fn of(value: &Value) -> BsonType {
        match value {
            Value::Null => BsonType::Null,
            Value::Bool(_) => BsonType::Bool,
            Value::String(_) => BsonType::String,
            Value::Array(_) => BsonType::Array,
            Value::Object(_) if date_millis(value).is_some() => BsonType::Date,
            Value::Object(_) => BsonType::Object,
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    if i32::try_from(i).is_ok() {
                        BsonType::Int
                    } else {
                        BsonType::Long
                    }
                } else if n.is_u64() {
                    BsonType::Long
                } else {
                    BsonType::Double
                }
            }
        }
    }

    /// The `$type` alias of this type (`"double"`, `"string"`, …).
    pub fn name(self) -> &'static str {
        match self {
            BsonType::Double => "double",
            BsonType::String => "string",
            BsonType::Object => "object",
            BsonType::Array => "array",
            BsonType::Bool => "bool",
            BsonType::Date => "date",
            BsonType::Null => "null",
            BsonType::Int => "int",
            BsonType::Long => "long",
        }
    }

    /// The BSON type number (`1` for double, `2` for string, …).
    pub fn number(self) -> i64 {
        match self {
            BsonType::Double => 1,
            BsonType::String => 2,
            BsonType::Object => 3,
            BsonType::Array => 4,
            BsonType::Bool => 8,
            BsonType::Date => 9,
            BsonType::Null => 10,
            BsonType::Int => 16,
            BsonType::Long => 18,
        }
    }

    /// Looks up a type by `$type` alias or BSON number. `None` for unknown names and for
    /// BSON types JSON cannot hold.
    pub fn from_alias(alias: &str) -> Option<BsonType> {
        Some(match alias {
            "double" => BsonType::Double,
            "string" => BsonType::String,
            "object" => BsonType::Object,
            "array" => BsonType::Array,
            "bool" => BsonType::Bool,
            "date" => BsonType::Date,
            "null" => BsonType::Null,
            "int" => BsonType::Int,
            "long" => BsonType::Long,
            _ => return None,
        })
    }

    /// Looks up a type by BSON type number.
    pub fn from_number(n: i64) -> Option<BsonType> {
        [
            BsonType::Double,
            BsonType::String,
            BsonType::Object,
            BsonType::Array,
            BsonType::Bool,
            BsonType::Date,
            BsonType::Null,
            BsonType::Int,
            BsonType::Long,
        ]
        .into_iter()
        .find(|t| t.number() == n)
    }
}

/// The instant of a date value, in milliseconds since the Unix epoch: `Some` exactly
/// for an object whose one field is `$date` holding what [`crate::parse_date_millis`]
/// reads (`{"$date": "2020-01-02T00:00:00Z"}`, `{"$date": 0}`,
/// `{"$date": {"$numberLong": "0"}}`). Such a value is MongoDB's Date type; any other
/// object, `{"$date": "not a date"}` included, is an embedded document, and a bare RFC
/// 3339 string stays a string.
pub fn date_millis(value: &Value) -> Option<i64> {
    match value {
        Value::Object(m) if m.len() == 1 && m.contains_key("$date") => {
            crate::index::parse_date_millis(value)
        }
        _ => None,
    }
}

/// Rank of a value's type in MongoDB's comparison order: null 1, numbers 2, strings 3,
/// objects 4, arrays 5, booleans 6, dates 7 (see [`date_millis`]). A missing field sorts
/// as null.
pub fn type_rank(value: &Value) -> u8 {
    match value {
        Value::Null => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Object(_) if date_millis(value).is_some() => 7,
        Value::Object(_) => 4,
        Value::Array(_) => 5,
        Value::Bool(_) => 6,
    }
}

/// Compares two numbers exactly, whatever mix of i64, u64 and f64 they are.
pub fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x.cmp(&y);
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x.cmp(&y);
    }
    match (a.as_f64(), b.as_f64()) {
        // Either side is an integer too large for exact f64 comparison only when both
        // are integers, handled above; one integer and one float compare as f64, with
        // an exact tie-break through i128 when the float is integral.
        (Some(x), Some(y)) => match x.partial_cmp(&y) {
            Some(Ordering::Equal) => int_tiebreak(a, b),
            Some(o) => o,
            None => x.is_nan().cmp(&y.is_nan()).reverse(),
        },
        _ => Ordering::Equal,
    }
}

fn as_i128(n: &Number) -> Option<i128> {
    if let Some(i) = n.as_i64() {
        Some(i as i128)
    } else if let Some(u) = n.as_u64() {
        Some(u as i128)
    } else {
        let f = n.as_f64()?;
        (f.fract() == 0.0 && f.abs() < 1.7e38).then_some(f as i128)
    }
}

fn int_tiebreak(a: &Number, b: &Number) -> Ordering {
    match (as_i128(a), as_i128(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => Ordering::Equal,
    }
}

/// MongoDB's total order over JSON values (see the module docs).
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    let (ra, rb) = (type_rank(a), type_rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        // Equal ranks 7: both are dates.
        (Value::Object(_), Value::Object(_)) if ra == 7 => date_millis(a).cmp(&date_millis(b)),
        (Value::Array(x), Value::Array(y)) => {
            for (l, r) in x.iter().zip(y.iter()) {
                let o = compare_values(l, r);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            for ((kl, vl), (kr, vr)) in x.iter().zip(y.iter()) {
                let o = type_rank(vl)
                    .cmp(&type_rank(vr))
                    .then_with(|| kl.as_bytes().cmp(kr.as_bytes()))
                    .then_with(|| compare_values(vl, vr));
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => Ordering::Equal,
    }
}

/// MongoDB equality: same type bracket and equal under [`compare_values`]. Numbers are
/// equal across representations, dates when they are one instant; embedded documents
/// are equal only with the same fields in the same order.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    compare_values(a, b) == Ordering::Equal
}

/// Writes a text that is equal for two values exactly when [`values_equal`] says they
/// are: the key of hash-based grouping and deduplication (`$group`, `$addToSet`,
/// `$lookup`, update's `$addToSet`/`$pullAll`). Numbers are keyed by value across
/// representations (`1`, `1.0` and `-0.0`/`0` agree, and so do an integral float and
/// a `u64` beyond `i64`), dates by instant; embedded documents keep their field order,
/// as equality does.
pub(crate) fn equality_key(v: &Value, out: &mut String) {
    use std::fmt::Write as _;
    if let Some(ms) = date_millis(v) {
        let _ = write!(out, "D{ms}");
        return;
    }
    match v {
        Value::Null => out.push('n'),
        Value::Bool(b) => out.push(if *b { 'T' } else { 'F' }),
        Value::Number(n) => {
            out.push('#');
            let _ = match as_i128(n) {
                Some(i) => write!(out, "{i}"),
                None => write!(out, "{n}"),
            };
        }
        Value::String(s) => {
            let _ = write!(out, "s{}:{s}", s.len());
        }
        Value::Array(items) => {
            out.push('[');
            for i in items {
                equality_key(i, out);
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (k, v) in m {
                let _ = write!(out, "{}:{k}", k.len());
                equality_key(v, out);
                out.push(',');
            }
            out.push('}');
        }
    }
}

/// Distinct values in MongoDB's order, gathered without comparing each new value with
/// every one kept: values are appended and, as the list doubles, sorted (stably) with
/// equal ones dropped, so the first of equal values (`1` before `1.0`) stays.
#[derive(Debug, Default)]
pub(crate) struct DistinctValues {
    values: Vec<Value>,
    compacted: usize,
}

impl DistinctValues {
    pub(crate) fn push(&mut self, v: Value) {
        self.values.push(v);
        if self.values.len() >= self.compacted.saturating_mul(2).max(1024) {
            self.compact();
        }
    }

    fn compact(&mut self) {
        self.values.sort_by(compare_values);
        self.values
            .dedup_by(|later, earlier| values_equal(later, earlier));
        self.compacted = self.values.len();
    }

    /// The distinct values, sorted.
    pub(crate) fn finish(mut self) -> Vec<Value> {
        self.compact();
        self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_keys_agree_with_values_equal() {
        let big: Value = serde_json::from_str("10000000000000000000").unwrap();
        let values = vec![
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-0.0),
            json!(0.0),
            json!(1),
            json!(1.0),
            json!(1.5),
            json!(-7),
            json!(-7.0),
            json!(i64::MAX),
            json!(9.223372036854776e18),
            big,
            json!(1e19),
            json!(1e300),
            json!("1"),
            json!(""),
            json!("a,b"),
            json!(["a", "b"]),
            json!(["a,b"]),
            json!([1, [2]]),
            json!([1.0, [2.0]]),
            json!({"a": 1, "b": 2}),
            json!({"b": 2, "a": 1}),
            json!({"a": 1.0, "b": 2}),
            json!({}),
            json!([]),
            json!({"$date": "2020-01-02T00:00:00.000Z"}),
            json!({"$date": "2020-01-02T00:00:00Z"}),
            json!({"$date": "2020-01-02T01:00:00+01:00"}),
            json!({"$date": 1577923200000i64}),
            json!({"$date": "2020-01-02T00:00:00.001Z"}),
            json!({"$date": "not a date"}),
            json!({"$date": "2020-01-02T00:00:00Z", "x": 1}),
            json!([{"$date": "2020-01-02T00:00:00Z"}]),
            json!([{"$date": "2020-01-02T00:00:00.000Z"}]),
            json!({"a": {"$date": "2020-01-02T00:00:00Z"}}),
            json!({"a": {"$date": "2020-01-02T01:00:00+01:00"}}),
        ];
        let key = |v: &Value| {
            let mut k = String::new();
            equality_key(v, &mut k);
            k
        };
        for a in &values {
            for b in &values {
                assert_eq!(
                    key(a) == key(b),
                    values_equal(a, b),
                    "{a} vs {b}: keys {} and {}",
                    key(a),
                    key(b)
                );
            }
        }
    }

    #[test]
    fn distinct_values_keep_the_first_of_equal_values() {
        let mut d = DistinctValues::default();
        let mut naive: Vec<Value> = Vec::new();
        for i in 0..5000i64 {
            let v = match i % 4 {
                0 => json!(i % 700),
                1 => json!((i % 700) as f64),
                2 => json!(format!("s{}", i % 300)),
                _ => json!([i % 3]),
            };
            if !naive.iter().any(|x| values_equal(x, &v)) {
                naive.push(v.clone());
            }
            d.push(v);
        }
        naive.sort_by(compare_values);
        let got = d.finish();
        // Same values and representatives (serde_json tells `1` from `1.0`).
        assert_eq!(got, naive);
        let mut d = DistinctValues::default();
        for v in [json!(2.0), json!(1), json!(2), json!(1.0), json!("a")] {
            d.push(v);
        }
        assert_eq!(d.finish(), [json!(1), json!(2.0), json!("a")]);
    }

    #[test]
    fn cross_type_order() {
        let ordered = [
            json!(null),
            json!(-1),
            json!(2.5),
            json!(3),
            json!(""),
            json!("a"),
            json!({}),
            json!({"a": 1}),
            json!([]),
            json!([1]),
            json!(false),
            json!(true),
            json!({"$date": "1969-12-31T23:59:59Z"}),
            json!({"$date": 0}),
            json!({"$date": "2020-01-02T01:00:00+02:00"}),
            json!({"$date": "2020-01-02T00:00:00.000Z"}),
        ];
        for w in ordered.windows(2) {
            assert_eq!(compare_values(&w[0], &w[1]), Ordering::Less, "{w:?}");
        }
    }

    #[test]
    fn numbers_equal_across_representations() {
        assert!(values_equal(&json!(1), &json!(1.0)));
        assert!(!values_equal(&json!(1), &json!("1")));
        assert!(!values_equal(&json!(true), &json!(1)));
        assert_eq!(
            compare_values(&json!(u64::MAX), &json!(i64::MAX)),
            Ordering::Greater
        );
    }

    #[test]
    fn object_equality_is_order_sensitive() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap();
        assert!(!values_equal(&a, &b));
        assert!(values_equal(&a, &a.clone()));
    }

    #[test]
    fn dates_are_a_type_of_their_own() {
        let date = json!({"$date": "2020-01-02T00:00:00.000Z"});
        assert_eq!(date_millis(&date), Some(1_577_923_200_000));
        assert_eq!(BsonType::of(&date), BsonType::Date);
        assert_eq!(BsonType::of(&date).number(), 9);
        assert_eq!(BsonType::from_alias("date"), Some(BsonType::Date));
        assert_eq!(BsonType::from_number(9), Some(BsonType::Date));
        assert!(values_equal(
            &date,
            &json!({"$date": "2020-01-02T02:00:00+02:00"})
        ));
        assert!(values_equal(
            &date,
            &json!({"$date": {"$numberLong": "1577923200000"}})
        ));
        for not_a_date in [
            json!({"$date": "yesterday"}),
            json!({"$date": "2020-01-02T00:00:00Z", "b": 1}),
            json!("2020-01-02T00:00:00Z"),
            json!({"d": {"$date": "2020-01-02T00:00:00Z"}}),
        ] {
            assert_eq!(date_millis(&not_a_date), None, "{not_a_date}");
            assert_ne!(BsonType::of(&not_a_date), BsonType::Date);
        }
        assert_eq!(
            compare_values(&json!({"x": 1}), &date),
            Ordering::Less,
            "objects rank before dates"
        );
    }

    #[test]
    fn type_names() {
        assert_eq!(BsonType::of(&json!(1)), BsonType::Int);
        assert_eq!(BsonType::of(&json!(1.0)), BsonType::Double);
        assert_eq!(BsonType::of(&json!(1i64 << 40)), BsonType::Long);
        assert_eq!(BsonType::from_number(2), Some(BsonType::String));
    }
}
