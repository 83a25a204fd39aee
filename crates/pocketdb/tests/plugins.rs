//! Plugins: hook order, rejection leaving nothing behind, transforms on write and read,
//! after_write after commit, collection scope, the timestamps plugin.

use pocketdb::plugin::{Plugin, Timestamps, WriteContext, WriteOp};
use pocketdb::{ChangeEvent, ChangeOp, Database, Error};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

struct Tag {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

impl Plugin for Tag {
    fn name(&self) -> &str {
        self.name
    }
    fn before_write(&self, ctx: &WriteContext<'_>, doc: &mut Value) -> pocketdb::Result<()> {
        self.log
            .lock()
            .map_err(|_| Error::InvalidArgument("poisoned".into()))?
            .push(format!("{}:{:?}", self.name, ctx.op));
        if doc.get("reject").is_some() {
            return Err(Error::Plugin {
                plugin: self.name.into(),
                message: "rejected by test".into(),
            });
        }
        if let Value::Object(m) = doc {
            let trail = m.entry("trail").or_insert_with(|| json!([]));
            if let Value::Array(a) = trail {
                a.push(json!(self.name));
            }
        }
        Ok(())
    }
    fn wants_after_write(&self) -> bool {
        true
    }
    fn after_write(&self, event: &ChangeEvent) -> pocketdb::Result<()> {
        self.log
            .lock()
            .map_err(|_| Error::InvalidArgument("poisoned".into()))?
            .push(format!(
                "{}:after:{}:{}",
                self.name,
                event.op.as_str(),
                event.id
            ));
        Ok(())
    }
    fn after_read(&self, _c: &str, doc: &mut Value) -> pocketdb::Result<()> {
        if let Value::Object(m) = doc {
            m.insert(format!("read_by_{}", self.name), json!(true));
        }
        Ok(())
    }
}

#[test]
fn hooks_run_in_order_and_transform() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    let log = Arc::new(Mutex::new(Vec::new()));
    db.register_collection_plugin(
        "c",
        Tag {
            name: "local",
            log: log.clone(),
        },
    )?;
    db.register_plugin(Tag {
        name: "global",
        log: log.clone(),
    })?;
    let c = db.collection::<Value>("c");
    c.insert_one(json!({"_id": 1}))?;
    let doc = c.find_one(json!({"_id": 1}))?.expect("stored");
    assert_eq!(
        doc["trail"],
        json!(["global", "local"]),
        "database-wide first"
    );
    assert_eq!(doc["read_by_global"], true);
    assert_eq!(doc["read_by_local"], true);
    c.update_one(json!({"_id": 1}), json!({"$set": {"x": 1}}))?;
    let entries = log.lock().map(|l| l.clone()).unwrap_or_default();
    assert_eq!(
        entries,
        [
            "global:Insert",
            "local:Insert",
            "global:after:insert:1",
            "local:after:insert:1",
            "global:Update",
            "local:Update",
            "global:after:update:1",
            "local:after:update:1",
        ]
    );
    // other collections only see the database-wide plugin
    db.collection::<Value>("d").insert_one(json!({"_id": 2}))?;
    let d = db
        .collection::<Value>("d")
        .find_one(json!({}))?
        .expect("stored");
    assert_eq!(d["trail"], json!(["global"]));
    assert_eq!(db.plugins().len(), 2);
    Ok(())
}

#[test]
fn a_rejecting_hook_aborts_the_write_and_leaves_nothing() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    let log = Arc::new(Mutex::new(Vec::new()));
    db.register_plugin(Tag { name: "p", log })?;
    let c = db.collection::<Value>("c");
    let before = db.last_change_seq()?;
    match c.insert_one(json!({"_id": 1, "reject": true})) {
        Err(Error::Plugin { plugin, message }) => {
            assert_eq!(plugin, "p");
            assert_eq!(message, "rejected by test");
        }
        other => panic!("expected a plugin error, got {other:?}"),
    }
    c.insert_many([json!({"_id": 1}), json!({"_id": 2})])?;
    let seq = db.last_change_seq()?;
    assert_eq!(seq, before + 2);
    // update_many: one rejected document aborts the whole write
    c.update_one(json!({"_id": 2}), json!({"$set": {"flag": 1}}))?;
    let seq = db.last_change_seq()?;
    let r = c.update_many(json!({}), json!({"$set": {"reject": 1}}));
    assert!(matches!(r, Err(Error::Plugin { .. })));
    assert_eq!(db.last_change_seq()?, seq);
    assert_eq!(c.count_documents(json!({"reject": {"$exists": true}}))?, 0);
    Ok(())
}

#[test]
fn timestamps_plugin() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    db.register_plugin(Timestamps::default())?;
    let c = db.collection::<Value>("notes");
    c.insert_one(json!({"_id": 1, "t": "a"}))?;
    let first = c.find_one(json!({"_id": 1}))?.expect("stored");
    assert!(first["created_at"].is_string());
    c.replace_one(json!({"_id": 1}), json!({"t": "b"}))?;
    let replaced = c.find_one(json!({"_id": 1}))?.expect("stored");
    assert_eq!(
        replaced["created_at"], first["created_at"],
        "kept on replace"
    );
    assert!(replaced["updated_at"].is_string());
    c.update_one(json!({"_id": 1}), json!({"$unset": {"created_at": ""}}))?;
    let updated = c.find_one(json!({"_id": 1}))?.expect("stored");
    assert_eq!(
        updated["created_at"], first["created_at"],
        "restored on update"
    );
    let _ = (ChangeOp::Insert, WriteOp::Insert);
    Ok(())
}

#[test]
fn schema_validation_levels_and_actions() -> pocketdb::Result<()> {
    use pocketdb::plugin::{SchemaValidation, ValidationAction, ValidationLevel};
    let db = Database::memory()?;
    let schema = json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 0},
            "address": {"type": "object", "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}}}
        }
    });
    let users = db.collection::<Value>("users");
    users.insert_one(json!({"_id": "legacy", "age": -5}))?; // before validation existed
    db.register_plugin(
        SchemaValidation::new()
            .collection(
                "users",
                &schema,
                ValidationLevel::Moderate,
                ValidationAction::Error,
            )?
            .collection(
                "logs",
                &schema,
                ValidationLevel::Strict,
                ValidationAction::Warn,
            )?,
    )?;
    match users.insert_one(json!({"name": "Ada", "address": {"zip": "12"}})) {
        Err(Error::Validation { collection, errors }) => {
            assert_eq!(collection, "users");
            assert_eq!(errors.len(), 1);
            assert!(errors[0].contains("/address/zip"), "{errors:?}");
            assert!(errors[0].contains("pattern"), "{errors:?}");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert_eq!(users.count_documents(json!({}))?, 1);
    users.insert_one(json!({"_id": 1, "name": "Ada", "age": 36}))?;
    assert!(matches!(
        users.update_one(json!({"_id": 1}), json!({"$set": {"age": -1}})),
        Err(Error::Validation { .. })
    ));
    // moderate: an already invalid document may still be updated
    users.update_one(json!({"_id": "legacy"}), json!({"$set": {"age": -6}}))?;
    // warn: stored anyway
    db.collection::<Value>("logs")
        .insert_one(json!({"age": "x"}))?;
    assert_eq!(
        db.collection::<Value>("logs").count_documents(json!({}))?,
        1
    );
    assert!(matches!(
        SchemaValidation::new().collection(
            "x",
            &json!({"type": 5}),
            ValidationLevel::Strict,
            ValidationAction::Error
        ),
        Err(Error::InvalidArgument(_))
    ));
    Ok(())
}

#[test]
fn plugins_that_keep_stored_values_keep_the_sql_group_by() {
    let db = Database::memory().unwrap();
    db.register_plugin(pocketdb::plugin::Timestamps::default())
        .unwrap();
    let c = db.collection::<Value>("c");
    c.insert_many((0..10).map(|i| json!({"k": i % 3, "v": i})))
        .unwrap();
    let pipeline = json!([{"$group": {"_id": "$k", "n": {"$sum": "$v"}}}, {"$sort": {"_id": 1}}]);
    let plan = c.explain_aggregate(pipeline.clone()).unwrap();
    assert_eq!(plan["stages"][0]["engine"], "sql", "{plan}");
    assert_eq!(
        c.aggregate(pipeline.clone()).unwrap().to_vec().unwrap(),
        vec![
            json!({"_id": 0, "n": 18}),
            json!({"_id": 1, "n": 12}),
            json!({"_id": 2, "n": 15})
        ]
    );

    // A plugin that does not say otherwise may transform documents on read: the
    // pipeline then reads through the collection's cursor.
    struct Opaque;
    impl pocketdb::plugin::Plugin for Opaque {
        fn name(&self) -> &str {
            "opaque"
        }
    }
    db.register_collection_plugin("c", Opaque).unwrap();
    let plan = c.explain_aggregate(pipeline).unwrap();
    assert_eq!(plan["stages"][0]["engine"], "rust", "{plan}");
}

/// Buffered writes run the hooks once, when they are acknowledged: a write a hook
/// refuses fails then (nothing is buffered), and the applier stores what the hooks
/// made without running them again.
#[test]
fn buffered_writes_run_hooks_once_when_acknowledged() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::open_with(
        dir.path().join("b.sqlite"),
        pocketdb::Options::default().durability(pocketdb::Durability::Buffered(
            pocketdb::BufferOptions::default().flush_interval(std::time::Duration::from_secs(3600)),
        )),
    )?;
    let log = Arc::new(Mutex::new(Vec::new()));
    db.register_plugin(Tag {
        name: "a",
        log: log.clone(),
    })?;
    let c = db.collection::<Value>("items");
    c.insert_one(json!({"_id": 1}))?;
    c.update_one(json!({"_id": 1}), json!({"$set": {"x": 1}}))?;
    c.replace_one(json!({"_id": 1}), json!({"x": 2}))?;
    let refused = c.update_one(json!({"_id": 1}), json!({"$set": {"reject": 1}}));
    assert!(matches!(refused, Err(Error::Plugin { .. })), "{refused:?}");
    assert_eq!(db.buffer_stats().map(|s| s.buffered), Some(3));
    let seen = c.find_one(json!({"_id": 1}))?;
    db.flush()?;
    assert_eq!(db.buffer_stats().map(|s| s.dropped), Some(0));
    assert_eq!(c.find_one(json!({"_id": 1}))?, seen);
    assert_eq!(
        seen,
        Some(json!({"_id": 1, "x": 2, "trail": ["a"], "read_by_a": true}))
    );
    let calls = log
        .lock()
        .map_err(|_| Error::InvalidArgument("poisoned".into()))?
        .clone();
    // `after_write` follows the commit of the applier's batch.
    assert_eq!(
        calls,
        vec![
            "a:Insert",
            "a:Update",
            "a:Replace",
            "a:Update",
            "a:after:insert:1",
            "a:after:update:1",
            "a:after:replace:1"
        ]
    );
    Ok(())
}
