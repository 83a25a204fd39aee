//! `pocketdb import`: NDJSON or a JSON array into a collection, in unordered batches.

use crate::error::{is_input_error, CliError, CliResult};
use indicatif::{ProgressBar, ProgressStyle};
use pocketdb::command::error_message;
use pocketdb::{CollectionOps, Error, InsertManyOptions};
use serde_json::Value;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read};

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Documents inserted.
    pub inserted: u64,
    /// Lines or elements that could not be parsed or inserted.
    pub failed: u64,
}

/// Import settings.
pub struct ImportOptions {
    /// Documents per `insert_many`.
    pub batch_size: usize,
    /// Abort at the first failure instead of reporting it and going on.
    pub stop_on_error: bool,
}

/// Where a document came from, for messages.
#[derive(Clone, Copy)]
enum Origin {
    Line(u64),
    Element(u64),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Line(n) => write!(f, "line {n}"),
            Origin::Element(n) => write!(f, "element {n}"),
        }
    }
}

/// Counts bytes read, for the progress bar.
struct Counting<R> {
    inner: R,
    progress: Option<ProgressBar>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(p) = &self.progress {
            p.inc(n as u64);
        }
        Ok(n)
    }
}

struct Importer<'a> {
    coll: &'a dyn CollectionOps,
    options: &'a ImportOptions,
    batch: Vec<(Origin, Value)>,
    summary: Summary,
    progress: Option<ProgressBar>,
}

impl Importer<'_> {
    fn warn(&self, message: &str) {
        let message = message.replace('\n', " ");
        match &self.progress {
            Some(p) => p.suspend(|| eprintln!("{message}")),
            None => eprintln!("{message}"),
        }
    }

    /// A document that could not be read: reported, or fatal with `--stop-on-error`.
    fn reject(&mut self, origin: Origin, message: &str) -> CliResult {
        if self.options.stop_on_error {
            self.flush()?;
            return Err(CliError::Input(format!("{origin}: {message}")));
        }
        self.warn(&format!("{origin}: {message}"));
        self.summary.failed += 1;
        Ok(())
    }

    fn push(&mut self, origin: Origin, doc: Value) -> CliResult {
        if !doc.is_object() {
            return self.reject(
                origin,
                &format!(
                    "a document must be a JSON object, got {}",
                    crate::relaxed::type_name(&doc)
                ),
            );
        }
        self.batch.push((origin, doc));
        if self.batch.len() >= self.options.batch_size {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> CliResult {
        if self.batch.is_empty() {
            return Ok(());
        }
        let (origins, docs): (Vec<Origin>, Vec<Value>) =
            std::mem::take(&mut self.batch).into_iter().unzip();
        let ordered = self.options.stop_on_error;
        let result = self
            .coll
            .insert_many_with(docs, InsertManyOptions { ordered });
        match result {
            Ok(r) => self.summary.inserted += r.inserted_ids.len() as u64,
            Err(Error::BulkWrite(failure)) => {
                self.summary.inserted += failure.inserted_ids.len() as u64;
                for e in &failure.write_errors {
                    let origin = origins
                        .get(e.index)
                        .map(|o| o.to_string())
                        .unwrap_or_else(|| format!("document {}", e.index));
                    let message = format!("{origin}: {}", error_message(&e.error));
                    if self.options.stop_on_error {
                        return Err(if is_input_error(&e.error) {
                            CliError::Input(message)
                        } else {
                            CliError::Failure(message)
                        });
                    }
                    self.warn(&message);
                    self.summary.failed += 1;
                }
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(p) = &self.progress {
            p.set_message(format!("{} inserted", self.summary.inserted));
        }
        Ok(())
    }
}

/// Imports `source` (a path, or `-`/`None` for stdin) into `coll`.
pub fn import(
    coll: &dyn CollectionOps,
    source: Option<&str>,
    options: &ImportOptions,
) -> CliResult<Summary> {
    let (reader, len): (Box<dyn Read>, Option<u64>) = match source {
        None | Some("-") => (Box::new(io::stdin().lock()), None),
        Some(path) => {
            let file = File::open(path)
                .map_err(|e| CliError::Input(format!("cannot open '{path}': {e}")))?;
            let len = file.metadata().ok().map(|m| m.len());
            (Box::new(file), len)
        }
    };
    let progress = io::stderr().is_terminal().then(|| match len {
        Some(len) => {
            let bar = ProgressBar::new(len);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta})")
            {
                bar.set_style(style);
            }
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {bytes} read, {msg}") {
                bar.set_style(style);
            }
            bar
        }
    });
    let mut input = BufReader::with_capacity(
        1 << 16,
        Counting {
            inner: reader,
            progress: progress.clone(),
        },
    );
    let mut importer = Importer {
        coll,
        options,
        batch: Vec::with_capacity(options.batch_size),
        summary: Summary::default(),
        progress,
    };
    let result = read_all(&mut input, &mut importer).and_then(|()| importer.flush());
    if let Some(p) = &importer.progress {
        p.finish_and_clear();
    }
    result.map(|()| importer.summary)
}

fn read_all(input: &mut impl BufRead, importer: &mut Importer<'_>) -> CliResult {
    // Skip leading whitespace, counting lines, to see whether this is an array.
    let mut line_no = 1u64;
    let first = loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        let skip = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        line_no += buf[..skip].iter().filter(|b| **b == b'\n').count() as u64;
        let found = buf.get(skip).copied();
        input.consume(skip);
        if let Some(b) = found {
            break b;
        }
    };
    if first == b'[' {
        read_array(input, importer)
    } else {
        read_lines(input, importer, line_no)
    }
}

fn read_array(input: &mut impl BufRead, importer: &mut Importer<'_>) -> CliResult {
    let value: Value = serde_json::from_reader(input)
        .map_err(|e| CliError::Input(format!("malformed JSON array: {e}")))?;
    let Value::Array(items) = value else {
        return Err(CliError::Input("expected a JSON array".to_string()));
    };
    for (i, doc) in items.into_iter().enumerate() {
        importer.push(Origin::Element(i as u64), doc)?;
    }
    Ok(())
}

fn read_lines(input: &mut impl BufRead, importer: &mut Importer<'_>, first_line: u64) -> CliResult {
    let mut raw = Vec::new();
    let mut line_no = first_line;
    loop {
        raw.clear();
        if input.read_until(b'\n', &mut raw)? == 0 {
            return Ok(());
        }
        let origin = Origin::Line(line_no);
        line_no += 1;
        let text = match std::str::from_utf8(&raw) {
            Ok(t) => t.trim(),
            Err(_) => {
                importer.reject(origin, "not valid UTF-8")?;
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(text) {
            Ok(doc) => importer.push(origin, doc)?,
            Err(e) => {
                let message = e.to_string();
                let message = match message.rfind(" at line ") {
                    Some(at) => &message[..at],
                    None => &message,
                };
                importer.reject(
                    origin,
                    &format!("malformed JSON at column {}: {message}", e.column()),
                )?
            }
        }
    }
}
