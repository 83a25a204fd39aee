//! The library example of the README, verbatim (kept in sync by `readme_example_is_current`).

#[test]
fn readme_library_example() -> Result<(), Box<dyn std::error::Error>> {
    use pocketdb::{Client, SortOrder, UpdateOptions};
    use serde_json::{json, Value};

    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?; // one SQLite file per database
    let db = client.database("app")?; // <dir>/app.sqlite, created on first use
    let users = db.collection::<Value>("users"); // or db.collection::<User>() with serde
    users.insert_many([
        json!({"name": "Ada", "age": 36, "tags": ["math", "eng"]}),
        json!({"name": "Linus", "age": 28, "tags": ["os"]}),
    ])?;
    let found = users
        .find(json!({"tags": "eng", "age": {"$gte": 18}}))?
        .sort(json!({"age": -1}))
        .limit(10)
        .projection(json!({"_id": 0, "name": 1}))
        .to_vec()?;
    assert_eq!(found, vec![json!({"name": "Ada"})]);
    users.update_one_with(
        json!({"name": "Grace"}),
        json!({"$set": {"age": 45}}),
        &UpdateOptions::upsert(),
    )?;
    let young = users
        .query()
        .where_("age")
        .lt(40)
        .sort("name", SortOrder::Asc)
        .to_vec()?;
    assert_eq!(young.len(), 2);
    assert_eq!(users.changes_since(0, 100)?.len(), 3); // the change log
    Ok(())
}

#[test]
fn readme_example_is_current() {
    let readme = include_str!("../../../README.md");
    // Compared without whitespace, since rustfmt may wrap the lines here differently.
    let squash = |s: &str| s.split_whitespace().collect::<String>();
    let this = squash(include_str!("readme.rs"));
    for line in readme
        .split("```rust\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        assert!(
            this.contains(&squash(line)),
            "README line missing from tests/readme.rs: {line}"
        );
    }
}
