//! The index example of the README ("Indexes"), verbatim.

#[test]
fn readme_index_example() -> Result<(), Box<dyn std::error::Error>> {
    use pocketdb::{Database, IndexModel, IndexOptions};
    use serde_json::{json, Value};

    let db = Database::memory()?;
    let users = db.collection::<Value>("users");
    users.create_index(json!({"email": 1}), IndexOptions::default().unique(true))?; // "email_1"
    users.create_indexes(&[
        IndexModel::new(json!({"status": 1, "created_at": -1})),
        IndexModel::new(json!({"seen": 1}))
            .with_options(IndexOptions::default().expire_after_seconds(3600)),
    ])?; // one transaction: all or none
    let plan = users.find(json!({"email": "ada@example.com"}))?.explain()?;
    assert_eq!(plan.index.as_deref(), Some("email_1"));
    let hinted = users
        .find(json!({"status": "new"}))?
        .hint(json!("status_1_created_at_-1"))
        .to_vec()?;
    assert!(hinted.is_empty());
    assert_eq!(users.list_indexes()?.len(), 4); // _id_ first; .to_json() gives MongoDB's shape
    users.drop_index("email_1")?; // users.drop_indexes() drops all but _id_
    Ok(())
}

#[test]
fn readme_index_example_is_current() {
    let readme = include_str!("../../../README.md");
    let squash = |s: &str| s.split_whitespace().collect::<String>();
    let this = squash(include_str!("readme_indexes.rs"));
    let block = readme
        .split("## Indexes")
        .nth(1)
        .and_then(|s| s.split("```rust\n").nth(1))
        .and_then(|s| s.split("```").next())
        .unwrap_or_default();
    assert!(block.contains("create_index"), "no index example in README");
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            this.contains(&squash(line)),
            "README line missing from tests/readme_indexes.rs: {line}"
        );
    }
}
