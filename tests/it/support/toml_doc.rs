//! Test configs as TOML tables, not text: a key is set, overridden or removed by its dotted
//! path, and a path that is not there fails the test, where a `.replace()` on the text would
//! have silently done nothing once the template changed. Sink blocks and extra tables are still
//! written as TOML literals (so the file format is tested too) and merged in.

use std::fmt;

use toml::{Table, Value};

/// A whole config file.
#[derive(Debug, Clone)]
pub struct TomlDoc(pub Table);

impl TomlDoc {
    /// Parses `text`; the test's own TOML must be valid.
    pub fn parse(text: &str) -> TomlDoc {
        TomlDoc(
            text.parse::<Table>()
                .unwrap_or_else(|e| panic!("test TOML does not parse: {e}\n{text}")),
        )
    }

    /// Sets `path` ("api.max_backoff"), creating missing tables on the way.
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> TomlDoc {
        let (table, key) = self.parent(path, true);
        table.insert(key.to_string(), value.into());
        self
    }

    /// Replaces the value at `path`, which must already be there.
    pub fn replace(mut self, path: &str, value: impl Into<Value>) -> TomlDoc {
        let (table, key) = self.parent(path, false);
        let old = table.insert(key.to_string(), value.into());
        assert!(old.is_some(), "no {path} to replace in the test config");
        self
    }

    /// Removes `path`, which must be there.
    pub fn remove(mut self, path: &str) -> TomlDoc {
        let (table, key) = self.parent(path, false);
        assert!(table.remove(key).is_some(), "no {path} to remove");
        self
    }

    /// The value at `path`, which must be there.
    pub fn get(&self, path: &str) -> &Value {
        let mut v = &self.0;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let found = v
                .get(part)
                .unwrap_or_else(|| panic!("no {path} in the test config"));
            if parts.peek().is_none() {
                return found;
            }
            v = found.as_table().expect("a table on the way");
        }
        unreachable!("a path has at least one part")
    }

    /// Merges the TOML text `extra`: its tables key by key into these (overriding), its
    /// arrays of tables (`[[sinks]]`) appended, its other keys set.
    pub fn merge(mut self, extra: &str) -> TomlDoc {
        merge_into(&mut self.0, TomlDoc::parse(extra).0);
        self
    }

    /// Merges the TOML key lines `lines` into the table at `path`.
    pub fn merge_at(mut self, path: &str, lines: &str) -> TomlDoc {
        let extra = TomlDoc::parse(lines).0;
        let (table, key) = self.parent(path, true);
        let target = table
            .entry(key)
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .unwrap_or_else(|| panic!("{path} is not a table"));
        merge_into(target, extra);
        self
    }

    /// The table holding the last key of `path`, and that key.
    fn parent<'a>(&mut self, path: &'a str, create: bool) -> (&mut Table, &'a str) {
        let (tables, key) = path.rsplit_once('.').map_or(("", path), |(t, k)| (t, k));
        let mut table = &mut self.0;
        for part in tables.split('.').filter(|p| !p.is_empty()) {
            if create && !table.contains_key(part) {
                table.insert(part.to_string(), Value::Table(Table::new()));
            }
            table = table
                .get_mut(part)
                .and_then(Value::as_table_mut)
                .unwrap_or_else(|| panic!("no table {part} on the way to {path}"));
        }
        (table, key)
    }
}

fn merge_into(into: &mut Table, from: Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Table(old)), Value::Table(new)) => merge_into(old, new),
            (Some(Value::Array(old)), Value::Array(new)) if new.iter().all(Value::is_table) => {
                old.extend(new)
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

impl fmt::Display for TomlDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&toml::to_string(&self.0).expect("a table serializes"))
    }
}
