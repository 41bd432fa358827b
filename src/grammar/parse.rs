//! The nom parser of the grammar language (described in grammar/README.md): one
//! directive a line, indented lines add a doc string or word help to the command above.

use nom::branch::alt;
use nom::bytes::complete::{escaped_transform, is_not, tag, take_while1};
use nom::character::complete::{char, digit1, space0, space1};
use nom::combinator::{all_consuming, map, map_res, opt, recognize, value};
use nom::multi::separated_list1;
use nom::sequence::{delimited, preceded, separated_pair};
use nom::{IResult, Parser};

use super::{ArgDef, ArgKind, CommandDef, Draft, GrammarError, ModeDef, SpecToken, Text};

type Res<'a, T> = IResult<&'a str, T>;

fn ident(input: &str) -> Res<'_, &str> {
    take_while1(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_').parse(input)
}

fn quoted(input: &str) -> Res<'_, String> {
    delimited(
        char('"'),
        map(
            opt(escaped_transform(is_not("\\\""), '\\', alt((value("\\", tag("\\")), value("\"", tag("\"")))))),
            Option::unwrap_or_default,
        ),
        char('"'),
    )
    .parse(input)
}

/// A mode reference that may be `-` for none.
fn mode_ref(input: &str) -> Res<'_, Option<Text>> {
    alt((value(None, tag("-")), map(ident, |s| Some(s.to_string().into())))).parse(input)
}

fn mode_line(input: &str) -> Res<'_, ModeDef> {
    let (input, name) = preceded((tag("mode"), space1), ident).parse(input)?;
    let (input, parent) = preceded((space1, tag("parent"), space1), mode_ref).parse(input)?;
    let (input, inherits) = preceded((space1, tag("inherits"), space1), mode_ref).parse(input)?;
    let (input, via) = preceded((space1, tag("via"), space1), quoted).parse(input)?;
    let (input, prompt) = preceded((space1, tag("prompt"), space1), quoted).parse(input)?;
    let (input, help) = preceded(space1, quoted).parse(input)?;
    let via = (via != "-").then(|| via.into());
    let mode =
        ModeDef { name: name.to_string().into(), parent, inherits, via, prompt: prompt.into(), help: help.into() };
    Ok((input, mode))
}

fn int_kind(input: &str) -> Res<'_, ArgKind> {
    let number = |i| map_res(recognize((opt(char('-')), digit1)), str::parse::<i64>).parse(i);
    map(delimited(tag("int("), separated_pair(number, char('-'), number), char(')')), |(min, max)| ArgKind::Int {
        min,
        max,
    })
    .parse(input)
}

fn arg_kind(input: &str) -> Res<'_, ArgKind> {
    alt((
        int_kind,
        map(delimited(tag("exec("), ident, char(')')), |m| ArgKind::Exec(m.to_string().into())),
        value(ArgKind::Hostname, tag("hostname")),
        value(ArgKind::Host, tag("host")),
        value(ArgKind::Time, tag("time")),
        value(ArgKind::Email, tag("email")),
        value(ArgKind::Url, tag("url")),
        value(ArgKind::Word, tag("word")),
        value(ArgKind::Secret, tag("secret")),
        value(ArgKind::Regex, tag("regex")),
        value(ArgKind::SshKey, tag("sshkey")),
    ))
    .parse(input)
}

fn arg_line(input: &str) -> Res<'_, ArgDef> {
    let (input, name) = preceded((tag("arg"), space1), ident).parse(input)?;
    let (input, kind) = preceded(space1, arg_kind).parse(input)?;
    let (input, help) = preceded(space1, quoted).parse(input)?;
    Ok((input, ArgDef { name: name.to_string().into(), kind, help: help.into() }))
}

fn word_line(input: &str) -> Res<'_, (String, String)> {
    let (input, word) = preceded((tag("word"), space1), ident).parse(input)?;
    let (input, help) = preceded(space1, quoted).parse(input)?;
    Ok((input, (word.to_string(), help)))
}

fn spec_token(input: &str) -> Res<'_, SpecToken> {
    alt((
        map(delimited((char('['), space0), spec, (space0, char(']'))), |inner| SpecToken::Optional(inner.into())),
        map(
            separated_pair(ident, char('='), delimited(char('{'), separated_list1(char('|'), ident), char('}'))),
            |(name, options)| SpecToken::Choice {
                name: name.to_string().into(),
                options: options.into_iter().map(|o| o.to_string().into()).collect(),
            },
        ),
        map(ident, |w: &str| {
            if w.chars().any(|c| c.is_ascii_uppercase()) {
                SpecToken::Arg(w.to_string().into())
            } else {
                SpecToken::Keyword(w.to_string().into())
            }
        }),
    ))
    .parse(input)
}

/// A command spec: `failover mode role={primary|secondary} [last ENTRIES]`.
pub fn spec(input: &str) -> Res<'_, Vec<SpecToken>> {
    separated_list1(space1, spec_token).parse(input)
}

/// What a `cmd` or `filter` line declares.
struct CommandLine {
    modes: Vec<Text>,
    spec_text: String,
    handler: String,
    readonly: bool,
}

/// `cmd MODES "SPEC" -> HANDLER [readonly]` or `filter "SPEC" -> HANDLER`.
fn command_line(input: &str) -> Res<'_, CommandLine> {
    let modes = preceded((tag("cmd"), space1), separated_list1(char(','), map(ident, |m| Text::from(m.to_string()))));
    let (input, modes) = alt((modes, value(Vec::new(), tag("filter")))).parse(input)?;
    let (input, spec_text) = preceded(space1, quoted).parse(input)?;
    let (input, handler) = preceded((space1, tag("->"), space1), ident).parse(input)?;
    let (input, readonly) = opt(preceded(space1, tag("readonly"))).parse(input)?;
    Ok((input, CommandLine { modes, spec_text, handler: handler.to_string(), readonly: readonly.is_some() }))
}

enum Detail {
    Doc(String),
    Help(String, String),
}

fn detail_line(input: &str) -> Res<'_, Detail> {
    alt((
        map(quoted, Detail::Doc),
        map(preceded((tag("help"), space1), separated_pair(ident, space1, quoted)), |(w, h)| {
            Detail::Help(w.to_string(), h)
        }),
    ))
    .parse(input)
}

fn full<'a, T>(
    parser: impl Parser<&'a str, Output = T, Error = nom::error::Error<&'a str>>,
    line: &'a str,
) -> Option<T> {
    all_consuming(delimited(space0, parser, space0)).parse(line).ok().map(|(_, v)| v)
}

/// Parses one grammar file into `grammar`.
pub fn parse_file(file: &str, text: &str, grammar: &mut Draft) -> Result<(), GrammarError> {
    let mut last_is_filter = None;
    for (index, raw) in text.lines().enumerate() {
        let origin = format!("{file}:{}", index + 1);
        let fail = |message: &str| GrammarError { origin: origin.clone(), message: message.to_string() };
        let line = raw.trim_end();
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            let cmd = match last_is_filter {
                Some(true) => grammar.filters.last_mut(),
                Some(false) => grammar.commands.last_mut(),
                None => None,
            }
            .ok_or_else(|| fail("indented line without a command above it"))?;
            match full(detail_line, line) {
                Some(Detail::Doc(doc)) => cmd.doc = doc.into(),
                Some(Detail::Help(word, help)) => {
                    let help = (Text::from(word), Text::from(help));
                    let list = cmd.help.to_mut();
                    match list.binary_search_by(|(w, _)| w.cmp(&help.0)) {
                        Ok(at) => list[at] = help,
                        Err(at) => list.insert(at, help),
                    }
                }
                None => return Err(fail("expected a \"doc string\" or `help WORD \"text\"`")),
            }
            continue;
        }
        if let Some(mode) = full(mode_line, line) {
            grammar.modes.push(mode);
        } else if let Some(arg) = full(arg_line, line) {
            if grammar.args.insert(arg.name.to_string(), arg).is_some() {
                return Err(fail("argument declared twice"));
            }
        } else if let Some((word, help)) = full(word_line, line) {
            if let Some(old) = grammar.words.insert(word.clone(), help.clone())
                && old != help
            {
                return Err(fail(&format!("word {word} declared twice with different help")));
            }
        } else if let Some(CommandLine { modes, spec_text, handler, readonly }) = full(command_line, line) {
            let spec = full(spec, &spec_text).ok_or_else(|| fail("malformed command spec"))?;
            let def = CommandDef {
                modes: modes.into(),
                spec_text: spec_text.into(),
                spec: spec.into(),
                handler: handler.into(),
                readonly,
                doc: Text::default(),
                help: Vec::new().into(),
                origin: origin.clone().into(),
            };
            last_is_filter = Some(def.modes.is_empty());
            if def.modes.is_empty() {
                grammar.filters.push(def);
            } else {
                grammar.commands.push(def);
            }
        } else {
            return Err(fail("not a mode, arg, word, cmd or filter declaration"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_spec_with_choice_and_optional() {
        let (_, tokens) = spec("[no] sync run-every INTERVAL unit={minutes|hours}").unwrap();
        assert_eq!(tokens.len(), 5);
        assert_eq!(tokens[0], SpecToken::Optional(vec![SpecToken::Keyword("no".into())].into()));
        assert_eq!(tokens[3], SpecToken::Arg("INTERVAL".into()));
        assert!(matches!(&tokens[4], SpecToken::Choice { name, options } if name == "unit" && options.len() == 2));
    }

    #[test]
    fn readonly_is_an_attribute_after_the_handler() {
        let mut g = Draft::default();
        let text = "word a \"A\"\ncmd user \"a\" -> a readonly\ncmd user \"a b\" -> b\n";
        parse_file("x.grammar", text, &mut g).unwrap();
        assert!(g.commands[0].readonly);
        assert!(!g.commands[1].readonly);
        assert!(parse_file("y.grammar", "cmd user \"a\" -> a writable\n", &mut g).is_err());
    }

    #[test]
    fn reports_the_line_of_a_bad_declaration() {
        let mut g = Draft::default();
        let err = parse_file("x.grammar", "word a \"A\"\nbogus line\n", &mut g).unwrap_err();
        assert_eq!(err.origin, "x.grammar:2");
    }

    #[test]
    fn quoted_strings_unescape() {
        assert_eq!(quoted(r#""a \"b\" \\c""#).unwrap().1, r#"a "b" \c"#);
        assert_eq!(quoted(r#""""#).unwrap().1, "");
    }
}
