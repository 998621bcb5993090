//! The subset of Go's `text/template` that `--format` flags use, evaluated over JSON values.
//!
//! Docker evaluates `--format` against Go structs; kiln evaluates it against the JSON the command
//! would print, which has the same field names. Supported: text, `{{.Field.Sub}}`, `{{.}}`, `{{$}}`,
//! function calls and pipelines (`{{json .Config}}`, `{{.RepoTags | join ","}}`), `{{if}}`,
//! `{{else}}`, `{{range}}` (with `$v` or `$k, $v :=`), `{{end}}`, and `{{-`/`-}}` trimming.
//! Functions: `json`, `index`, `join`, `len`, `upper`, `lower`, `title`, `split`, `print`,
//! `println`. Values print as Go prints them: lists as `[a b]`, maps as `map[k:v]`, null as
//! `<no value>`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Result, anyhow, bail};
use serde_json::Value;

/// A parsed template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        cond: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Range {
        vars: Vec<String>,
        over: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

/// Commands joined by `|`: each one's result is the last argument of the next.
#[derive(Debug, Clone)]
struct Pipeline(Vec<Vec<Term>>);

#[derive(Debug, Clone)]
enum Term {
    /// `.`, `.A.B`, `$`, `$x.A`: a variable (None for dot) and a field path.
    Field(Option<String>, Vec<String>),
    Str(String),
    Num(i64),
    Func(String),
    Sub(Pipeline),
}

impl Template {
    /// Parses `text`.
    pub(crate) fn parse(text: &str) -> Result<Template> {
        let tokens = lex(text)?;
        let mut tokens = tokens.into_iter().peekable();
        let (nodes, end) = parse_nodes(&mut tokens)?;
        if let Some(end) = end {
            bail!("template: unexpected {{{{{end}}}}}");
        }
        Ok(Template { nodes })
    }

    /// Executes the template with `data` as dot.
    pub(crate) fn render(&self, data: &Value) -> Result<String> {
        let mut out = String::new();
        let mut scope = Scope {
            root: data,
            vars: Vec::new(),
        };
        exec(&self.nodes, data, &mut scope, &mut out)?;
        Ok(out)
    }
}

enum Token {
    Text(String),
    Action(String),
}

/// Splits text and `{{ }}` actions, applying `{{-` and `-}}` trimming.
fn lex(text: &str) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut rest = text;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut literal = &rest[..start];
        if trim_next {
            literal = literal.trim_start();
        }
        let after = &rest[start + 2..];
        let end = find_action_end(after).ok_or_else(|| anyhow!("template: unclosed action"))?;
        let mut action = &after[..end];
        if let Some(stripped) = action.strip_prefix("- ") {
            literal = literal.trim_end();
            action = stripped;
        }
        trim_next = false;
        if let Some(stripped) = action.strip_suffix(" -") {
            trim_next = true;
            action = stripped;
        }
        if !literal.is_empty() {
            tokens.push(Token::Text(literal.to_owned()));
        }
        let action = action.trim();
        if !action.starts_with("/*") {
            tokens.push(Token::Action(action.to_owned()));
        }
        rest = &after[end + 2..];
    }
    let literal = if trim_next { rest.trim_start() } else { rest };
    if !literal.is_empty() {
        tokens.push(Token::Text(literal.to_owned()));
    }
    Ok(tokens)
}

/// The `}}` that closes an action, skipping those inside string literals.
fn find_action_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'}' if !in_string && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

type Tokens = std::iter::Peekable<std::vec::IntoIter<Token>>;

/// Parses nodes up to an `{{else}}` or `{{end}}`, which it returns.
fn parse_nodes(tokens: &mut Tokens) -> Result<(Vec<Node>, Option<String>)> {
    let mut nodes = Vec::new();
    while let Some(token) = tokens.next() {
        let action = match token {
            Token::Text(text) => {
                nodes.push(Node::Text(text));
                continue;
            }
            Token::Action(action) => action,
        };
        let (keyword, rest) = action.split_once(char::is_whitespace).unwrap_or((&action, ""));
        match keyword {
            "end" | "else" => return Ok((nodes, Some(keyword.to_owned()))),
            "if" => {
                let cond = parse_pipeline(rest)?;
                let (then, otherwise) = parse_branches(tokens)?;
                nodes.push(Node::If {
                    cond,
                    then,
                    otherwise,
                });
            }
            "range" => {
                let (vars, over) = match rest.split_once(":=") {
                    Some((vars, over)) => {
                        let vars = vars.split(',').map(|v| v.trim().to_owned()).collect();
                        (vars, parse_pipeline(over)?)
                    }
                    None => (Vec::new(), parse_pipeline(rest)?),
                };
                let (body, otherwise) = parse_branches(tokens)?;
                nodes.push(Node::Range {
                    vars,
                    over,
                    body,
                    otherwise,
                });
            }
            _ => nodes.push(Node::Action(parse_pipeline(&action)?)),
        }
    }
    Ok((nodes, None))
}

fn parse_branches(tokens: &mut Tokens) -> Result<(Vec<Node>, Vec<Node>)> {
    let (then, end) = parse_nodes(tokens)?;
    match end.as_deref() {
        Some("end") => Ok((then, Vec::new())),
        Some("else") => match parse_nodes(tokens)? {
            (otherwise, Some(end)) if end == "end" => Ok((then, otherwise)),
            _ => bail!("template: missing {{{{end}}}}"),
        },
        _ => bail!("template: missing {{{{end}}}}"),
    }
}

fn parse_pipeline(text: &str) -> Result<Pipeline> {
    let words = split_words(text)?;
    let mut commands = vec![Vec::new()];
    for word in words {
        if word == "|" {
            commands.push(Vec::new());
            continue;
        }
        let term = parse_term(&word)?;
        commands.last_mut().expect("one command at least").push(term);
    }
    if commands.iter().any(Vec::is_empty) {
        bail!("template: missing value for command in {text:?}");
    }
    Ok(Pipeline(commands))
}

fn parse_term(word: &str) -> Result<Term> {
    if let Some(inner) = word.strip_prefix('(').and_then(|w| w.strip_suffix(')')) {
        return Ok(Term::Sub(parse_pipeline(inner)?));
    }
    if word.starts_with('"') {
        return serde_json::from_str(word)
            .map(Term::Str)
            .map_err(|_| anyhow!("template: bad string {word}"));
    }
    if let Ok(number) = word.parse() {
        return Ok(Term::Num(number));
    }
    if word == "." {
        return Ok(Term::Field(None, Vec::new()));
    }
    if let Some(path) = word.strip_prefix('.') {
        return Ok(Term::Field(None, path.split('.').map(str::to_owned).collect()));
    }
    if let Some(var) = word.strip_prefix('$') {
        let mut parts = var.split('.');
        let name = parts.next().unwrap_or_default();
        return Ok(Term::Field(
            Some(format!("${name}")),
            parts.map(str::to_owned).collect(),
        ));
    }
    if word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Ok(Term::Func(word.to_owned()));
    }
    bail!("template: unexpected {word:?}")
}

/// Splits an action into words: strings, parenthesised groups, `|`, and the rest by spaces.
fn split_words(text: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '(' {
            let mut depth = 0;
            while i < chars.len() {
                depth += match chars[i] {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                i += 1;
                if depth == 0 {
                    break;
                }
            }
        } else if c == '|' {
            i += 1;
        } else {
            while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '|' | '(') {
                i += 1;
            }
        }
        if i > chars.len() {
            bail!("template: unterminated {text:?}");
        }
        words.push(chars[start..i].iter().collect());
    }
    Ok(words)
}

struct Scope<'a> {
    root: &'a Value,
    vars: Vec<(String, Value)>,
}

fn exec(nodes: &[Node], dot: &Value, scope: &mut Scope<'_>, out: &mut String) -> Result<()> {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Action(pipeline) => {
                let value = eval(pipeline, dot, scope)?;
                out.push_str(&print(&value));
            }
            Node::If {
                cond,
                then,
                otherwise,
            } => {
                let branch = if truthy(&eval(cond, dot, scope)?) {
                    then
                } else {
                    otherwise
                };
                exec(branch, dot, scope, out)?;
            }
            Node::Range {
                vars,
                over,
                body,
                otherwise,
            } => {
                let items: Vec<(Value, Value)> = match eval(over, dot, scope)? {
                    Value::Array(items) => items
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (Value::from(i), v))
                        .collect(),
                    Value::Object(map) => map.into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
                    Value::Null => Vec::new(),
                    other => bail!("template: range can't iterate over {}", print(&other)),
                };
                if items.is_empty() {
                    exec(otherwise, dot, scope, out)?;
                }
                for (key, value) in items {
                    let depth = scope.vars.len();
                    match vars.as_slice() {
                        [] => {}
                        [v] => scope.vars.push((v.clone(), value.clone())),
                        [k, v, ..] => {
                            scope.vars.push((k.clone(), key));
                            scope.vars.push((v.clone(), value.clone()));
                        }
                    }
                    let result = exec(body, &value, scope, out);
                    scope.vars.truncate(depth);
                    result?;
                }
            }
        }
    }
    Ok(())
}

fn eval(pipeline: &Pipeline, dot: &Value, scope: &Scope<'_>) -> Result<Value> {
    let mut previous: Option<Value> = None;
    for command in &pipeline.0 {
        previous = Some(eval_command(command, previous.take(), dot, scope)?);
    }
    Ok(previous.unwrap_or(Value::Null))
}

fn eval_command(command: &[Term], piped: Option<Value>, dot: &Value, scope: &Scope<'_>) -> Result<Value> {
    let (first, rest) = command.split_first().expect("commands are not empty");
    let mut args = rest
        .iter()
        .map(|term| eval_term(term, dot, scope))
        .collect::<Result<Vec<_>>>()?;
    args.extend(piped);
    match first {
        Term::Func(name) => call(name, &args),
        term if args.is_empty() => eval_term(term, dot, scope),
        _ => bail!("template: can't give argument to non-function"),
    }
}

fn eval_term(term: &Term, dot: &Value, scope: &Scope<'_>) -> Result<Value> {
    match term {
        Term::Str(text) => Ok(Value::String(text.clone())),
        Term::Num(number) => Ok(Value::from(*number)),
        Term::Sub(pipeline) => eval(pipeline, dot, scope),
        Term::Func(name) => call(name, &[]),
        Term::Field(var, path) => {
            let mut value = match var.as_deref() {
                None => dot.clone(),
                Some("$") => scope.root.clone(),
                Some(name) => scope
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| anyhow!("template: undefined variable {name}"))?,
            };
            for field in path {
                value = match value {
                    // A missing key is `<no value>`, as Go has it for maps.
                    Value::Object(mut map) => map.remove(field).unwrap_or(Value::Null),
                    Value::Null => Value::Null,
                    other => bail!("template: can't evaluate field {field} in {}", print(&other)),
                };
            }
            Ok(value)
        }
    }
}

fn call(name: &str, args: &[Value]) -> Result<Value> {
    let text = |i: usize| args.get(i).map(print).unwrap_or_default();
    Ok(match (name, args) {
        ("json", [value]) => Value::String(serde_json::to_string(value)?),
        ("index", [value, keys @ ..]) => {
            let mut value = value.clone();
            for key in keys {
                value = match (&value, key) {
                    (Value::Object(map), Value::String(k)) => map.get(k).cloned().unwrap_or(Value::Null),
                    (Value::Array(items), Value::Number(n)) => n
                        .as_u64()
                        .and_then(|i| items.get(usize::try_from(i).ok()?))
                        .cloned()
                        .ok_or_else(|| anyhow!("template: index out of range: {n}"))?,
                    (Value::Null, _) => Value::Null,
                    _ => bail!("template: can't index {} with {}", print(&value), print(key)),
                };
            }
            value
        }
        // `{{join .List ","}}`, and `{{.List | join ","}}` where the pipe makes the list the last argument.
        ("join", [Value::Array(items), sep] | [sep, Value::Array(items)]) => {
            Value::String(items.iter().map(print).collect::<Vec<_>>().join(&print(sep)))
        }
        ("join", [Value::Null, _]) => Value::String(String::new()),
        ("len", [value]) => Value::from(match value {
            Value::Array(items) => items.len(),
            Value::Object(map) => map.len(),
            Value::String(s) => s.len(),
            Value::Null => 0,
            other => bail!("template: len of {}", print(other)),
        }),
        ("upper", [_]) => Value::String(text(0).to_uppercase()),
        ("lower", [_]) => Value::String(text(0).to_lowercase()),
        ("title", [_]) => Value::String(title(&text(0))),
        ("split", [_, _]) => Value::Array(
            text(0)
                .split(&text(1))
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        ("print", _) => Value::String(args.iter().map(print).collect::<String>()),
        ("println", _) => Value::String(format!(
            "{}\n",
            args.iter().map(print).collect::<Vec<_>>().join(" ")
        )),
        _ => bail!(
            "template: function {name:?} not defined or wrong number of arguments ({})",
            args.len()
        ),
    })
}

fn title(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut start = true;
    for c in text.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = c.is_whitespace();
    }
    out
}

/// Go's truth: false, 0, null and empty strings, lists and maps are false.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// A value as Go's `fmt.Print` shows it.
pub(crate) fn print(value: &Value) -> String {
    match value {
        Value::Null => "<no value>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(print).collect::<Vec<_>>().join(" ")),
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            let mut out = String::from("map[");
            for (i, (key, value)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "{key}:{}", print(value));
            }
            out.push(']');
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(template: &str, data: &Value) -> String {
        Template::parse(template).unwrap().render(data).unwrap()
    }

    #[test]
    fn fields_functions_and_pipelines() {
        let data = json!({"Id": "sha256:ab", "Config": {"Cmd": ["sh", "-c"], "Labels": {"b": "2", "a": "1"}, "Env": null}, "Size": 42});
        assert_eq!(render("{{.Id}} {{.Size}}", &data), "sha256:ab 42");
        assert_eq!(render("{{.Config.Cmd}}", &data), "[sh -c]");
        assert_eq!(render("{{.Config.Labels}}", &data), "map[a:1 b:2]");
        assert_eq!(render("{{json .Config.Cmd}}", &data), r#"["sh","-c"]"#);
        assert_eq!(render(r#"{{index .Config.Labels "b"}}"#, &data), "2");
        assert_eq!(render(r#"{{.Config.Cmd | join ","}}"#, &data), "sh,-c");
        assert_eq!(render("{{.Config.Env}}", &data), "<no value>");
        assert_eq!(render("{{upper (index .Config.Cmd 0)}}", &data), "SH");
        assert_eq!(render("{{.Nope}}", &data), "<no value>");
        assert!(Template::parse("{{.Id.Nope}}").unwrap().render(&data).is_err());
    }

    #[test]
    fn control_structures_and_trimming() {
        let data = json!({"Tags": ["a", "b"], "Labels": {"k": "v"}, "Empty": []});
        assert_eq!(render("{{range .Tags}}<{{.}}>{{end}}", &data), "<a><b>");
        assert_eq!(
            render("{{range $k, $v := .Labels}}{{$k}}={{$v}}{{end}}", &data),
            "k=v"
        );
        assert_eq!(render("{{range .Empty}}x{{else}}none{{end}}", &data), "none");
        assert_eq!(render("{{if .Tags}}yes{{else}}no{{end}}", &data), "yes");
        assert_eq!(render("{{if .Empty}}yes{{else}}no{{end}}", &data), "no");
        assert_eq!(render("a  {{- \"b\" -}}  c", &data), "abc");
        assert!(Template::parse("{{if .Tags}}x").is_err());
    }
}
