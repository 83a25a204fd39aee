//! Populate and lookup across collections and databases of one client.

use pocketdb::{Client, LookupSpec, LookupStrategy, PopulateSpec};
use serde_json::{json, Value};

fn setup() -> (tempfile::TempDir, Client) {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let base = client.database("base").unwrap();
    base.collection::<Value>("users")
        .insert_many([
            json!({"_id": "u1", "name": "Ada", "email": "ada@x"}),
            json!({"_id": "u2", "name": "Linus", "email": "linus@x"}),
            json!({"_id": 3, "name": "Grace", "email": "grace@x"}),
        ])
        .unwrap();
    let shop = client.database("shop").unwrap();
    shop.collection::<Value>("orders")
        .insert_many([
            json!({"_id": 1, "user_id": "u1", "watchers": ["u2", "nobody", 3.0]}),
            json!({"_id": 2, "user_id": "ghost", "watchers": []}),
            json!({"_id": 3, "user_id": 3, "meta": {"owner": "u2"}}),
            json!({"_id": 4, "user_id": null}),
            json!({"_id": 5}),
        ])
        .unwrap();
    (dir, client)
}

#[test]
fn populate_single_array_missing_across_databases() {
    let (_dir, client) = setup();
    let users = client
        .database("base")
        .unwrap()
        .collection::<Value>("users");
    let orders = client
        .database("shop")
        .unwrap()
        .collection::<Value>("orders");
    let mut cursor = orders.find(json!({})).unwrap().populate_many([
        PopulateSpec::new("user_id", &users)
            .projection(json!({"name": 1}))
            .report_missing(true),
        PopulateSpec::new("watchers", &users)
            .projection(json!({"_id": 0, "name": 1}))
            .as_field("watcher_docs")
            .report_missing(true),
        PopulateSpec::new("meta.owner", &users).projection(json!({"_id": 0, "email": 1})),
    ]);
    let docs: Vec<Value> = cursor.by_ref().collect::<Result<_, _>>().unwrap();
    // One page: one query per spec with references.
    assert_eq!(cursor.lookups(), 3);
    assert_eq!(docs[0]["user_id"], json!({"_id": "u1", "name": "Ada"}));
    assert_eq!(docs[0]["watchers"], json!(["u2", "nobody", 3.0]));
    assert_eq!(
        docs[0]["watcher_docs"],
        json!([{"name": "Linus"}, null, {"name": "Grace"}])
    );
    assert_eq!(docs[1]["user_id"], Value::Null);
    assert_eq!(docs[1]["watcher_docs"], json!([]));
    assert_eq!(docs[2]["user_id"], json!({"_id": 3, "name": "Grace"}));
    assert_eq!(docs[2]["meta"]["owner"], json!({"email": "linus@x"}));
    assert_eq!(docs[3]["user_id"], Value::Null);
    assert!(docs[4].get("user_id").is_none());
    let missing = cursor.missing_references();
    let refs: Vec<(&Value, &Value, &str)> = missing
        .iter()
        .map(|m| (&m.document_id, &m.reference, m.path.as_str()))
        .collect();
    // In spec order within the page.
    assert_eq!(
        refs,
        vec![
            (&json!(2), &json!("ghost"), "user_id"),
            (&json!(1), &json!("nobody"), "watchers")
        ]
    );
    assert_eq!(missing[0].database, "base");
    assert_eq!(missing[0].collection, "users");
}

#[test]
fn populate_batches_per_page() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let db = client.database("app").unwrap();
    let users = db.collection::<Value>("users");
    let posts = db.collection::<Value>("posts");
    users
        .insert_many((0..50).map(|i| json!({"_id": i, "n": i})))
        .unwrap();
    posts
        .insert_many((0..1000).map(|i| json!({"_id": i, "author": i % 50})))
        .unwrap();
    let mut cursor = posts
        .find(json!({}))
        .unwrap()
        .populate("author", &users)
        .page_size(100);
    let mut count = 0;
    for doc in cursor.by_ref() {
        let doc = doc.unwrap();
        assert_eq!(
            doc["author"]["n"].as_i64(),
            doc["_id"].as_i64().map(|i| i % 50)
        );
        count += 1;
    }
    assert_eq!(count, 1000);
    assert_eq!(cursor.lookups(), 10, "one query per page of 100");
}

#[test]
fn populate_typed_and_errors() {
    #[derive(serde::Deserialize, serde::Serialize, Debug)]
    struct Order {
        _id: i64,
        user_id: Option<User>,
    }
    #[derive(serde::Deserialize, serde::Serialize, Debug)]
    struct User {
        name: String,
    }
    let (_dir, client) = setup();
    let users = client
        .database("base")
        .unwrap()
        .collection::<Value>("users");
    let orders = client
        .database("shop")
        .unwrap()
        .collection::<Value>("orders");
    let typed: Vec<Order> = orders
        .find(json!({"_id": {"$lte": 2}}))
        .unwrap()
        .populate("user_id", &users)
        .typed::<Order>()
        .to_vec()
        .unwrap();
    assert_eq!(
        typed[0].user_id.as_ref().map(|u| u.name.as_str()),
        Some("Ada")
    );
    assert!(typed[1].user_id.is_none());
    assert_eq!(typed[1]._id, 2);
    // Bad path and bad projection are reported, not panicked on.
    let err = orders
        .find(json!({}))
        .unwrap()
        .populate("a..b", &users)
        .next();
    assert!(matches!(err, Some(Err(_))));
    let err = orders
        .find(json!({}))
        .unwrap()
        .populate_with(PopulateSpec::new("user_id", &users).projection(json!({"a": 1, "b": 0})))
        .to_vec();
    assert!(err.is_err());
}

#[test]
fn lookup_batched_and_sql_agree() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let shop = client.database("shop").unwrap();
    let base = client.database("base").unwrap();
    let users = base.collection::<Value>("users");
    users
        .insert_many([
            json!({"_id": 1, "team": "a", "name": "Ada"}),
            json!({"_id": 2, "team": ["a", "b"], "name": "Bob"}),
            json!({"_id": 3, "name": "NoTeam"}),
            json!({"_id": 4, "team": 1, "name": "Num"}),
            json!({"_id": 5, "team": "1", "name": "Str"}),
        ])
        .unwrap();
    let teams = shop.collection::<Value>("teams");
    teams
        .insert_many([
            json!({"_id": "a"}),
            json!({"_id": "b", "code": "b"}),
            json!({"_id": "c", "code": ["a", "zz"]}),
            json!({"_id": "d", "code": 1.0}),
            json!({"_id": "e", "code": null}),
        ])
        .unwrap();
    let spec = LookupSpec::new(&users, "code", "team", "members");
    let batched = teams
        .lookup_explained(json!({}), &spec.clone().strategy(LookupStrategy::Batched))
        .unwrap();
    assert_eq!(batched.strategy, LookupStrategy::Batched);
    // Not attached yet: Auto falls back to batched, SqlJoin refuses.
    assert_eq!(
        teams.lookup_explained(json!({}), &spec).unwrap().strategy,
        LookupStrategy::Batched
    );
    assert!(teams
        .lookup_explained(json!({}), &spec.clone().strategy(LookupStrategy::SqlJoin))
        .is_err());
    client.attach(&shop, &base, "base").unwrap();
    let joined = teams.lookup_explained(json!({}), &spec).unwrap();
    assert_eq!(joined.strategy, LookupStrategy::SqlJoin);
    assert_eq!(joined.documents, batched.documents);
    let names = |doc: &Value| -> Vec<String> {
        doc["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    };
    let docs = &joined.documents;
    // "a" has no code: missing matches users with a missing/null team.
    assert_eq!(names(&docs[0]), vec!["NoTeam"]);
    assert_eq!(names(&docs[1]), vec!["Bob"]);
    assert_eq!(names(&docs[2]), vec!["Ada", "Bob"]);
    assert_eq!(names(&docs[3]), vec!["Num"]);
    assert_eq!(names(&docs[4]), vec!["NoTeam"]);
    // A filter on the local side.
    let some = teams
        .lookup(json!({"_id": {"$in": ["b", "d"]}}), &spec)
        .unwrap();
    assert_eq!(some.len(), 2);
    client.detach(&shop, "base").unwrap();
    assert_eq!(
        teams.lookup_explained(json!({}), &spec).unwrap().strategy,
        LookupStrategy::Batched
    );
}

#[test]
fn sql_reads_joins_and_refuses_writes() {
    let (_dir, client) = setup();
    let shop = client.database("shop").unwrap();
    let base = client.database("base").unwrap();
    client.attach(&shop, &base, "base").unwrap();
    assert!(client.attach(&shop, &base, "base").is_err());
    let rows = shop
        .sql(
            "SELECT o.doc ->> '$._id' AS order_id, u.doc AS user
             FROM c_orders o JOIN base.c_users u ON u.doc ->> '$._id' = o.doc ->> '$.user_id'
             WHERE o.doc ->> '$._id' = ?1",
            &[json!(1)],
        )
        .unwrap();
    assert_eq!(
        rows,
        vec![json!({"order_id": 1, "user": {"_id": "u1", "name": "Ada", "email": "ada@x"}})]
    );
    let err = shop.sql("DELETE FROM c_orders", &[]).unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(shop.sql("ATTACH 'x' AS y", &[]).is_err());
    assert!(shop.sql("SELECT * FROM nope", &[]).is_err());
    assert_eq!(
        shop.collection::<Value>("orders")
            .count_documents(json!({}))
            .unwrap(),
        5
    );
    let out = shop
        .sql_write(
            "UPDATE base.c_users SET rev = rev + 1 WHERE id = ?1 RETURNING rev",
            &[json!("\"u1\"")],
        )
        .unwrap();
    assert_eq!(out, vec![json!({"rev": 2})]);
    client.detach(&shop, "base").unwrap();
    assert!(shop.sql("SELECT * FROM base.c_users", &[]).is_err());
}
