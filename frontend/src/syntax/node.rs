//! The syntax tree: what the parser produces and the instruction layer consumes.

/// A parsed Dockerfile: its parser directives and one [`Node`] per instruction, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The parser directives found in the leading comment block.
    pub directives: Directives,
    /// One node per instruction, in file order.
    pub instructions: Vec<Node>,
    /// Non-fatal findings (e.g. empty continuation lines), in file order.
    pub warnings: Vec<Warning>,
}

/// The parser directives (`# syntax=`, `# escape=`, `# check=`) of a Dockerfile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// The `syntax` directive's value and its line, if present.
    pub syntax: Option<(String, usize)>,
    /// The escape token in force for the whole file.
    pub escape: Escape,
    /// The `check` directive's value and its line, if present.
    pub check: Option<(String, usize)>,
}

/// The escape token: `\` (the default) or a backtick (`# escape=``).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Escape {
    /// `\`, the default.
    #[default]
    Backslash,
    /// `` ` ``, common in Windows Dockerfiles.
    Backtick,
}

impl Escape {
    /// The escape token as a character.
    pub fn as_char(self) -> char {
        match self {
            Escape::Backslash => '\\',
            Escape::Backtick => '`',
        }
    }
}

/// An inclusive range of 1-based physical line numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    /// The first line.
    pub start: usize,
    /// The last line (continuations and heredoc terminators included).
    pub end: usize,
}

/// One instruction as written: keyword, flags, arguments, heredocs and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The keyword as written, Unicode-lowercased (`from`, `run`, or an unknown word).
    pub keyword: String,
    /// The flags (`--from=build`), each kept with its leading `--`, in order.
    pub flags: Vec<String>,
    /// The arguments, shaped per keyword as BuildKit shapes them.
    pub args: Vec<Arg>,
    /// Whether the arguments came from a JSON array (exec form).
    pub json: bool,
    /// The heredocs attached to this instruction (RUN, COPY, ADD), in order.
    pub heredocs: Vec<Heredoc>,
    /// The logical line as written, after continuation joining, before flag extraction.
    pub original: String,
    /// The comment lines directly above the instruction, without their `#`.
    pub comments: Vec<String>,
    /// Where the instruction stands in the file.
    pub span: Span,
}

/// One argument of a [`Node`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A word or string, unexpanded.
    Word(String),
    /// The instruction wrapped by ONBUILD.
    Nested(Box<Node>),
}

/// A heredoc body attached to an instruction (`<<EOF`, `<<-EOF`, `<<"EOF"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, without quotes.
    pub name: String,
    /// The body, every line with its trailing newline (tabs already stripped for `<<-`).
    pub content: String,
    /// Whether variables in the body are expanded (the delimiter was not quoted).
    pub expand: bool,
    /// Whether leading tabs were stripped (`<<-`).
    pub chomp: bool,
    /// The file descriptor written before `<<` (`3<<EOF`), 0 when none. Saturates at `u64::MAX`
    /// as Go's `ParseUint` does. BuildKit records it; RUN ignores it.
    pub fd: u64,
}

/// A non-fatal finding of the parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The line it concerns.
    pub line: usize,
    /// What was found, e.g. `Empty continuation line found in: RUN apt-get update`.
    pub message: String,
}
