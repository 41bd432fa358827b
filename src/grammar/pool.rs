//! The grammar's texts and lists: owned when parsed at run time, or spans of the pools
//! that build.rs writes into the binary (one text holding every text, one array per
//! kind of list item, each reached through the [`Pooled`] impls the generated source
//! carries). A span is two numbers, not a pointer, so the built-in grammar and command
//! graph are plain read-only data: the dynamic loader relocates nothing of them at a
//! start, and only the pages a command reads are ever touched (docs/benchmarks.md,
//! shell start-up). Shared with the build script, whose pools are empty: everything it
//! handles is owned.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Deref, Range};

/// Where a span lies in its pool.
fn range(start: u32, len: u32) -> Range<usize> {
    let start = start as usize;
    start..start + len as usize
}

/// A text of the grammar.
#[derive(Clone)]
pub enum Text {
    /// `len` bytes of the built-in text pool from `start`.
    Builtin { start: u32, len: u32 },
    /// Parsed at run time.
    Owned(String),
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            // The pool is written with its spans; an out-of-range span reads as empty
            // (and fails the test that compares the pools with a parse of grammar/).
            Text::Builtin { start, len } => <Text as Pooled>::text().get(range(*start, *len)).unwrap_or_default(),
            Text::Owned(text) => text,
        }
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::Owned(String::new())
    }
}

impl From<String> for Text {
    fn from(text: String) -> Self {
        Text::Owned(text)
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Self {
        Text::Owned(text.to_string())
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        **self == **other
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        &**self == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        &**self == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        **self == **other
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == &**other
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == &**other
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Text) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Text) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// What a list of the grammar may hold: each kind has a pool of its own. The generated
/// source implements it for every kind (and build.rs, with empty pools), so this file
/// names none of them.
pub trait Pooled: Clone + 'static {
    /// The built-in items of this kind.
    fn pool() -> &'static [Self];
    /// The built-in text pool; only [`Text`]'s is ever asked for.
    fn text() -> &'static str {
        ""
    }
}

/// A list of the grammar.
#[derive(Clone)]
pub enum List<T: Pooled> {
    /// `len` items of `T`'s built-in pool from `start`.
    Builtin { start: u32, len: u32 },
    /// Made at run time.
    Owned(Vec<T>),
}

impl<T: Pooled> List<T> {
    /// The list as a vector to change (a built-in list is copied first).
    pub fn to_mut(&mut self) -> &mut Vec<T> {
        if let List::Builtin { .. } = self {
            *self = List::Owned(self.to_vec());
        }
        match self {
            List::Owned(items) => items,
            List::Builtin { .. } => unreachable!("a built-in list was copied just above"),
        }
    }
}

impl<T: Pooled> Deref for List<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            List::Builtin { start, len } => T::pool().get(range(*start, *len)).unwrap_or_default(),
            List::Owned(items) => items,
        }
    }
}

impl<T: Pooled> Default for List<T> {
    fn default() -> Self {
        List::Owned(Vec::new())
    }
}

impl<T: Pooled + PartialEq> PartialEq for List<T> {
    fn eq(&self, other: &List<T>) -> bool {
        **self == **other
    }
}

impl<T: Pooled + Eq> Eq for List<T> {}

impl<'a, T: Pooled> IntoIterator for &'a List<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: Pooled> From<Vec<T>> for List<T> {
    fn from(items: Vec<T>) -> Self {
        List::Owned(items)
    }
}

impl<T: Pooled> FromIterator<T> for List<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        List::Owned(items.into_iter().collect())
    }
}

impl<T: Pooled + fmt::Debug> fmt::Debug for List<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
