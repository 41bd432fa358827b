//! Splits an input line into words (bare or "quoted"), and `|` output modifiers, with the
//! byte offset and character column of every word so errors can point at it.

use nom::branch::alt;
use nom::bytes::complete::{escaped_transform, is_not, tag};
use nom::character::complete::{char, none_of};
use nom::combinator::{map, opt, value};
use nom::sequence::delimited;
use nom::{IResult, Parser};

/// Longest line accepted, in characters.
pub const MAX_LINE: usize = 4096;

/// One word of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The word, with quotes removed and escapes resolved.
    pub text: String,
    /// Byte offset of its first character in the line.
    pub start: usize,
    /// Character column of its first character.
    pub column: usize,
    /// Whether it was written in quotes (quoted words never match keywords).
    pub quoted: bool,
}

/// The words between two `|`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Segment {
    /// Its words.
    pub tokens: Vec<Token>,
    /// Byte offset where the segment ends (a `|` or the end of the line).
    pub end: usize,
}

/// A lexed line: the command and its output modifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    /// The line as typed.
    pub input: &'a str,
    /// The command part.
    pub command: Segment,
    /// Each `| ...` part.
    pub pipes: Vec<Segment>,
    /// Whether the line ends in blank space (help then lists the next words).
    pub trailing_space: bool,
}

/// Why a line could not be split into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexError {
    /// A quote opened at this column is never closed.
    Unterminated { column: usize },
    /// A control character at this column.
    Control { column: usize },
    /// The line is longer than [`MAX_LINE`].
    TooLong,
}

fn quoted(input: &str) -> IResult<&str, String> {
    let body = escaped_transform(
        is_not("\\\""),
        '\\',
        alt((value("\\", tag("\\")), value("\"", tag("\"")), value("|", tag("|")))),
    );
    delimited(char('"'), map(opt(body), Option::unwrap_or_default), char('"')).parse(input)
}

/// A bare word. `|` inside a word belongs to it (`include a|b`); only a `|` that
/// starts a word separates an output modifier.
fn bare(input: &str) -> IResult<&str, &str> {
    use nom::combinator::recognize;
    use nom::multi::many0;
    recognize((none_of(" \t|\""), many0(none_of(" \t\"")))).parse(input)
}

impl<'a> Line<'a> {
    /// Splits `input` into words and output modifiers.
    pub fn lex(input: &'a str) -> Result<Line<'a>, LexError> {
        if input.chars().count() > MAX_LINE {
            return Err(LexError::TooLong);
        }
        if let Some(column) = input.chars().position(|c| c.is_control() && c != '\t') {
            return Err(LexError::Control { column });
        }
        let mut segments = vec![Segment::default()];
        let mut rest = input;
        loop {
            let trimmed = rest.trim_start_matches([' ', '\t']);
            let start = input.len() - trimmed.len();
            let column = input[..start].chars().count();
            let Some(first) = trimmed.chars().next() else { break };
            if first == '|' {
                if let Some(last) = segments.last_mut() {
                    last.end = start;
                }
                segments.push(Segment::default());
                rest = &trimmed[1..];
                continue;
            }
            let (next, text, quoted) = if first == '"' {
                let (next, text) = quoted(trimmed).map_err(|_| LexError::Unterminated { column })?;
                (next, text, true)
            } else {
                let (next, text) = bare(trimmed).map_err(|_| LexError::Unterminated { column })?;
                (next, text.to_string(), false)
            };
            if let Some(last) = segments.last_mut() {
                last.tokens.push(Token { text, start, column, quoted });
            }
            rest = next;
        }
        if let Some(last) = segments.last_mut() {
            last.end = input.len();
        }
        let trailing_space = input.ends_with([' ', '\t']);
        let command = segments.remove(0);
        Ok(Line { input, command, pipes: segments, trailing_space })
    }

    /// The raw text of a segment from the word `index` to its end, for
    /// rest-of-the-line arguments. A single quoted word gives its unquoted text.
    pub fn rest(&self, segment: &Segment, index: usize) -> String {
        match &segment.tokens[index..] {
            [] => String::new(),
            [only] if only.quoted => only.text.clone(),
            [first, ..] => self.input[first.start..segment.end].trim_end().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        Line::lex(s).unwrap().command.tokens.into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn splits_words_quotes_and_pipes() {
        assert_eq!(words("  sh   fail  "), ["sh", "fail"]);
        assert_eq!(words(r#"notify "a b" "x\"y""#), ["notify", "a b", "x\"y"]);
        let line = Line::lex("show audit | include fail | count").unwrap();
        assert_eq!(line.pipes.len(), 2);
        assert_eq!(line.pipes[0].tokens[1].text, "fail");
        assert_eq!(line.command.tokens[1].column, 5);
        assert!(!line.trailing_space);
        let line = Line::lex("show audit | include fail|ok |count").unwrap();
        assert_eq!(line.pipes.len(), 2);
        assert_eq!(line.pipes[0].tokens[1].text, "fail|ok");
    }

    #[test]
    fn rest_of_line_keeps_inner_spacing() {
        let line = Line::lex("enable secret  two  spaces | x").unwrap();
        assert_eq!(line.rest(&line.command, 2), "two  spaces");
        let line = Line::lex("enable secret \"a|b\"").unwrap();
        assert_eq!(line.rest(&line.command, 2), "a|b");
    }

    #[test]
    fn reports_bad_input_with_a_column() {
        assert_eq!(Line::lex("show \"abc"), Err(LexError::Unterminated { column: 5 }));
        assert_eq!(Line::lex("sh\u{1b}[A"), Err(LexError::Control { column: 2 }));
        assert_eq!(Line::lex(&"x".repeat(MAX_LINE + 1)), Err(LexError::TooLong));
    }
}
