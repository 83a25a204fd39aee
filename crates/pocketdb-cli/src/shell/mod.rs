//! `pocketdb shell`: an interactive shell in the style of mongosh.
//!
//! On a terminal it reads with line editing and history (rustyline); from a pipe it reads
//! statements line by line without a prompt. Results are printed as one line of JSON
//! each (a cursor prints one document per line); errors are printed on stderr as
//! `error: <message>` and the shell goes on.

pub mod parse;

use crate::error::{CliError, CliResult};
use crate::output::{line, spaced};
use crate::target::Target;
use parse::{is_incomplete, parse_statement, Call, Chain, Receiver, Statement};
use pocketdb::command::{error_message, run_command};
use pocketdb::{
    Collection, CollectionKind, CollectionOps, FindOneAndModifyOptions, FindSpec, IndexModel,
    IndexOptions, InsertManyOptions, Modification, ReturnDocument, UpdateOptions, UpdateResult,
    WriteModel,
};
use serde_json::{json, Map, Value};
use std::io::{self, BufRead, IsTerminal, Write};

const HELP: &str = "\
Statements:
  db.<coll>.insertOne(doc)                  db.<coll>.insertMany([doc, ...], {ordered})
  db.<coll>.find(filter, projection)        ...sort({f: 1}).skip(n).limit(n).projection({...})
                                            ...count()  ...toArray()
  db.<coll>.findOne(filter, projection)     db.<coll>.countDocuments(filter)
  db.<coll>.distinct(\"field\", filter)       db.<coll>.estimatedDocumentCount()
  db.<coll>.updateOne(filter, update, {upsert, arrayFilters})   db.<coll>.updateMany(...)
  db.<coll>.replaceOne(filter, doc, {upsert})
  db.<coll>.deleteOne(filter)               db.<coll>.deleteMany(filter)
  db.<coll>.findOneAndUpdate(filter, update, {sort, projection, upsert, returnDocument: 'after', arrayFilters})
  db.<coll>.findOneAndReplace(filter, doc, {...})   db.<coll>.findOneAndDelete(filter, {sort, projection})
  db.<coll>.aggregate([stage, ...], {allowDiskUse})   ...toArray()  ...itcount()
  db.<coll>.createIndex({f: 1}, {unique, sparse, name, partialFilterExpression, expireAfterSeconds})
  db.<coll>.createIndexes([{f: 1}, ...], options)   db.<coll>.getIndexes()
  db.<coll>.dropIndex(\"name\" | {f: 1})      db.<coll>.dropIndexes()
  db.<coll>.find(...)...hint(\"name\" | {f: 1})   ...explain()   ...explain(\"executionStats\")
  db.<coll>.drop()
  db.<coll>.watch(filter, {limit, maxAwaitTimeMS, resumeAfter, fullDocument: 'updateLookup'})
                                            prints change events until `limit` events or
                                            maxAwaitTimeMS (default 10000) without one
  db.getCollection(\"name\").<method>(...)    db.getCollectionNames()
  db.runCommand({...})                      db.createCollection(\"name\")
  db.<coll>.bulkWrite([{insertOne: {document}}, {updateOne: {filter, update}}, ...], {ordered})
  db.<coll>.insert(doc | [docs])   .update(filter, update, {upsert, multi})   .remove(filter, justOne)
  db.<coll>.renameCollection(\"to\", dropTarget)   db.<coll>.stats()   db.stats()   db.dropDatabase()
  show collections   show dbs   use <db>   db   help   exit
Documents are relaxed JSON: {name: 'Ada', tags: ['a', 'b',]}, regexes /^A/i, ObjectId('...').";

/// Whether the shell goes on after a statement.
enum Flow {
    Continue,
    Exit,
}

/// The shell's state: the database in use and, with `--dir`, the client for `use`.
pub struct Shell {
    target: Target,
}

/// Runs the shell on stdin until `exit` or end of input.
pub fn run(target: Target) -> CliResult {
    let mut shell = Shell { target };
    if io::stdin().is_terminal() {
        shell.interactive()
    } else {
        shell.piped()
    }
}

/// True when a line clearly begins a new statement (so a previous unfinished one was a
/// mistake rather than the start of a multi-line statement).
fn starts_statement(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("db.") || t.starts_with("db[") || t.starts_with("show ") || t.starts_with("use ")
}

impl Shell {
    fn prompt(&self) -> String {
        format!("{}> ", self.target.db.name())
    }

    fn piped(&mut self) -> CliResult {
        let stdin = io::stdin();
        let mut input = stdin.lock();
        let mut buffer = String::new();
        let mut raw = Vec::new();
        loop {
            raw.clear();
            if input.read_until(b'\n', &mut raw)? == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&raw);
            let text = text.trim_end_matches(['\n', '\r']);
            if !buffer.is_empty() && starts_statement(text) {
                report(&format!("incomplete statement: {}", buffer.trim()));
                buffer.clear();
            }
            buffer.push_str(text);
            buffer.push('\n');
            if is_incomplete(&buffer) {
                continue;
            }
            let statement = std::mem::take(&mut buffer);
            if let Flow::Exit = self.execute_reporting(&statement)? {
                return Ok(());
            }
        }
        if !buffer.trim().is_empty() {
            report(&format!("incomplete statement: {}", buffer.trim()));
        }
        Ok(())
    }

    fn interactive(&mut self) -> CliResult {
        let mut editor = rustyline::DefaultEditor::new()
            .map_err(|e| CliError::Failure(format!("cannot start line editor: {e}")))?;
        let history =
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".pocketdb_history"));
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        println!(
            "pocketdb shell on '{}'. Type help for help, exit to leave.",
            self.target.db.name()
        );
        let mut buffer = String::new();
        loop {
            let prompt = if buffer.is_empty() {
                self.prompt()
            } else {
                "... ".to_string()
            };
            match editor.readline(&prompt) {
                Ok(text) => {
                    buffer.push_str(&text);
                    buffer.push('\n');
                    if is_incomplete(&buffer) {
                        continue;
                    }
                    let statement = std::mem::take(&mut buffer);
                    if !statement.trim().is_empty() {
                        let _ = editor.add_history_entry(statement.trim());
                    }
                    if let Flow::Exit = self.execute_reporting(&statement)? {
                        break;
                    }
                }
                Err(rustyline::error::ReadlineError::Interrupted) => {
                    // Ctrl-C abandons the statement being typed.
                    buffer.clear();
                }
                Err(rustyline::error::ReadlineError::Eof) => break,
                Err(e) => return Err(CliError::Failure(format!("reading input: {e}"))),
            }
        }
        if let Some(h) = &history {
            let _ = editor.save_history(h);
        }
        Ok(())
    }

    /// Executes a statement, printing its error (if any) instead of failing. Only a
    /// closed stdout ends the shell.
    fn execute_reporting(&mut self, text: &str) -> CliResult<Flow> {
        let stdout = io::stdout();
        let mut out = stdout.lock();
        let result = self.execute(text, &mut out);
        out.flush()?;
        match result {
            Ok(flow) => Ok(flow),
            Err(ShellError::Io(e)) => Err(e.into()),
            Err(ShellError::Message(m)) => {
                report(&m);
                Ok(Flow::Continue)
            }
        }
    }

    fn execute(&mut self, text: &str, out: &mut impl Write) -> Result<Flow, ShellError> {
        match parse_statement(text)? {
            Statement::Empty => {}
            Statement::Help => line(out, HELP)?,
            Statement::Exit => return Ok(Flow::Exit),
            Statement::DbName => line(out, self.target.db.name())?,
            Statement::Show(what) => self.show(&what, out)?,
            Statement::Use(name) => {
                let client = self.target.client.as_ref().ok_or(
                    "use needs a client directory: start the shell with --dir instead of --db",
                )?;
                self.target.db = client.database(&name).map_err(db_error)?;
                line(out, &format!("switched to db {name}"))?;
            }
            Statement::Chain(chain) => self.chain(chain, out)?,
        }
        Ok(Flow::Continue)
    }

    fn show(&self, what: &str, out: &mut impl Write) -> Result<(), ShellError> {
        match what {
            "collections" | "tables" => {
                for name in self.target.db.list_collections().map_err(db_error)? {
                    line(out, &name)?;
                }
            }
            "dbs" | "databases" => {
                let client = self.target.client.as_ref().ok_or(
                    "show dbs needs a client directory: start the shell with --dir instead of --db",
                )?;
                for name in client.list_databases().map_err(db_error)? {
                    line(out, &name)?;
                }
            }
            other => {
                return Err(
                    format!("cannot show '{other}': try show collections or show dbs").into(),
                )
            }
        }
        Ok(())
    }

    fn chain(&mut self, chain: Chain, out: &mut impl Write) -> Result<(), ShellError> {
        let mut calls = chain.calls.into_iter();
        let name = match chain.receiver {
            Receiver::Collection(name) => name,
            Receiver::Db => {
                let Some(first) = calls.next() else {
                    return Ok(());
                };
                match self.db_method(first, out)? {
                    Some(name) => name,
                    None => {
                        if let Some(next) = calls.next() {
                            return Err(
                                format!("cannot call .{}() on that result", next.method).into()
                            );
                        }
                        return Ok(());
                    }
                }
            }
        };
        let calls: Vec<Call> = calls.collect();
        match calls.first().map(|c| c.method.as_str()) {
            Some("renameCollection") => return self.rename_collection(&name, calls, out),
            Some("stats") => return self.collection_stats(&name, calls, out),
            _ => {}
        }
        if calls.is_empty() {
            return Err(format!(
                "call a method on the collection, e.g. db.getCollection('{name}').find()"
            )
            .into());
        }
        let coll = self.target.db.resolve_collection(&name).map_err(db_error)?;
        collection_call(&*coll, calls, out)
    }

    /// `db.<coll>.stats()`: the collection's entry of `db.stats()`.
    fn collection_stats(
        &self,
        name: &str,
        calls: Vec<Call>,
        out: &mut impl Write,
    ) -> Result<(), ShellError> {
        let Some(Call { method, args }) = only_call(calls)? else {
            return Ok(());
        };
        Args::new(&method, args).max(0)?;
        let coll = self.target.db.resolve_collection(name).map_err(db_error)?;
        let kind = match coll.kind() {
            CollectionKind::Plain => None,
            CollectionKind::Sharded => Some("sharded"),
            CollectionKind::Partitioned => Some("partitioned"),
        };
        if let Some(kind) = kind {
            // Its documents are in member files, which have stats of their own.
            let documents = coll.estimated_count().map_err(db_error)?;
            line(
                out,
                &spaced(&json!({"name": name, "kind": kind, "documents": documents})),
            )?;
            return Ok(());
        }
        let stats = self.target.db.stats().map_err(db_error)?;
        let entry = stats
            .collections
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| ShellError::from(format!("collection '{name}' does not exist")))?;
        let value =
            serde_json::to_value(entry).map_err(|e| ShellError::from(format!("stats(): {e}")))?;
        line(out, &spaced(&value))?;
        Ok(())
    }

    /// `db.<coll>.renameCollection(to, dropTarget)`: a method of the collection in
    /// mongosh, a rename in the database here.
    fn rename_collection(
        &self,
        from: &str,
        calls: Vec<Call>,
        out: &mut impl Write,
    ) -> Result<(), ShellError> {
        let Some(Call { method, args }) = only_call(calls)? else {
            return Ok(());
        };
        let a = Args::new(&method, args);
        a.max(2)?;
        let to = a.string(0, "new collection name")?;
        let drop_target = match a.args.get(1) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(format!(
                    "renameCollection(): dropTarget must be true or false, not {other}"
                )
                .into())
            }
        };
        self.target
            .db
            .rename_collection(from, &to, drop_target)
            .map_err(db_error)?;
        line(out, &spaced(&json!({"ok": 1})))?;
        Ok(())
    }

    /// Runs a method of `db`; returns a collection name for `getCollection`.
    fn db_method(
        &mut self,
        call: Call,
        out: &mut impl Write,
    ) -> Result<Option<String>, ShellError> {
        let db = &self.target.db;
        let Call { method, args } = call;
        let a = Args::new(&method, args);
        match method.as_str() {
            "getCollection" => {
                a.max(1)?;
                return Ok(Some(a.string(0, "collection name")?));
            }
            "getCollectionNames" => {
                a.max(0)?;
                let names = db.list_collections().map_err(db_error)?;
                line(out, &spaced(&json!(names)))?;
            }
            "getName" => {
                a.max(0)?;
                line(out, &spaced(&json!(db.name())))?;
            }
            "runCommand" => {
                a.max(1)?;
                let command = a
                    .document(0, "command")?
                    .ok_or("runCommand needs a command document")?;
                line(out, &spaced(&run_command(db, &command)))?;
            }
            "createCollection" => {
                a.max(1)?;
                let name = a.string(0, "collection name")?;
                db.create_collection(&name, Default::default())
                    .map_err(db_error)?;
                line(out, &spaced(&json!({"ok": 1})))?;
            }
            "stats" => {
                a.max(0)?;
                let stats = db.stats().map_err(db_error)?;
                let value = serde_json::to_value(stats)
                    .map_err(|e| ShellError::from(format!("stats(): {e}")))?;
                line(out, &spaced(&value))?;
            }
            "dropDatabase" => {
                a.max(0)?;
                let client = self.target.client.clone().ok_or(
                    "dropDatabase needs a client directory: start the shell with --dir instead of --db",
                )?;
                let name = db.name().to_string();
                // The shell's own handle goes first (a handle left open would go on
                // writing to the deleted file); the name stays in use, with a new, empty
                // database behind it, as in mongosh.
                self.target.db = pocketdb::Database::memory().map_err(db_error)?;
                let dropped = client.drop_database(&name);
                self.target.db = client.database(&name).map_err(db_error)?;
                match dropped {
                    Ok(()) => line(out, &spaced(&json!({"ok": 1, "dropped": name})))?,
                    Err(pocketdb::Error::DatabaseNotFound(_)) => {
                        line(out, &spaced(&json!({"ok": 1})))?
                    }
                    Err(e) => return Err(db_error(e)),
                }
            }
            "help" => line(out, HELP)?,
            other => return Err(format!("unknown method db.{other}()").into()),
        }
        Ok(None)
    }
}

/// The one call of a method that returns no cursor; fails when another follows it.
fn only_call(calls: Vec<Call>) -> Result<Option<Call>, ShellError> {
    let mut calls = calls.into_iter();
    let Some(call) = calls.next() else {
        return Ok(None);
    };
    refuse_chain(&call.method, calls.next())?;
    Ok(Some(call))
}

/// Fails when a call follows `method`, which returns no cursor.
fn refuse_chain(method: &str, next: Option<Call>) -> Result<(), ShellError> {
    match next {
        Some(next) => Err(format!(
            "{method}() does not return a cursor: cannot call .{}()",
            next.method
        )
        .into()),
        None => Ok(()),
    }
}

/// Runs `db.<coll>.<method>(…)…` and prints the result.
fn collection_call(
    coll: &dyn CollectionOps,
    calls: Vec<Call>,
    out: &mut impl Write,
) -> Result<(), ShellError> {
    let mut calls = calls.into_iter();
    let Some(Call { method, args }) = calls.next() else {
        return Ok(());
    };
    let a = Args::new(&method, args);
    if method == "find" {
        a.max(2)?;
        let spec = CursorSpec {
            filter: a.document(0, "filter")?.unwrap_or_else(empty),
            projection: a.document(1, "projection")?,
            ..CursorSpec::default()
        };
        return cursor(coll, spec, calls.collect(), out);
    }
    if method == "aggregate" {
        a.max(2)?;
        let pipeline = a.array(0, "pipeline")?;
        let options = a.options(1, &["allowDiskUse", "cursor"])?;
        let options = pocketdb::AggregateOptions {
            allow_disk_use: opt_bool(&options, "allowDiskUse")?.unwrap_or(false),
            ..Default::default()
        };
        let docs = coll
            .aggregate_with(Value::Array(pipeline), options)
            .and_then(|c| c.to_vec())
            .map_err(db_error)?;
        return print_results(docs, calls.collect(), out);
    }
    refuse_chain(&method, calls.next())?;
    let result: Value = match method.as_str() {
        "insertOne" => {
            a.max(2)?;
            let doc = a
                .document(0, "document")?
                .ok_or("insertOne needs a document")?;
            let r = coll.insert_one(doc).map_err(db_error)?;
            json!({"acknowledged": true, "insertedId": r.inserted_id})
        }
        "insertMany" => {
            a.max(2)?;
            let docs = a.array(0, "documents")?;
            let options = a.options(1, &["ordered"])?;
            let ordered = opt_bool(&options, "ordered")?.unwrap_or(true);
            let r = coll
                .insert_many_with(docs, InsertManyOptions { ordered })
                .map_err(db_error)?;
            let ids: Map<String, Value> = r
                .inserted_ids
                .into_iter()
                .map(|(i, id)| (i.to_string(), id))
                .collect();
            json!({"acknowledged": true, "insertedIds": ids})
        }
        "findOne" => {
            a.max(2)?;
            let spec = CursorSpec {
                filter: a.document(0, "filter")?.unwrap_or_else(empty),
                projection: a.document(1, "projection")?,
                limit: 1,
                ..CursorSpec::default()
            };
            spec.documents(coll)?
                .into_iter()
                .next()
                .unwrap_or(Value::Null)
        }
        "countDocuments" | "count" => {
            a.max(1)?;
            let filter = a.document(0, "filter")?.unwrap_or_else(empty);
            json!(coll.count_documents(filter).map_err(db_error)?)
        }
        "estimatedDocumentCount" => {
            a.max(0)?;
            json!(coll.estimated_count().map_err(db_error)?)
        }
        "distinct" => {
            a.max(2)?;
            let field = a.string(0, "field")?;
            let filter = a.document(1, "filter")?.unwrap_or_else(empty);
            Value::Array(coll.distinct(&field, filter).map_err(db_error)?)
        }
        "updateOne" | "updateMany" => {
            a.max(3)?;
            let filter = a
                .document(0, "filter")?
                .ok_or_else(|| format!("{method} needs a filter"))?;
            let update = a
                .document(1, "update")?
                .ok_or_else(|| format!("{method} needs an update document"))?;
            let options = update_options(&a.options(2, &["upsert", "arrayFilters"])?)?;
            let r = if method == "updateOne" {
                coll.update_one_with(filter, update, &options)
            } else {
                coll.update_many_with(filter, update, &options)
            };
            update_result(r.map_err(db_error)?)
        }
        "replaceOne" => {
            a.max(3)?;
            let filter = a
                .document(0, "filter")?
                .ok_or("replaceOne needs a filter")?;
            let doc = a
                .document(1, "replacement")?
                .ok_or("replaceOne needs a replacement document")?;
            let options = a.options(2, &["upsert"])?;
            let upsert = opt_bool(&options, "upsert")?.unwrap_or(false);
            update_result(
                coll.replace_one_with(filter, doc, upsert)
                    .map_err(db_error)?,
            )
        }
        "bulkWrite" => {
            a.max(2)?;
            let models = a
                .array(0, "operations")?
                .into_iter()
                .enumerate()
                .map(|(i, op)| write_model(i, op))
                .collect::<Result<Vec<_>, _>>()?;
            let options = a.options(1, &["ordered"])?;
            let ordered = opt_bool(&options, "ordered")?.unwrap_or(true);
            let r = coll.bulk_write(models, ordered).map_err(db_error)?;
            let ids = |m: std::collections::BTreeMap<usize, Value>| -> Map<String, Value> {
                m.into_iter().map(|(i, id)| (i.to_string(), id)).collect()
            };
            json!({
                "acknowledged": true,
                "insertedCount": r.inserted_count,
                "insertedIds": ids(r.inserted_ids),
                "matchedCount": r.matched_count,
                "modifiedCount": r.modified_count,
                "deletedCount": r.deleted_count,
                "upsertedCount": r.upserted_count,
                "upsertedIds": ids(r.upserted_ids),
            })
        }
        // The legacy methods mongosh still accepts.
        "insert" => {
            a.max(2)?;
            match a.args.first() {
                Some(Value::Array(docs)) => {
                    let r = coll.insert_many_with(docs.clone(), InsertManyOptions::default());
                    json!({"acknowledged": true, "insertedCount": r.map_err(db_error)?.inserted_ids.len()})
                }
                Some(doc @ Value::Object(_)) => {
                    coll.insert_one(doc.clone()).map_err(db_error)?;
                    json!({"acknowledged": true, "insertedCount": 1})
                }
                _ => return Err("insert() needs a document or an array of documents".into()),
            }
        }
        "remove" => {
            a.max(2)?;
            let filter = a.document(0, "filter")?.ok_or("remove() needs a filter")?;
            let just_one = match a.args.get(1) {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(Value::Object(o)) => opt_bool(o, "justOne")?.unwrap_or(false),
                Some(_) => {
                    return Err(
                        "remove(): the second argument is justOne (true or false) or {justOne}"
                            .into(),
                    )
                }
            };
            let r = if just_one {
                coll.delete_one(filter)
            } else {
                coll.delete_many(filter)
            };
            json!({"acknowledged": true, "deletedCount": r.map_err(db_error)?.deleted_count})
        }
        "update" => {
            a.max(3)?;
            let filter = a.document(0, "filter")?.ok_or("update() needs a filter")?;
            let update = a
                .document(1, "update")?
                .ok_or("update() needs an update document")?;
            let options = a.options(2, &["upsert", "multi", "arrayFilters"])?;
            let multi = opt_bool(&options, "multi")?.unwrap_or(false);
            let mut rest = options;
            rest.remove("multi");
            let options = update_options(&rest)?;
            let is_replacement = update
                .as_object()
                .is_some_and(|m| !m.keys().any(|k| k.starts_with('$')));
            let r = match (is_replacement, multi) {
                (true, true) => {
                    return Err(
                        "update(): multi needs update operators, not a replacement document".into(),
                    )
                }
                (true, false) => coll.replace_one_with(filter, update, options.upsert),
                (false, true) => coll.update_many_with(filter, update, &options),
                (false, false) => coll.update_one_with(filter, update, &options),
            };
            update_result(r.map_err(db_error)?)
        }
        "deleteOne" | "deleteMany" => {
            a.max(1)?;
            let filter = a
                .document(0, "filter")?
                .ok_or_else(|| format!("{method} needs a filter"))?;
            let r = if method == "deleteOne" {
                coll.delete_one(filter)
            } else {
                coll.delete_many(filter)
            };
            json!({"acknowledged": true, "deletedCount": r.map_err(db_error)?.deleted_count})
        }
        "findOneAndUpdate" | "findOneAndReplace" => {
            a.max(3)?;
            let filter = a
                .document(0, "filter")?
                .ok_or_else(|| format!("{method} needs a filter"))?;
            let update = a
                .document(1, "update")?
                .ok_or_else(|| format!("{method} needs an update"))?;
            let options = find_and_modify_options(&a.options(
                2,
                &[
                    "sort",
                    "projection",
                    "upsert",
                    "returnDocument",
                    "returnNewDocument",
                    "arrayFilters",
                ],
            )?)?;
            let modification = if method == "findOneAndUpdate" {
                Modification::Update(update)
            } else {
                Modification::Replace(update)
            };
            coll.find_and_modify(filter, modification, &options)
                .map_err(db_error)?
                .document
                .unwrap_or(Value::Null)
        }
        "findOneAndDelete" => {
            a.max(2)?;
            let filter = a
                .document(0, "filter")?
                .ok_or("findOneAndDelete needs a filter")?;
            let options = find_and_modify_options(&a.options(1, &["sort", "projection"])?)?;
            coll.find_and_modify(filter, Modification::Delete, &options)
                .map_err(db_error)?
                .document
                .unwrap_or(Value::Null)
        }
        "drop" => {
            a.max(0)?;
            json!(coll.drop_collection().map_err(db_error)?)
        }
        "createIndex" | "ensureIndex" => {
            a.max(2)?;
            let keys = a
                .document(0, "keys")?
                .ok_or_else(|| format!("{method} needs a key document like {{email: 1}}"))?;
            let options = index_options(a.document(1, "options")?)?;
            let names = coll
                .create_indexes(&[IndexModel { keys, options }])
                .map_err(db_error)?;
            json!(names.first())
        }
        "createIndexes" => {
            a.max(2)?;
            let options = index_options(a.document(1, "options")?)?;
            let mut models = Vec::new();
            for keys in a.array(0, "key documents")? {
                if !keys.is_object() {
                    return Err("createIndexes(): each entry must be a key document".into());
                }
                // One shared name cannot apply to several indexes.
                let mut o = options.clone();
                o.name = None;
                models.push(IndexModel { keys, options: o });
            }
            json!(coll.create_indexes(&models).map_err(db_error)?)
        }
        "getIndexes" | "getIndexSpecs" => {
            a.max(0)?;
            let list = coll.list_indexes().map_err(db_error)?;
            Value::Array(list.iter().map(|i| i.to_json()).collect())
        }
        "dropIndex" => {
            a.max(1)?;
            let index = match a.args.first() {
                Some(v @ (Value::String(_) | Value::Object(_))) => v.clone(),
                _ => return Err("dropIndex() needs an index name or key document".into()),
            };
            drop_indexes_command(coll, index)?
        }
        "dropIndexes" => {
            a.max(1)?;
            let index = a.args.first().cloned().unwrap_or_else(|| json!("*"));
            drop_indexes_command(coll, index)?
        }
        "watch" => {
            a.max(2)?;
            let filter = a.document(0, "filter")?;
            let options = a.options(
                1,
                &["limit", "maxAwaitTimeMS", "resumeAfter", "fullDocument"],
            )?;
            return watch(&plain(coll, "watch")?, filter, &options, out);
        }
        other => return Err(format!("unknown collection method {other}(): try help").into()),
    };
    line(out, &spaced(&result))?;
    Ok(())
}

/// Index options from the shell's options document (`{unique: true, name: 'x'}`).
fn index_options(doc: Option<Value>) -> Result<IndexOptions, ShellError> {
    match doc {
        Some(d) => IndexOptions::from_json(&d).map_err(db_error),
        None => Ok(IndexOptions::default()),
    }
}

/// `dropIndex` / `dropIndexes` through the `dropIndexes` command, whose reply is printed.
fn drop_indexes_command(coll: &dyn CollectionOps, index: Value) -> Result<Value, ShellError> {
    let reply = run_command(
        coll.database(),
        &json!({"dropIndexes": coll.name(), "index": index}),
    );
    if reply["ok"] == 1 {
        Ok(reply)
    } else {
        Err(reply["errmsg"]
            .as_str()
            .unwrap_or("dropIndexes failed")
            .to_string()
            .into())
    }
}

/// `db.<coll>.watch(filter, options)`: prints change events, one per line, until
/// `limit` events were printed or none came for `maxAwaitTimeMS`.
fn watch(
    coll: &Collection,
    filter: Option<Value>,
    options: &Map<String, Value>,
    out: &mut impl Write,
) -> Result<(), ShellError> {
    let number = |key: &str| -> Result<Option<u64>, ShellError> {
        match options.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("option {key} must be a non-negative integer").into()),
        }
    };
    let limit = number("limit")?;
    let idle = std::time::Duration::from_millis(number("maxAwaitTimeMS")?.unwrap_or(10_000));
    let full_document = match options.get("fullDocument").and_then(Value::as_str) {
        None | Some("default") => pocketdb::FullDocument::Default,
        Some("updateLookup") => pocketdb::FullDocument::UpdateLookup,
        Some(other) => {
            return Err(
                format!("fullDocument must be 'default' or 'updateLookup', not {other}").into(),
            )
        }
    };
    let watch = pocketdb::WatchOptions {
        filter,
        full_document,
        resume_after: number("resumeAfter")?
            .map(|t| i64::try_from(t).map_err(|_| "resumeAfter is too large".to_string()))
            .transpose()?,
        ..pocketdb::WatchOptions::default()
    };
    let mut stream = coll.watch_with(watch).map_err(db_error)?;
    let mut printed = 0;
    while limit.is_none_or(|l| printed < l) {
        match stream.next_timeout(idle).map_err(db_error)? {
            Some(event) => {
                line(out, &spaced(&event.to_json()))?;
                out.flush()?;
                printed += 1;
            }
            None => break,
        }
    }
    Ok(())
}

/// A cursor being built by `find(...).sort(...).skip(...)…`.
#[derive(Default)]
struct CursorSpec {
    filter: Value,
    projection: Option<Value>,
    sort: Option<Value>,
    skip: u64,
    limit: i64,
    hint: Option<Value>,
}

/// The single-file collection behind `coll`, for what only it offers (`hint`,
/// `explain`, `watch` in the shell); an error naming `what` on a sharded collection.
fn plain(coll: &dyn CollectionOps, what: &str) -> Result<Collection, ShellError> {
    if coll.kind() != CollectionKind::Plain {
        return Err(format!(
            "{what}() is not available in the shell on the sharded or partitioned collection '{}'",
            coll.name()
        )
        .into());
    }
    Ok(coll.database().collection(coll.name()))
}

impl CursorSpec {
    fn cursor(&self, coll: &Collection) -> Result<pocketdb::Cursor<Value>, ShellError> {
        let mut cursor = coll.find(self.filter.clone()).map_err(db_error)?;
        if let Some(sort) = &self.sort {
            cursor = cursor.sort(sort.clone());
        }
        if let Some(p) = &self.projection {
            cursor = cursor.projection(p.clone());
        }
        if let Some(h) = &self.hint {
            cursor = cursor.hint(h.clone());
        }
        Ok(cursor.skip(self.skip).limit(self.limit))
    }

    fn documents(&self, coll: &dyn CollectionOps) -> Result<Vec<Value>, ShellError> {
        if self.hint.is_some() {
            return self
                .cursor(&plain(coll, "hint")?)?
                .to_vec()
                .map_err(db_error);
        }
        let spec = FindSpec {
            sort: self.sort.clone(),
            projection: self.projection.clone(),
            skip: Some(self.skip),
            limit: Some(self.limit),
            allow_disk_use: None,
        };
        coll.find_with(self.filter.clone(), &spec)
            .map_err(db_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_error)
    }

    /// The plan as JSON; with `executionStats` the query runs too and the number of
    /// documents returned and the time taken are added.
    fn explain(
        &self,
        coll: &dyn CollectionOps,
        verbosity: Option<&str>,
    ) -> Result<Value, ShellError> {
        let mut plan = self
            .cursor(&plain(coll, "explain")?)?
            .explain()
            .map_err(db_error)?
            .to_json();
        match verbosity {
            None | Some("queryPlanner") => {}
            Some("executionStats" | "allPlansExecution") => {
                let start = std::time::Instant::now();
                let n = self.documents(coll)?.len();
                plan["executionStats"] = json!({
                    "nReturned": n,
                    "executionTimeMillis": start.elapsed().as_millis() as u64,
                });
            }
            Some(other) => {
                return Err(format!(
                    "explain(): verbosity must be 'queryPlanner' or 'executionStats', got '{other}'"
                )
                .into())
            }
        }
        Ok(plan)
    }
}

fn cursor(
    coll: &dyn CollectionOps,
    mut spec: CursorSpec,
    calls: Vec<Call>,
    out: &mut impl Write,
) -> Result<(), ShellError> {
    let last = calls.len();
    for (i, Call { method, args }) in calls.into_iter().enumerate() {
        let a = Args::new(&method, args);
        let terminal = |what: &str| -> Result<(), ShellError> {
            if i + 1 != last {
                return Err(format!("{what}() must be the last call of the chain").into());
            }
            Ok(())
        };
        match method.as_str() {
            "sort" => {
                a.max(1)?;
                spec.sort = Some(
                    a.document(0, "sort")?
                        .ok_or("sort needs a document like {age: -1}")?,
                );
            }
            "projection" => {
                a.max(1)?;
                spec.projection = Some(
                    a.document(0, "projection")?
                        .ok_or("projection needs a document")?,
                );
            }
            "skip" => {
                a.max(1)?;
                let n = a.integer(0, "skip")?;
                spec.skip =
                    u64::try_from(n).map_err(|_| "skip must not be negative".to_string())?;
            }
            "limit" => {
                a.max(1)?;
                spec.limit = a.integer(0, "limit")?;
            }
            "hint" => {
                a.max(1)?;
                spec.hint = match a.args.first() {
                    Some(h @ (Value::String(_) | Value::Object(_))) => Some(h.clone()),
                    _ => return Err("hint() needs an index name or key document".into()),
                };
            }
            "explain" => {
                terminal("explain")?;
                a.max(1)?;
                let verbosity = match a.args.first() {
                    None => None,
                    Some(Value::String(s)) => Some(s.as_str()),
                    Some(Value::Bool(true)) => Some("allPlansExecution"),
                    Some(Value::Bool(false)) => None,
                    Some(_) => return Err("explain() takes a verbosity string".into()),
                };
                line(out, &spaced(&spec.explain(coll, verbosity)?))?;
                return Ok(());
            }
            "pretty" | "batchSize" => {}
            "count" => {
                terminal("count")?;
                a.max(0)?;
                let n = coll
                    .count_documents(spec.filter.clone())
                    .map_err(db_error)?;
                line(out, &n.to_string())?;
                return Ok(());
            }
            "size" | "itcount" => {
                terminal(&method)?;
                a.max(0)?;
                line(out, &spec.documents(coll)?.len().to_string())?;
                return Ok(());
            }
            "toArray" => {
                terminal("toArray")?;
                a.max(0)?;
                line(out, &spaced(&Value::Array(spec.documents(coll)?)))?;
                return Ok(());
            }
            other => return Err(format!("unknown cursor method {other}(): try help").into()),
        }
    }
    for doc in spec.documents(coll)? {
        line(out, &spaced(&doc))?;
    }
    Ok(())
}

/// Prints aggregation results: one document per line, or `.toArray()` as one array.
fn print_results(
    docs: Vec<Value>,
    calls: Vec<Call>,
    out: &mut impl Write,
) -> Result<(), ShellError> {
    match calls.as_slice() {
        [] => {
            for doc in &docs {
                line(out, &spaced(doc))?;
            }
        }
        [Call { method, args }] if method == "toArray" && args.is_empty() => {
            line(out, &spaced(&Value::Array(docs)))?;
        }
        [Call { method, args }] if method == "itcount" && args.is_empty() => {
            line(out, &docs.len().to_string())?;
        }
        [first, ..] => {
            return Err(format!(
                "aggregate() results support only .toArray() and .itcount(), not .{}()",
                first.method
            )
            .into())
        }
    }
    Ok(())
}

fn update_result(r: UpdateResult) -> Value {
    json!({
        "acknowledged": true,
        "insertedId": r.upserted_id.clone().unwrap_or(Value::Null),
        "matchedCount": r.matched_count,
        "modifiedCount": r.modified_count,
        "upsertedCount": u64::from(r.upserted_id.is_some()),
    })
}

/// One operation of `bulkWrite([...])`: `{insertOne: {document}}`, `{updateOne:
/// {filter, update, upsert, arrayFilters}}`, `updateMany`, `{replaceOne: {filter,
/// replacement, upsert}}`, `{deleteOne: {filter}}`, `deleteMany`.
fn write_model(i: usize, op: Value) -> Result<WriteModel, ShellError> {
    let bad = |why: &str| -> ShellError { format!("bulkWrite(): operation {i}: {why}").into() };
    let Value::Object(op) = op else {
        return Err(bad("not a document"));
    };
    let mut entries = op.into_iter();
    let (Some((kind, Value::Object(spec))), None) = (entries.next(), entries.next()) else {
        return Err(bad("needs exactly one of insertOne, updateOne, updateMany, replaceOne, deleteOne, deleteMany, holding a document"));
    };
    let field = |name: &str| -> Result<Value, ShellError> {
        match spec.get(name) {
            Some(v @ Value::Object(_)) => Ok(v.clone()),
            Some(v @ Value::Array(_)) if name == "update" => Ok(v.clone()),
            _ => Err(bad(&format!("{kind} needs a '{name}' document"))),
        }
    };
    let allow = |keys: &[&str]| -> Result<(), ShellError> {
        match spec.keys().find(|k| !keys.contains(&k.as_str())) {
            Some(k) => Err(bad(&format!("unknown field '{k}' in {kind}"))),
            None => Ok(()),
        }
    };
    Ok(match kind.as_str() {
        "insertOne" => {
            allow(&["document"])?;
            WriteModel::InsertOne {
                document: field("document")?,
            }
        }
        "updateOne" | "updateMany" => {
            allow(&["filter", "update", "upsert", "arrayFilters"])?;
            let (filter, update) = (field("filter")?, field("update")?);
            let options = update_options(&spec)?;
            if kind == "updateOne" {
                WriteModel::UpdateOne {
                    filter,
                    update,
                    options,
                }
            } else {
                WriteModel::UpdateMany {
                    filter,
                    update,
                    options,
                }
            }
        }
        "replaceOne" => {
            allow(&["filter", "replacement", "upsert"])?;
            WriteModel::ReplaceOne {
                filter: field("filter")?,
                replacement: field("replacement")?,
                upsert: opt_bool(&spec, "upsert")?.unwrap_or(false),
            }
        }
        "deleteOne" => {
            allow(&["filter"])?;
            WriteModel::DeleteOne {
                filter: field("filter")?,
            }
        }
        "deleteMany" => {
            allow(&["filter"])?;
            WriteModel::DeleteMany {
                filter: field("filter")?,
            }
        }
        other => return Err(bad(&format!("unknown operation '{other}'"))),
    })
}

fn update_options(options: &Map<String, Value>) -> Result<UpdateOptions, ShellError> {
    Ok(UpdateOptions {
        upsert: opt_bool(options, "upsert")?.unwrap_or(false),
        array_filters: opt_array(options, "arrayFilters")?,
    })
}

fn find_and_modify_options(
    options: &Map<String, Value>,
) -> Result<FindOneAndModifyOptions, ShellError> {
    let after = match options.get("returnDocument") {
        None => opt_bool(options, "returnNewDocument")?.unwrap_or(false),
        Some(Value::String(s)) if s == "after" => true,
        Some(Value::String(s)) if s == "before" => false,
        Some(other) => {
            return Err(format!("returnDocument must be 'before' or 'after', got {other}").into())
        }
    };
    let doc = |key: &str| -> Result<Option<Value>, ShellError> {
        match options.get(key) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
            Some(_) => Err(format!("option {key} must be a document").into()),
        }
    };
    Ok(FindOneAndModifyOptions {
        sort: doc("sort")?,
        projection: doc("projection")?,
        upsert: opt_bool(options, "upsert")?.unwrap_or(false),
        return_document: if after {
            ReturnDocument::After
        } else {
            ReturnDocument::Before
        },
        array_filters: opt_array(options, "arrayFilters")?,
    })
}

fn opt_bool(options: &Map<String, Value>, key: &str) -> Result<Option<bool>, ShellError> {
    match options.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("option {key} must be true or false").into()),
    }
}

fn opt_array(options: &Map<String, Value>, key: &str) -> Result<Option<Vec<Value>>, ShellError> {
    match options.get(key) {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items.clone())),
        Some(_) => Err(format!("option {key} must be an array").into()),
    }
}

fn empty() -> Value {
    Value::Object(Map::new())
}

/// The arguments of one call, with typed accessors that name the method in errors.
struct Args<'a> {
    method: &'a str,
    args: Vec<Value>,
}

impl<'a> Args<'a> {
    fn new(method: &'a str, args: Vec<Value>) -> Args<'a> {
        Args { method, args }
    }

    fn max(&self, n: usize) -> Result<(), ShellError> {
        if self.args.len() > n {
            return Err(format!(
                "{}() takes at most {n} argument{}, got {}",
                self.method,
                if n == 1 { "" } else { "s" },
                self.args.len()
            )
            .into());
        }
        Ok(())
    }

    fn document(&self, i: usize, what: &str) -> Result<Option<Value>, ShellError> {
        match self.args.get(i) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
            Some(other) => Err(format!(
                "{}(): {what} must be a document, got {}",
                self.method,
                crate::relaxed::type_name(other)
            )
            .into()),
        }
    }

    fn options(&self, i: usize, allowed: &[&str]) -> Result<Map<String, Value>, ShellError> {
        let Some(Value::Object(map)) = self.document(i, "options")? else {
            return Ok(Map::new());
        };
        if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!(
                "{}(): unknown option '{k}' (allowed: {})",
                self.method,
                allowed.join(", ")
            )
            .into());
        }
        Ok(map)
    }

    fn array(&self, i: usize, what: &str) -> Result<Vec<Value>, ShellError> {
        match self.args.get(i) {
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(other) => Err(format!(
                "{}(): {what} must be an array, got {}",
                self.method,
                crate::relaxed::type_name(other)
            )
            .into()),
            None => Err(format!("{}() needs an array of {what}", self.method).into()),
        }
    }

    fn string(&self, i: usize, what: &str) -> Result<String, ShellError> {
        match self.args.get(i) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(format!("{}() needs the {what} as a string", self.method).into()),
        }
    }

    fn integer(&self, i: usize, what: &str) -> Result<i64, ShellError> {
        self.args
            .get(i)
            .and_then(Value::as_i64)
            .ok_or_else(|| format!("{}() needs an integer {what}", self.method).into())
    }
}

/// A statement's failure: a message for the user, or a write error on stdout.
enum ShellError {
    Message(String),
    Io(io::Error),
}

impl From<String> for ShellError {
    fn from(m: String) -> ShellError {
        ShellError::Message(m)
    }
}

impl From<&str> for ShellError {
    fn from(m: &str) -> ShellError {
        ShellError::Message(m.to_string())
    }
}

impl From<io::Error> for ShellError {
    fn from(e: io::Error) -> ShellError {
        ShellError::Io(e)
    }
}

fn db_error(e: pocketdb::Error) -> ShellError {
    ShellError::Message(error_message(&e))
}

fn report(message: &str) {
    // One line per error, whatever the message holds.
    let one_line = message.replace('\n', " ");
    eprintln!("error: {one_line}");
}
