//! Configuration errors, located by file, line, column and key path.

use std::fmt;
use std::ops::Range;

/// A position in a configuration file, both 1-based; the column counts characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text` (clamped to the text's end, and back to the
    /// start of a character).
    pub fn of_offset(text: &str, offset: usize) -> Location {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// One problem in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file's name, as given to the loader.
    pub file: String,
    /// Where the offending value (or key, or table) starts; line 1, column 1 for a setting
    /// that is not in the file (its default is used).
    pub location: Location,
    /// The key path (`racks[1].link.baud`); empty when the parser could not name it.
    pub key: String,
    /// What is wrong, and the valid range where there is one.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Location { line, column } = self.location;
        write!(f, "{}:{line}:{column}: ", self.file)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration file, in file order (at least one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The errors.
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }

    /// How many errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none (never, for an error a loader returns).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The TOML parser's error (syntax, type, unknown or missing key) as one located error.
    pub fn from_toml(file: &str, text: &str, error: &toml::de::Error) -> ConfigErrors {
        let offset = error.span().map_or(0, |span| span.start);
        ConfigErrors(vec![ConfigError {
            file: file.to_string(),
            location: Location::of_offset(text, offset),
            key: toml_error_key(error),
            message: error.message().trim_end().to_string(),
        }])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The key path of a TOML error. `toml` keeps it private, but prints it as a last line
/// "in `a.b`" when the error carries no input text.
fn toml_error_key(error: &toml::de::Error) -> String {
    let mut bare = error.clone();
    bare.set_input(None);
    bare.to_string()
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("in `")?.strip_suffix('`'))
        .unwrap_or_default()
        .to_string()
}

/// Collects located errors while a file is checked.
#[derive(Debug)]
pub struct Collector<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> Collector<'a> {
    /// A collector for the file `file` whose text is `text`.
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Collector {
            file,
            text,
            errors: Vec::new(),
        }
    }

    /// Records an error at `span` (the file's start when the setting is not in the file).
    pub fn report(
        &mut self,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let offset = span.map_or(0, |span| span.start);
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            location: Location::of_offset(self.text, offset),
            key: key.into(),
            message: message.into(),
        });
    }

    /// `Ok(value)` when nothing was reported, else every error, in file order.
    pub fn finish<T>(mut self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            return Ok(value);
        }
        self.errors.sort_by_key(|error| error.location);
        Err(ConfigErrors(self.errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_character_columns() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(
            Location::of_offset(text, 0),
            Location { line: 1, column: 1 }
        );
        assert_eq!(
            Location::of_offset(text, 6),
            Location { line: 2, column: 1 }
        );
        // "bé = " is 6 bytes and 5 characters: the value starts in column 6.
        assert_eq!(
            Location::of_offset(text, 12),
            Location { line: 2, column: 6 }
        );
        assert_eq!(
            Location::of_offset(text, 999),
            Location { line: 3, column: 1 }
        );
    }
}
